"""Import contracts: the core never needs Textual; the CLI's help never imports torch."""

import subprocess
import sys

CORE = [
    "gendiff.trace",
    "gendiff.divergence",
    "gendiff.snapshot",
    "gendiff.session",
    "gendiff.prompts",
    "gendiff.workspace",
    "gendiff.options",
    "gendiff.documents",
    "gendiff.heavy",
    "gendiff.engines",
    "gendiff.engines.hf",
    "gendiff.engines.packed",
    "gendiff.engines.loading",
    "gendiff.engines.vllm",
]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_core_imports_with_textual_blocked():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'textual' or name.startswith('textual.'):\n"
        "            raise ImportError('textual is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        + "".join(f"import {m}\n" for m in CORE)
        + "assert 'textual' not in sys.modules\nprint('ok')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom gendiff.cli import main\n"
        "for argv in (['--help'], ['run', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'transformers' not in sys.modules, 'transformers imported'\n"
        "print('ok')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
    assert "gendiff run" in result.stdout


def test_tui_module_does_not_import_torch():
    result = run_python("import sys, gendiff.tui.app\nassert 'torch' not in sys.modules\nprint('ok')")
    assert result.returncode == 0, result.stderr


def test_demo_model_ships_inside_the_package():
    from importlib import resources

    folder = resources.files("gendiff") / "demo_model"
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "prompts.txt",
        "README.md",
    ):
        assert (folder / name).is_file(), name
    assert (resources.files("gendiff") / "schema" / "snapshot.schema.json").is_file()
    assert (resources.files("gendiff") / "tui" / "gendiff.tcss").is_file()
    size = sum((folder / n).stat().st_size for n in ("model.safetensors", "tokenizer.json"))
    assert size < 25 * 1024 * 1024

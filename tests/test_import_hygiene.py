"""The layers hold (import-linter's contracts in pyproject.toml), every lazy import is listed with
its reason, the core imports without Textual, and --help, the app module and a snapshot's
opening need no torch. Modules are imported in fresh subprocesses, as harlequin's
test_import_hygiene does, so one test's imports can't hide another's."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "gendiff"
HEADLESS = ["gendiff.cli.args", "gendiff.cli.headless", "gendiff.cli.summary", "gendiff.cli.run_options"]
CORE_PACKAGES = ["records", "io", "engines", "run", "state"]


def modules_under(*packages: str) -> list[str]:
    found = []
    for package in packages:
        for path in sorted((PACKAGE / package).rglob("*.py")):
            found.append(".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"))
    return found


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)


def lazy_imports(root: Path = REPO) -> dict[str, set[str]]:
    """'importer -> imported' for every import inside a function (stdlib left out), with the functions."""
    found: dict[str, set[str]] = {}
    for path in sorted((root / "gendiff").rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    names = [alias.name for alias in inner.names]
                elif isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                    names = [inner.module]
                else:
                    continue
                for name in names:
                    target = name if name.startswith("gendiff") else name.split(".")[0]
                    if target.split(".")[0] not in sys.stdlib_module_names:
                        found.setdefault(f"{module} -> {target}", set()).add(node.name)
    return found


def test_every_lazy_import_is_listed_with_its_reason():
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["gendiff"]["lazy-imports"]
    found = lazy_imports()
    unlisted = {pair: sorted(functions) for pair, functions in found.items() if pair not in listed}
    assert not unlisted, f"lazy imports without a reason in pyproject.toml [tool.gendiff.lazy-imports]: {unlisted}"
    stale = sorted(set(listed) - set(found))
    assert not stale, f"listed in [tool.gendiff.lazy-imports] but no longer in the code: {stale}"
    assert all(reason.strip() for reason in listed.values())


def copy_of_the_package(tmp_path: Path) -> Path:
    """The package and pyproject.toml copied under ``tmp_path`` (tests change the copy, never the tree)."""
    import shutil

    shutil.copytree(PACKAGE, tmp_path / "gendiff", ignore=shutil.ignore_patterns("__pycache__", "demo_model"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_lazy_import_check_sees_a_new_one(tmp_path):
    """The scan is not vacuous: a function-level import added to a module is found."""
    root = copy_of_the_package(tmp_path)
    module = root / "gendiff" / "records" / "trace.py"
    module.write_text(module.read_text() + "\n\ndef _probe_only():\n    import numpy\n")
    assert "gendiff.records.trace -> numpy" in lazy_imports(root)
    assert "gendiff.records.trace -> numpy" not in lazy_imports()


def test_core_and_headless_modules_import_with_textual_blocked():
    """Every module of the core and the headless command line, in one fresh interpreter where
    importing Textual or Rich fails; none of them loads torch, transformers or vLLM either."""
    modules = modules_under(*CORE_PACKAGES) + HEADLESS
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('textual', 'rich'):\n"
        "            raise ImportError(name + ' is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        + "".join(f"import {module}\n" for module in modules)
        + "heavy = [m for m in sys.modules if m.split('.')[0] in ('textual', 'torch', 'transformers', 'vllm')]\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    result = run_python(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    assert len(modules) > 40


def test_help_does_not_import_the_core_or_torch():
    code = (
        "import sys\nfrom gendiff.cli.main import main\n"
        "for argv in (['--help'], ['run', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'textual', 'jsonschema')]\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
    assert "gendiff run" in result.stdout


def test_tui_module_does_not_import_torch():
    result = run_python("import sys, gendiff.tui.app\nassert 'torch' not in sys.modules\nprint('ok')")
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_import_linter_contracts_hold_and_catch_a_new_crossing(tmp_path):
    """lint-imports passes on the tree; an import of gendiff.tui added to an engine breaks it."""
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    root = copy_of_the_package(tmp_path)
    engine = root / "gendiff" / "engines" / "masks.py"
    engine.write_text(engine.read_text() + "\n\ndef _crossing():\n    import gendiff.tui.app  # noqa: F401\n")
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=root, env=env, timeout=120)
    assert result.returncode != 0
    assert "gendiff.engines.masks -> gendiff.tui.app" in result.stdout


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


def import_cycles(package: str = "gendiff") -> list[list[str]]:
    """Groups of modules that import each other, directly or around a circle (function-level and
    TYPE_CHECKING imports included: grimp reads them all)."""
    import grimp

    graph = grimp.build_graph(package)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_circle_in_the_core():
    cycles = [group for group in import_cycles() if not all(m.startswith("gendiff.tui") for m in group)]
    assert cycles == []

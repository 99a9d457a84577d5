"""captured_output: output written to fds 1/2 (by this process or a child) lands in the log,
while sys.__stdout__/sys.__stderr__ (what Textual's driver uses) still reach the terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent(
    """
    import os, shutil, subprocess, sys
    from pathlib import Path
    from gendiff.io.capture import captured_output

    print("before", flush=True)
    with captured_output(Path(sys.argv[1])) as log:
        os.write(1, b"raw-fd1\\n")
        os.write(2, b"raw-fd2 utils.cpp:68] Warning: NUMA binding\\n")
        print("python-stdout", flush=True)
        print("python-stderr", file=sys.stderr, flush=True)
        subprocess.run(["sh", "-c", "echo child-out; echo child-err >&2"], check=True)
        sys.__stderr__.write("terminal-err %s\\n" % (log == Path(sys.argv[1])))
        sys.__stderr__.flush()
        columns, lines = shutil.get_terminal_size()
        sys.__stdout__.write("terminal-size %dx%d\\n" % (columns, lines))
        sys.__stdout__.flush()
    print("after", flush=True)
    os.write(2, b"after-fd2\\n")
    """
)

CAPTURED = ("raw-fd1", "raw-fd2 utils.cpp:68", "python-stdout", "python-stderr", "child-out", "child-err")


def run_child(log: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "", "LINES": ""}
    env.pop("COLUMNS")
    env.pop("LINES")
    return subprocess.run([sys.executable, "-c", CHILD, str(log)], env=env, timeout=60, **kwargs)


def test_fd_level_output_goes_to_the_log_not_the_terminal(tmp_path):
    log = tmp_path / "state" / "engine-output.log"
    done = run_child(log, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    terminal = done.stdout + done.stderr
    written = log.read_text()
    for line in CAPTURED:
        assert line in written
        assert line not in terminal
    assert "terminal-err True" in done.stderr and "terminal-err" not in written
    assert "terminal-size" in done.stdout
    # everything is restored afterwards
    assert done.stdout.splitlines()[0] == "before"
    assert "after" in done.stdout and "after-fd2" in done.stderr
    assert "after" not in written


def test_the_terminal_stays_a_tty_with_its_size(tmp_path):
    # Textual sizes its screen from sys.__stdout__: it must still be the 97x31 terminal
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 31, 97, 0, 0))
    log = tmp_path / "engine-output.log"
    done = run_child(log, stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    screen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(primary)
    assert done.returncode == 0
    text = screen.decode()
    assert "terminal-size 97x31" in text
    assert "raw-fd2" not in text and "child-err" not in text
    assert "raw-fd2" in log.read_text()


def test_an_unwritable_folder_falls_back_to_a_temporary_log(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    done = run_child(blocked / "sub" / "engine-output.log", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "terminal-err False" in done.stderr
    assert "raw-fd1" not in done.stdout


def test_logged_anything_ignores_the_header(tmp_path):
    from gendiff.io.capture import logged_anything

    log = tmp_path / "log"
    log.write_text("gendiff: engine and library output, now\n")
    assert not logged_anything(log)
    log.write_text("gendiff: engine and library output, now\nwarning\n")
    assert logged_anything(log)
    assert not logged_anything(tmp_path / "missing")


APP_CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from textual.app import App
    from textual.widgets import Static
    from gendiff.io.capture import captured_output

    class Drawn(App):
        def compose(self):
            yield Static("DRAWN-BY-TEXTUAL")

        def on_mount(self):
            os.write(2, b"utils.cpp:68] Warning: NUMA binding\\n")
            os.write(1, b"stdout-from-an-engine\\n")
            self.set_timer(0.5, self.exit)

    with captured_output(Path(sys.argv[1])):
        Drawn().run()
    """
)


def test_a_textual_app_draws_on_the_terminal_while_engine_output_goes_to_the_log(tmp_path):
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    log = tmp_path / "engine-output.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    child = subprocess.Popen(
        [sys.executable, "-c", APP_CHILD, str(log)], stdin=secondary, stdout=secondary, stderr=secondary, env=env
    )
    os.close(secondary)
    screen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(primary)
    assert child.wait(timeout=60) == 0
    text = screen.decode(errors="replace")
    assert "DRAWN-BY-TEXTUAL" in text
    assert "NUMA" not in text and "stdout-from-an-engine" not in text
    written = log.read_text()
    assert "NUMA binding" in written and "stdout-from-an-engine" in written

"""The real app in a real terminal (a pty): what it writes to the terminal, and how it ends."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def start(args, cwd, env_extra=None):
    primary, secondary = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40", **(env_extra or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "gendiff", *args], stdin=secondary, stdout=secondary, stderr=secondary,
        cwd=cwd, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(secondary)
    return process, primary


def read_until(primary, process, wanted: bytes, seconds: float, seen: bytearray) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                return wanted in seen
            seen.extend(chunk)
            if wanted in seen:
                return True
        elif process.poll() is not None:
            return wanted in seen
    return wanted in seen


def test_prompts_full_of_escapes_never_reach_the_terminal_and_q_mid_run_exits_cleanly(tmp_path):
    prompts = tmp_path / "esc.txt"
    prompts.write_text("\x1b]0;PWNED\x07 Once upon a time\n\x1b]52;c;SGVsbG8=\x07 The capital of\n\x1b[2J there\n")
    process, primary = start([str(prompts), "--max-new-tokens", "200"], tmp_path, {"GENDIFF_CONFIG_DIR": str(tmp_path)})
    seen = bytearray()
    try:
        assert read_until(primary, process, b"Prompts", 120, seen), seen[-2000:]
        os.write(primary, b"R")
        assert read_until(primary, process, b"tok/s", 300, seen), seen[-2000:]  # mid-run now
        started = time.monotonic()
        os.write(primary, b"q")
        read_until(primary, process, b"\x00never", 30, seen)  # keep reading: a full pty blocks the app's last writes
        code = process.wait(timeout=5)
        quit_seconds = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
        os.close(primary)
    assert code == 0 and b"terminate called" not in seen
    assert quit_seconds < 10  # within a second on a quiet machine; this one may be loaded
    assert b"\x1b]0;PWNED" not in seen and b"\x1b]52;" not in seen  # no title, no clipboard write
    assert b"PWNED" in seen  # the text itself is shown (inert)

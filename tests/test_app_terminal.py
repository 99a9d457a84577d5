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


def test_a_snapshot_full_of_escapes_never_reaches_the_terminal(tmp_path):
    """A snapshot from elsewhere: prompt and token texts holding OSC 0 / OSC 52 / ESC[2J / BEL."""
    from helpers import ENVIRONMENT

    from gendiff.io.snapshots import save_snapshot
    from gendiff.records.divergence import compare
    from gendiff.records.snapshot import Batch, PromptResult, Snapshot
    from gendiff.records.trace import TokenStep, TopToken, Trace

    evil = "\x1b]0;PWNED\x07\x1b]52;c;SGVsbG8=\x07\x1b[2J"

    def step(token_id, other):
        top = (TopToken(token_id, evil + "a", -0.1, 9.9), TopToken(other, evil + "b", -0.5, 9.5))
        return TokenStep(token_id, evil + "a", -0.1, top)

    ref = Trace("hf-single", 0, (1, 2), (step(5, 6), step(5, 6)), "length")
    other = Trace("hf-left", 0, (1, 2), (step(5, 6), step(6, 5)), "length")
    prompt = PromptResult(evil + " prompt", [1, 2], {"hf-single": ref, "hf-left": other}, [compare(ref, other)], id=0,
                          batches={"hf-single": 0, "hf-left": 0})  # fmt: skip
    snapshot = Snapshot(
        model={"name": evil, "path": "/m", "dtype": "float32", "attn": "sdpa"},
        decoding={"max_new_tokens": 2, "top_k": 2},
        reference="hf-single",
        engines=[{"label": "hf-single", "name": "hf-single", "settings": {}}, {"label": "hf-left", "name": "hf-left", "settings": {}}],
        prompts=[prompt],
        environment=ENVIRONMENT,
        batches=[Batch(0, ("hf-single", "hf-left"), (0,), (evil + " prompt",), ((1, 2),))],
    )  # fmt: skip
    path = tmp_path / "evil.json"
    save_snapshot(snapshot, path)
    process, primary = start([str(path)], tmp_path, {"GENDIFF_CONFIG_DIR": str(tmp_path)})
    seen = bytearray()
    try:
        assert read_until(primary, process, b"Prompts", 120, seen), seen[-2000:]
        os.write(primary, b"n")  # the divergence: both top-k tables with the candidates' texts
        read_until(primary, process, b"\x00never", 3, seen)
        os.write(primary, b"q")
        read_until(primary, process, b"\x00never", 20, seen)
        code = process.wait(timeout=5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
        os.close(primary)
    assert code == 0
    for bad in (b"\x1b]0;PWNED", b"\x1b]52;", b"\x1b[2J"):
        assert bad not in seen, (bad, seen[max(0, seen.find(bad) - 80) : seen.find(bad) + 80])
    assert "␛]0;PWNED".encode() in seen  # shown, inert


def test_keys_typed_while_the_app_starts_are_not_echoed_and_the_echo_comes_back_after_q(tmp_path):
    import termios

    process, primary = start(["--max-new-tokens", "4"], tmp_path, {"GENDIFF_CONFIG_DIR": str(tmp_path)})
    seen = bytearray()
    try:
        deadline = time.monotonic() + 60
        # gendiff turns the echo off first thing, keeping the line mode (the app's raw mode, later,
        # clears both): only in that window do typed keys wait unseen for the app
        while (termios.tcgetattr(primary)[3] & (termios.ECHO | termios.ICANON)) != termios.ICANON:
            assert time.monotonic() < deadline and process.poll() is None, "no quiet window before the app"
            time.sleep(0.005)
        os.write(primary, b"zzz")  # typed before the first frame (z is no key of the app)
        assert read_until(primary, process, b"Prompts", 120, seen), seen[-2000:]
        before_the_app = bytes(seen[: seen.find(b"\x1b[?1049h")])  # until the app takes the screen
        os.write(primary, b"q")
        read_until(primary, process, b"\x00never", 20, seen)
        code = process.wait(timeout=10)
        echo_after = bool(termios.tcgetattr(primary)[3] & termios.ECHO)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
        os.close(primary)
    assert b"\x1b[?1049h" in seen
    assert b"zzz" not in before_the_app  # not echoed over the screen
    assert code == 0 and echo_after  # the terminal's own settings are back


def test_ctrl_s_typed_while_the_app_starts_reaches_the_editor_it_was_meant_for(tmp_path):
    """a, a prompt's text and ctrl+s typed before the first frame: the prompt is added and saved.
    ctrl+s was the terminal's flow control (XOFF) until the app took the terminal, so it never
    reached the app (a reviewer's early ctrl+s left the editor open, nothing saved)."""
    import termios

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("first\n")
    process, primary = start([str(prompts)], tmp_path, {"GENDIFF_CONFIG_DIR": str(tmp_path)})
    seen = bytearray()
    try:
        deadline = time.monotonic() + 60
        while (termios.tcgetattr(primary)[3] & (termios.ECHO | termios.ICANON)) != termios.ICANON:
            assert time.monotonic() < deadline and process.poll() is None, "no quiet window before the app"
            time.sleep(0.005)
        os.write(primary, b"aearly\x13")  # add a prompt, type it, ctrl+s: all before the first frame
        assert read_until(primary, process, b"Prompts", 120, seen), seen[-2000:]
        deadline = time.monotonic() + 30
        while "early" not in prompts.read_text() and time.monotonic() < deadline:
            read_until(primary, process, b"\x00never", 0.5, seen)
        saved = prompts.read_text()
        os.write(primary, b"q")
        read_until(primary, process, b"\x00never", 20, seen)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
        os.close(primary)
    assert saved.splitlines() == ["first", "early"], saved

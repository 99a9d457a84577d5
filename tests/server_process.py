"""A real server started for the tests (vLLM's, llama.cpp's) on 127.0.0.1: a free port, its log,
waiting until it answers, and stopping it with its whole process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``command`` run in its own process group, output to ``log_path``."""

    name = "server"
    ready_path = "/health"  # relative to ``root``: answers 200 once the server serves

    def __init__(self, command: list[str], log_path: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/v1"
        self.log_path = Path(log_path)
        self.log = open(log_path, "w")  # noqa: SIM115 — closed in stop()
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() kills the workers too
        )

    def wait_ready(self, seconds: float) -> None:
        import httpx

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{self.tail()}")
            try:
                if httpx.get(self.root + self.ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready after {seconds} s:\n{self.tail()}")

    def tail(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)
            except ProcessLookupError:
                pass
        self.log.close()

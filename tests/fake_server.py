"""A tiny OpenAI-compatible server (stdlib http.server in a thread) for the ``openai`` engine's
tests of what a real server never sends: malformed answers, checked headers, error texts.

It speaks vLLM's /v1/completions with ``return_tokens_as_token_ids`` (``token_id:N`` keys) and
tokenizes with the demo model's tokenizer (as a server that loaded the model would). The happy
path against a real vLLM server is tests/test_served.py; this one is for the faults.

``answer(body) -> dict | (status, dict | str[, headers]) | RESET`` builds the generation answer (default:
:func:`greedy_answer`); ``llamacpp=True`` serves llama.cpp's /completion and /tokenize instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gendiff.demo import demo_model_path

MODEL = "fake"
RESET = "reset the connection"
_LOADING = threading.Lock()  # an answer function returning this: the connection closes unanswered


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(demo_model_path()), local_files_only=True)


def greedy_answer(body: dict[str, Any], first: int = 20) -> dict[str, Any]:
    """A well-formed answer: tokens ``first, first+1, …`` with logprob -0.1 each, the runner-up
    (the next id) at -2.5, ``logprobs`` candidates in all (vLLM's shape)."""
    count, k = int(body["max_tokens"]), int(body["logprobs"])
    ids = [first + i for i in range(count)]
    tops = [{f"token_id:{i + r}": -0.1 if r == 0 else -2.5 - r for r in range(k)} for i in ids]
    return {
        "choices": [
            {
                "logprobs": {
                    "tokens": [f"token_id:{i}" for i in ids],
                    "token_logprobs": [-0.1] * count,
                    "top_logprobs": tops,
                },
                "finish_reason": "length",
            }
        ]
    }


def llamacpp_answer(body: dict[str, Any], first: int = 20) -> dict[str, Any]:
    """llama.cpp's /completion shape for the same stream as :func:`greedy_answer`."""
    count, k = int(body["n_predict"]), int(body["n_probs"])
    probs = []
    for i in (first + j for j in range(count)):
        top = [{"id": i + r, "logprob": -0.1 if r == 0 else -2.5 - r} for r in range(k)]
        probs.append({"id": i, "logprob": -0.1, "top_logprobs": top})
    return {"completion_probabilities": probs, "stop_type": "limit"}


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # gendiff sends every prompt at once (concurrency=all)
    daemon_threads = True


class FakeServer:
    """``with FakeServer(...) as server:`` serves on 127.0.0.1; ``server.url`` ends in /v1;
    ``server.requests`` holds (method, path, headers, body) of every request."""

    def __init__(
        self,
        answer: Callable[[dict[str, Any]], Any] | None = None,
        key: str | None = None,
        llamacpp: bool = False,
        port: int = 0,
    ) -> None:
        self.llamacpp = llamacpp
        self.answer = answer or (llamacpp_answer if llamacpp else greedy_answer)
        self.key = key  # when set, every request must carry Authorization: Bearer KEY
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self._tokenizer: Any = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server._safely(self, "GET", None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server._safely(self, "POST", json.loads(self.rfile.read(length) or b"null"))

        self.httpd = _Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)  # quick shutdown

    @property
    def tokenizer(self) -> Any:
        with _LOADING:  # loaded on the first tokenization (a test may refuse before), by one thread
            if self._tokenizer is None:
                self._tokenizer = _tokenizer()
        return self._tokenizer

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _safely(self, handler: BaseHTTPRequestHandler, method: str, body: Any) -> None:
        try:
            self._handle(handler, method, body)
        except Exception as exc:  # a fault of the fake itself: a 599 the test will show
            self._send(handler, 599, {"error": {"message": f"fake server: {type(exc).__name__}: {exc}"}})

    def _handle(self, handler: BaseHTTPRequestHandler, method: str, body: Any) -> None:
        self.requests.append((method, handler.path, dict(handler.headers), body))
        if self.key is not None and handler.headers.get("Authorization") != f"Bearer {self.key}":
            return self._send(handler, 401, {"error": {"message": "missing or wrong API key"}})
        status, data = 200, None
        if method == "GET" and handler.path == "/v1/models":
            data = {"data": [{"id": MODEL}]}
        elif method == "GET" and handler.path == "/version" and not self.llamacpp:
            data = {"version": "fake-0"}
        elif method == "GET" and handler.path == "/props" and self.llamacpp:
            data = {"build_info": "fake-llama"}
        elif method == "POST" and handler.path == "/v1/completions" and body.get("echo"):
            ids = self.tokenizer(body["prompt"])["input_ids"] + [7]
            data = {"choices": [{"logprobs": {"tokens": [f"token_id:{i}" for i in ids]}, "finish_reason": "length"}]}
        elif method == "POST" and handler.path == "/tokenize" and self.llamacpp:
            data = {"tokens": self.tokenizer(body["content"])["input_ids"]}
        elif method == "POST" and handler.path in ("/v1/completions", "/completion"):
            data = self.answer(body)
            if data is RESET:
                handler.close_connection = True
                return
            if isinstance(data, tuple):
                status, data, *rest = data
                headers = rest[0] if rest else {}
                return self._send(handler, status, data, headers)
        else:
            status, data = 404, {"error": {"message": f"no route {handler.path}"}}
        self._send(handler, status, data)

    def _send(self, handler: BaseHTTPRequestHandler, status: int, data: Any, headers: Any = None) -> None:
        raw = data.encode() if isinstance(data, str) else json.dumps(data).encode()
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

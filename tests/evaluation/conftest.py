"""Fixtures for the evaluation tests: a tiny real causal LM, built once, and
a real OpenAI-compatible chat server on loopback for the judge.

Test modules take everything from fixtures (no imports from this file at
run time), so they work under any pytest import mode.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

# Everything these tests load lies on disk; never wait on a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama whose greedy output depends on its input.

    The stock random init (std 0.02) makes every prompt yield the same
    token, which would let a batching bug go unseen; larger weights make
    the next token a real function of the whole (unpadded) prompt.
    """
    from llmline.testing.models import tiny_causal_lm

    return tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"), input_dependent=True)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path) -> tuple[Any, Any]:
    """(model, tokenizer) loaded from :func:`tiny_model_dir`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        AutoTokenizer.from_pretrained(tiny_model_dir),
    )


REPLIES = {
    "GOOD": '{"score": 5, "reason": "matches the reference"}',
    "FENCED": 'My verdict:\n```json\n{"score": 4, "reason": "minor\nomission"}\n```\nDone.',
    "PROSE": 'Looks partly right. {"score": 3, "reason": "misses a point"} Hope this helps!',
    "BROKEN": '{"score": 2, "reason": "trailing comma",}',
    "OUT_OF_RANGE": '{"score": 9, "reason": "excellent"}',
    "NO_JSON": "The answer is good; I would rate it highly.",
    "EMPTY": "",
}
# Successful responses that are not chat completions.
RAW_BODIES = {
    "NOT_JSON": b"<html>gateway says hi</html>",
    "NO_CHOICES": b'{"object": "chat.completion", "choices": []}',
}
# Any other answer (a real model's output) gets this verdict.
DEFAULT_REPLY = '{"score": 3, "reason": "default verdict"}'
SLOW_S = 3.0


class JudgeServer:
    """Answers ``POST /v1/chat/completions`` with the canned verdict that the
    candidate answer names (a key of ``REPLIES``), broken ones included;
    ``HTTP500``, ``SLOW`` and ``RAW_BODIES`` answers exercise failures.
    Serves in a daemon thread: ``start()``, then ``stop()``."""

    REPLIES: ClassVar[dict[str, str]] = REPLIES
    RAW_BODIES: ClassVar[dict[str, bytes]] = RAW_BODIES
    SLOW_S: ClassVar[float] = SLOW_S

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> JudgeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def count(self, marker: str) -> int:
        with self.lock:
            return sum(r["messages"][-1]["content"].endswith(marker + "\n") for r in self.requests)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                answer = body["messages"][-1]["content"].rsplit("ANSWER:\n", 1)[1].strip()
                if answer == "HTTP500":
                    self._send(500, {"error": {"message": "boom", "type": "server"}})
                    return
                if answer in RAW_BODIES:
                    self._send_raw(200, RAW_BODIES[answer])
                    return
                if answer == "SLOW":
                    time.sleep(SLOW_S)
                self._send(200, _completion(body["model"], REPLIES.get(answer, DEFAULT_REPLY)))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                self._send_raw(status, json.dumps(payload).encode())

            def _send_raw(self, status: int, data: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        return Handler


def _completion(model: str, content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@pytest.fixture(scope="session")
def judge_server() -> Iterator[JudgeServer]:
    server = JudgeServer().start()
    yield server
    server.stop()

"""A small, fast OpenAI-compatible stub server to stand in for an upstream.

Tests and benchmarks point ``upstream:NAME`` at it instead of a real vLLM or
OpenAI.  It is a raw ASGI app (no framework) so that it is not the
bottleneck of a 1000+ requests/s benchmark on two cores, and its behaviour
is a mutable :class:`StubBehaviour` that a test can switch while the server
runs (the server thread only reads it, apart from the counters)::

    behaviour = StubBehaviour()
    with ServerThread(stub_upstream_app(behaviour)) as server:
        ...  # base_url = server.url + "/v1"
        behaviour.mode = "error500"

Endpoints: ``POST /v1/chat/completions`` and ``POST /v1/completions``
(plain JSON or, with ``stream: true``, server-sent events in OpenAI's chunk
format ending in ``data: [DONE]``), ``GET /v1/models``.  The answer is
``behaviour.text`` or ``"stub: <last user message>"``, one word = one token,
cut to ``max_tokens`` words.  Standalone::

    python -m llmline.testing.upstream --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Mode", "StubBehaviour", "main", "serve", "stub_upstream_app"]

Mode = Literal["ok", "hang", "garbage", "error500", "error429", "slow", "disconnect"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


@dataclass
class StubBehaviour:
    """How the stub answers; mutate it at run time to change that.

    ``mode``: ``ok``; ``hang`` (read the request, never answer, until the
    client goes away); ``garbage`` (HTTP 200 whose body is not JSON, or an
    event stream whose events are not JSON); ``error500``; ``error429`` (with
    ``Retry-After: retry_after`` when set); ``slow`` (``delay_s`` before a
    plain answer and before every streamed chunk); ``disconnect`` (headers
    and part of the body, then the connection is dropped).
    ``fail_first``: that many of the next requests get HTTP ``fail_status``
    (500; 429 comes with ``Retry-After: retry_after``) whatever the mode
    (counts down).  ``raw``: when set, every answer is HTTP 200 with exactly
    these bytes (an upstream's malformed output), labelled ``raw_content_type``
    (default: JSON, or an event stream when one was asked for).
    ``api_key``: when set, requests without ``Authorization: Bearer
    <api_key>`` get 401.  ``usage``: include
    ``usage`` in plain answers (streams follow ``stream_options``).
    """

    mode: Mode = "ok"
    delay_s: float = 0.0
    text: str | None = None
    fail_first: int = 0
    fail_status: int = 500
    raw: bytes | None = None
    raw_content_type: str | None = None
    retry_after: str | None = None
    api_key: str | None = None
    usage: bool = True
    model: str = "stub-model"
    # Counters and what the last request carried, for tests' assertions.
    requests: int = 0
    disconnects: int = 0
    last_body: dict[str, Any] = field(default_factory=dict)
    last_headers: dict[str, str] = field(default_factory=dict)


def stub_upstream_app(behaviour: StubBehaviour | None = None) -> App:
    """The ASGI app; ``behaviour`` defaults to a fresh ``StubBehaviour()``."""
    state = behaviour if behaviour is not None else StubBehaviour()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await _http(state, scope, receive, send)

    return app


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _http(state: StubBehaviour, scope: Scope, receive: Receive, send: Send) -> None:
    path: str = scope["path"]
    method: str = scope["method"]
    if method == "GET" and path == "/v1/models":
        model = {"id": state.model, "object": "model", "created": 0, "owned_by": "llmline-stub"}
        await _respond(send, 200, {"object": "list", "data": [model]})
        return
    if method != "POST" or path not in ("/v1/chat/completions", "/v1/completions"):
        await _respond(send, 404, _error(f"no route {method} {path}", "not_found"))
        return
    raw = await _read_body(receive)
    if raw is None:
        return  # the client went away while sending its request
    state.requests += 1
    state.last_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    try:
        body = json.loads(raw)
    except ValueError:
        await _respond(send, 400, _error("request body is not JSON", "invalid_json"))
        return
    if not isinstance(body, dict):
        await _respond(send, 400, _error("request body is not a JSON object", "invalid_json"))
        return
    state.last_body = body
    if await _refused(state, send):
        return
    await _answer(state, path == "/v1/chat/completions", body, receive, send)


async def _refused(state: StubBehaviour, send: Send) -> bool:
    """Answer with an error when the behaviour says so; True when it did."""
    expected = f"Bearer {state.api_key}"
    if state.api_key is not None and state.last_headers.get("authorization") != expected:
        await _respond(send, 401, _error("invalid API key", "invalid_api_key"))
        return True
    status = None
    if state.fail_first > 0:
        state.fail_first -= 1
        status = state.fail_status
    elif state.mode == "error500":
        status = 500
    elif state.mode == "error429":
        status = 429
    if status is None:
        return False
    headers = []
    if status == 429 and state.retry_after is not None:
        headers.append((b"retry-after", state.retry_after.encode()))
    code = "rate_limit_exceeded" if status == 429 else "server_error"
    await _respond(send, status, _error(f"stub failure (HTTP {status})", code), headers)
    return True


async def _answer(
    state: StubBehaviour, chat: bool, body: dict[str, Any], receive: Receive, send: Send
) -> None:
    stream = bool(body.get("stream"))
    if state.mode == "hang":
        await _until_disconnect(receive)
        state.disconnects += 1
        return
    if state.mode == "garbage" or state.raw is not None:
        await _garbage(stream, send, state.raw, state.raw_content_type)
        return
    words, prompt_tokens, reason = _words(state, chat, body)
    if stream:
        options = body.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        answer = _Answer(state.model, chat, words, prompt_tokens, reason, usage)
        await _stream(state, answer, receive, send)
        return
    if state.mode == "slow" and state.delay_s > 0:
        await asyncio.sleep(state.delay_s)
    if state.mode == "disconnect":
        await _send_partial(send, _JSON, b'{"id": "cmpl-stub", "choices": [')
        return
    await _respond(send, 200, _completion(state, chat, words, prompt_tokens, reason))


def _words(state: StubBehaviour, chat: bool, body: dict[str, Any]) -> tuple[list[str], int, str]:
    """The answer's words, the prompt's token count and the finish reason."""
    if chat:
        messages = body.get("messages")
        messages = messages if isinstance(messages, list) else []
        contents = [str(m.get("content") or "") for m in messages if isinstance(m, dict)]
        users = [str(m.get("content") or "") for m in messages if _is_user(m)]
        question = users[-1] if users else ""
    else:
        contents = [str(body.get("prompt") or "")]
        question = contents[0]
    text = state.text if state.text is not None else f"stub: {question}"
    words = text.split()
    limit = body.get("max_tokens")
    reason = "stop"
    if isinstance(limit, int) and 0 < limit < len(words):
        words, reason = words[:limit], "length"
    return words, sum(len(c.split()) for c in contents), reason


def _is_user(message: object) -> bool:
    return isinstance(message, dict) and message.get("role") == "user"


def _completion(
    state: StubBehaviour, chat: bool, words: list[str], prompt_tokens: int, reason: str
) -> dict[str, Any]:
    text = " ".join(words)
    if chat:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
    else:
        choice = {"index": 0, "text": text, "logprobs": None}
    choice["finish_reason"] = reason
    result: dict[str, Any] = {
        "id": f"cmpl-stub-{state.requests}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": state.model,
        "choices": [choice],
    }
    if state.usage:
        result["usage"] = _usage(prompt_tokens, len(words))
    return result


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@dataclass(frozen=True)
class _Answer:
    model: str
    chat: bool
    words: list[str]
    prompt_tokens: int
    reason: str
    include_usage: bool

    def chunk(self, text: str | None, reason: str | None = None, role: bool = False) -> bytes:
        if self.chat:
            delta: dict[str, Any] = {} if text is None else {"content": text}
            if role:
                delta["role"] = "assistant"
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": reason}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": reason}
        return self._event([choice])

    def usage_chunk(self) -> bytes:
        return self._event([], _usage(self.prompt_tokens, len(self.words)))

    def _event(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        data: dict[str, Any] = {
            "id": "cmpl-stub",
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            data["usage"] = usage
        return b"data: " + json.dumps(data).encode() + b"\n\n"


async def _stream(state: StubBehaviour, answer: _Answer, receive: Receive, send: Send) -> None:
    """Send the answer word by word, noticing when the client goes away."""
    gone = asyncio.Event()
    watcher = asyncio.create_task(_watch_disconnect(receive, gone))
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
        if answer.chat:  # OpenAI's first chunk carries the role and no text
            first = answer.chunk("", role=True)
            await send({"type": "http.response.body", "body": first, "more_body": True})
        for i, word in enumerate(answer.words):
            if state.mode == "slow" and state.delay_s > 0:
                await _sleep_unless(gone, state.delay_s)
            if gone.is_set():
                state.disconnects += 1
                return
            if state.mode == "disconnect" and i == 1:
                return  # headers and one chunk sent, then the connection drops
            piece = word if i == 0 else " " + word
            await send(
                {"type": "http.response.body", "body": answer.chunk(piece), "more_body": True}
            )
        tail = answer.chunk(None, answer.reason)
        if answer.include_usage:
            tail += answer.usage_chunk()
        tail += b"data: [DONE]\n\n"
        await send({"type": "http.response.body", "body": tail, "more_body": False})
    finally:
        watcher.cancel()


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


async def _sleep_unless(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _garbage(stream: bool, send: Send, raw: bytes | None, content_type: str | None) -> None:
    if raw is None:
        raw = b"data: {this is not json\n\ndata: [DONE]\n\n" if stream else b"<html>oops</html>"
    headers = _SSE if stream else _JSON
    if content_type is not None:
        headers = [(b"content-type", content_type.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": raw, "more_body": False})


async def _send_partial(send: Send, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """Promise more than is sent, then return: the server drops the connection."""
    length = (b"content-length", str(len(body) * 10).encode())
    await send({"type": "http.response.start", "status": 200, "headers": [*headers, length]})
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Send,
    status: int,
    payload: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(payload).encode()
    all_headers = [*_JSON, (b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _error(message: str, code: str) -> dict[str, Any]:
    kind = "server_error" if code == "server_error" else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def serve(
    host: str = "127.0.0.1", port: int = 9000, behaviour: StubBehaviour | None = None
) -> None:
    """Run the stub in the foreground (blocks) with uvicorn."""
    import uvicorn

    uvicorn.run(
        stub_upstream_app(behaviour),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible stub upstream server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--mode", default="ok", choices=Mode.__args__)  # type: ignore[attr-defined]
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--text", default=None, help="A fixed answer (default: echo)")
    parser.add_argument("--model", default="stub-model", help="The model name it serves")
    args = parser.parse_args(argv)
    behaviour = StubBehaviour(
        mode=args.mode, delay_s=args.delay_s, text=args.text, model=args.model
    )
    serve(args.host, args.port, behaviour)


if __name__ == "__main__":
    main()

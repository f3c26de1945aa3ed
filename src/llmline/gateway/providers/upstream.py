"""The ``upstream`` provider: an OpenAI-compatible server (vLLM, TGI,
llama.cpp, Ollama, OpenAI itself) named in ``llmline.yaml``'s ``upstreams:``
and reached as ``upstream:NAME``.

A few pooled ``httpx.AsyncClient`` per upstream, used in turn: one pool's
bookkeeping grows with its connections (encode/httpx#3215), and at 32
concurrent requests four smaller pools halve the CPU per request.  Connect errors, timeouts,
HTTP 429 and 5xx are retried with jittered exponential backoff (honouring a
``Retry-After``, capped); a stream is only retried before its first piece of
text was handed on, since what the client has seen cannot be taken back.
Anything that is not a completion (non-JSON, JSON without ``choices``, a
broken event stream) becomes :class:`~llmline.gateway.errors.BackendError`;
a :class:`~llmline.gateway.providers.breaker.CircuitBreaker` stops calls to
an upstream that keeps failing, so the router falls back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import itertools
import json
import os
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import httpx
from pydantic import ValidationError

from llmline.errors import ConfigError
from llmline.gateway.config import UpstreamSettings
from llmline.gateway.errors import (
    BackendError,
    BackendRateLimited,
    BackendTimeout,
    BackendUnavailable,
)
from llmline.gateway.providers.base import (
    BackendHealth,
    FinishReason,
    GenerationChunk,
    GenerationOutput,
    GenerationRequest,
    ProviderContext,
    split_target,
)
from llmline.gateway.providers.breaker import CircuitBreaker

__all__ = ["BACKOFF_CAP_S", "RETRY_AFTER_CAP_S", "UpstreamProvider", "create", "estimate_tokens"]

T = TypeVar("T")

# A Retry-After longer than this is not waited out: the router's fallbacks
# serve the request sooner than a retry would.
RETRY_AFTER_CAP_S = 5.0
BACKOFF_CAP_S = 5.0
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "abort": "cancelled",
}
_SNIPPET = 200


def estimate_tokens(text: str) -> int:
    """About one token per four characters, rounded up: OpenAI's rule of
    thumb for English with BPE tokenizers.  Upstreams do not expose their
    tokenizer, and this only feeds prompt-size caps and missing usage."""
    return -(-len(text) // 4)


class _Failure(Exception):
    """One failed attempt: the error to raise and whether to try again."""

    def __init__(
        self,
        error: BackendError,
        *,
        retryable: bool,
        counts: bool = True,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(error.message)
        self.error = error
        self.retryable = retryable
        self.counts = counts  # False: the upstream answered fine, the request was at fault
        self.retry_after_s = retry_after_s


class UpstreamProvider:
    """Serves ``upstream:NAME`` from the OpenAI-compatible server in ``settings``."""

    def __init__(
        self,
        target: str,
        name: str,
        settings: UpstreamSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.target = target
        self.name = name
        self.settings = settings
        self.breaker = CircuitBreaker(
            settings.breaker_failures, settings.breaker_reset_s, clock=clock
        )
        self._rng = rng or random.Random()
        self._sleep = sleep  # injectable so tests can see backoff delays without waiting
        self._client: httpx.AsyncClient | None = None  # the first pool; None: not started
        self._clients: list[httpx.AsyncClient] = []
        self._turn = itertools.count()
        self._failed: str | None = None
        self._detail = "not started"

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        headers = {"Accept": "application/json"}
        env = self.settings.api_key_env
        if env is not None:
            key = os.environ.get(env, "")
            if not key:
                self._failed = f"upstream {self.name}: environment variable {env} is not set"
                return
            headers["Authorization"] = f"Bearer {key}"
        shards = self.settings.pool_shards
        limit = max(1, -(-self.settings.max_connections // shards))
        self._clients = [
            httpx.AsyncClient(
                base_url=self.settings.base_url,
                headers=headers,
                timeout=httpx.Timeout(
                    self.settings.timeout_s, connect=self.settings.connect_timeout_s
                ),
                # Keep every pooled connection alive: reconnecting per request
                # costs more than the request itself at high request rates.
                limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            )
            for _ in range(shards)
        ]
        self._client = self._clients[0]
        self._detail = await self._probe()

    async def _probe(self) -> str:
        """One ``GET /models`` for the health detail; never fails start()."""
        assert self._client is not None
        try:
            async with asyncio.timeout(self.settings.connect_timeout_s):
                response = await self._client.get("models")
            response.raise_for_status()
            listed = [str(m.get("id")) for m in response.json().get("data", [])]
        except (httpx.HTTPError, TimeoutError, ValueError, AttributeError, TypeError) as exc:
            return f"GET /models failed: {_describe(exc)}"
        if self.settings.model in listed:
            return f"serves {self.settings.model}"
        return f"{self.settings.model} is not among its models ({', '.join(listed[:5])})"

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients = []
        self._client = None
        self._detail = "closed"

    def health(self) -> BackendHealth:
        if self._failed is not None:
            return BackendHealth("failed", self._failed)
        if self._client is None:
            return BackendHealth("loading", self._detail)
        state = self.breaker.state
        # Half-open reports ready so that the router sends the trial request.
        if state == "open" or (state == "half-open" and self.breaker.trial_in_flight()):
            return BackendHealth("open", self._open_detail())
        return BackendHealth("ready", self._detail)

    def _open_detail(self) -> str:
        return (
            f"upstream {self.name}: circuit open after "
            f"{self.breaker.consecutive_failures} consecutive failures "
            f"(last: {self.breaker.last_failure or 'unknown'}); "
            f"next trial in {self.breaker.retry_in_s():.1f} s"
        )

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    # -- generation ----------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> GenerationOutput:
        path, payload = self._payload(request, stream=False)
        chat = request.messages is not None

        async def attempt() -> tuple[str, FinishReason | None, tuple[int, int] | None, Any]:
            data = await self._post_json(path, payload, request)
            return (*_parse_completion(self.name, data, chat), _tool_calls(data))

        text, reason, usage, tool_calls = await self._with_retries(attempt)
        prompt_tokens, completion_tokens = usage or (
            self._prompt_tokens(request),
            estimate_tokens(text),
        )
        if tool_calls:
            reason = "tool_calls"
        return GenerationOutput(
            text, reason or "stop", prompt_tokens, completion_tokens, tool_calls=tool_calls
        )

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        path, payload = self._payload(request, stream=True)
        last: _Failure | None = None
        for attempt in range(self.settings.max_retries + 1):
            self._admit(last)
            started = False
            try:
                # aclosing: leaving early (cancelled, or the consumer stopped)
                # closes the upstream response now, not when garbage-collected.
                chunks = self._attempt_stream(path, payload, request)
                async with contextlib.aclosing(chunks):
                    async for chunk in chunks:
                        started = True
                        yield chunk
            except _Failure as failure:
                # Text already handed on cannot be taken back: no retry then.
                last = await self._retry_or_raise(failure, attempt, started=started)
                continue
            except BaseException:
                self.breaker.release()
                raise
            self.breaker.record_success()
            return

    async def _with_retries(self, attempt_once: Callable[[], Awaitable[T]]) -> T:
        last: _Failure | None = None
        for attempt in range(self.settings.max_retries + 1):
            self._admit(last)
            try:
                result = await attempt_once()
            except _Failure as failure:
                last = await self._retry_or_raise(failure, attempt)
                continue
            except BaseException:
                self.breaker.release()
                raise
            self.breaker.record_success()
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _retry_or_raise(
        self, failure: _Failure, attempt: int, *, started: bool = False
    ) -> _Failure:
        """Record a failed attempt; raise its error unless another attempt
        may follow, else wait the backoff and return it as the last failure."""
        self._record(failure)
        if started or not self._may_retry(failure, attempt):
            raise failure.error from failure.__cause__
        await self._sleep(self._backoff_s(attempt, failure.retry_after_s))
        return failure

    def _admit(self, last: _Failure | None) -> None:
        """Refuse the attempt when the circuit is open (or not started)."""
        if self._failed is not None:
            raise BackendUnavailable(self._failed)
        if self._client is None:
            raise BackendUnavailable(f"upstream {self.name} is not started")
        if self.breaker.allow():
            return
        if last is not None:  # the circuit opened during our retries
            raise last.error from last.__cause__
        raise BackendUnavailable(self._open_detail())

    def _record(self, failure: _Failure) -> None:
        if failure.counts:
            self.breaker.record_failure(failure.error.message)
        else:
            self.breaker.record_success()

    def _may_retry(self, failure: _Failure, attempt: int) -> bool:
        return failure.retryable and attempt < self.settings.max_retries

    def _backoff_s(self, attempt: int, retry_after_s: float | None) -> float:
        base = min(BACKOFF_CAP_S, self.settings.backoff_s * 2.0**attempt)
        # Equal jitter: at least half the backoff, so retries spread out
        # without ever hammering a struggling upstream immediately.
        delay = base / 2 + self._rng.uniform(0, base / 2)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, RETRY_AFTER_CAP_S))
        return delay

    # -- one attempt ---------------------------------------------------------

    def _payload(self, request: GenerationRequest, *, stream: bool) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {"model": self.settings.model}
        if request.messages is not None:
            path = "chat/completions"
            payload["messages"] = [dict(m) for m in request.messages]
        else:
            path = "completions"
            payload["prompt"] = request.prompt
        payload["max_tokens"] = request.max_tokens
        payload["temperature"] = request.temperature
        payload["top_p"] = request.top_p
        if request.stop:
            payload["stop"] = list(request.stop)
        if request.seed is not None:
            payload["seed"] = request.seed
        if request.user is not None:
            payload["user"] = request.user
        for key in ("tools", "tool_choice"):  # passed through as the client sent them
            if key in request.extra:
                payload[key] = request.extra[key]
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        return path, payload

    def _request_headers(self, request: GenerationRequest) -> dict[str, str]:
        return {"X-Request-ID": request.request_id} if request.request_id else {}

    def _require_client(self) -> httpx.AsyncClient:
        if not self._clients:
            raise BackendUnavailable(f"upstream {self.name} is not started")
        return self._clients[next(self._turn) % len(self._clients)]

    async def _post_json(
        self, path: str, payload: dict[str, Any], request: GenerationRequest
    ) -> Any:
        client = self._require_client()
        headers = self._request_headers(request)
        try:
            # httpx's timeout bounds each read; this bounds the whole request.
            async with asyncio.timeout(self.settings.timeout_s):
                response = await client.post(path, json=payload, headers=headers)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise self._timeout_failure(exc) from exc
        except httpx.HTTPError as exc:
            raise self._transport_failure(exc) from exc
        self._check_status(response)
        return self._json(response)

    async def _attempt_stream(
        self, path: str, payload: dict[str, Any], request: GenerationRequest
    ) -> AsyncGenerator[GenerationChunk, None]:
        client = self._require_client()
        parser = _StreamParser(self.name, chat=request.messages is not None)
        headers = {**self._request_headers(request), "Accept": "text/event-stream"}
        try:
            async with client.stream("POST", path, json=payload, headers=headers) as response:
                if not response.is_success:
                    await response.aread()
                    self._check_status(response)
                if _is_json(response):  # the upstream ignored ``stream``: one piece
                    await response.aread()
                    text, reason, usage = _parse_completion(
                        self.name, self._json(response), parser.chat
                    )
                    parser.accept_whole(text, reason, usage)
                else:
                    async for line in response.aiter_lines():
                        if piece := parser.feed(line):
                            yield GenerationChunk(piece)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise self._timeout_failure(exc) from exc
        except httpx.HTTPError as exc:
            raise self._transport_failure(exc) from exc
        if parser.text and parser.whole:
            yield GenerationChunk(parser.text)
        yield parser.final(self._prompt_tokens(request))

    # -- turning answers into outputs or failures ----------------------------

    def _check_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if response.is_success:
            return
        detail = _error_message(response)
        message = f"upstream {self.name} returned HTTP {status}" + (f": {detail}" if detail else "")
        if status == 429:
            retry_after = _retry_after_s(response.headers.get("retry-after"))
            error = BackendRateLimited(message, retry_after_s=retry_after)
            raise _Failure(error, retryable=True, retry_after_s=retry_after)
        if status >= 500:
            raise _Failure(BackendError(message), retryable=True)
        if status in (401, 403) and self.settings.api_key_env:
            message += f" (check the key in {self.settings.api_key_env})"
        # Other 4xx: the upstream works but refused this request; retrying
        # would get the same answer, and it says nothing about its health.
        raise _Failure(BackendError(message), retryable=False, counts=False)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return json.loads(response.content)
        except ValueError as exc:
            message = (
                f"upstream {self.name} returned invalid JSON (HTTP {response.status_code}): "
                f"{_snippet(response.text)}"
            )
            raise _Failure(BackendError(message), retryable=False) from exc

    def _timeout_failure(self, exc: BaseException) -> _Failure:
        if isinstance(exc, httpx.ConnectTimeout):
            what = f"timed out connecting after {self.settings.connect_timeout_s} s"
        elif isinstance(exc, httpx.PoolTimeout):
            what = f"had no free connection within {self.settings.timeout_s} s"
        else:
            what = f"timed out after {self.settings.timeout_s} s"
        return _Failure(BackendTimeout(f"upstream {self.name} {what}"), retryable=True)

    def _transport_failure(self, exc: httpx.HTTPError) -> _Failure:
        if isinstance(exc, httpx.ConnectError):
            what = f"is unreachable at {self.settings.base_url} ({_describe(exc)})"
        else:
            what = f"failed: {_describe(exc)}"
        retryable = isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError)
        return _Failure(BackendError(f"upstream {self.name} {what}"), retryable=retryable)

    def _prompt_tokens(self, request: GenerationRequest) -> int:
        if request.prompt is not None:
            return estimate_tokens(request.prompt)
        return sum(estimate_tokens(_content_text(m.get("content"))) for m in request.messages or ())


@dataclass
class _StreamParser:
    """Reads an OpenAI event stream line by line (``data: {...}`` events,
    then ``data: [DONE]``), keeping what the final chunk needs."""

    upstream: str
    chat: bool
    pieces: list[str] = field(default_factory=list)
    reason: FinishReason | None = None
    usage: tuple[int, int] | None = None
    done: bool = False
    whole: bool = False
    text: str = ""

    def feed(self, line: str) -> str:
        """The text carried by ``line`` ('' for none); raises ``_Failure``."""
        if self.done or not line or line.startswith(":"):
            return ""
        if not line.startswith("data:"):
            if line.partition(":")[0] in ("event", "id", "retry"):
                return ""
            self._bad(f"sent a line that is not a server-sent event: {_snippet(line)}")
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return ""
        try:
            event = json.loads(data)
        except ValueError:
            self._bad(f"sent invalid JSON in its event stream: {_snippet(data)}")
        return self._event(event)

    def _event(self, event: Any) -> str:
        if not isinstance(event, dict):
            self._bad("sent a stream event that is not a JSON object")
        if "error" in event:
            self._bad(f"reported an error mid-stream: {_error_text(event['error'])}")
        self.usage = _parse_usage(event.get("usage")) or self.usage
        choices = event.get("choices")
        if choices is None and "usage" in event:
            return ""
        if not isinstance(choices, list):
            self._bad("sent a stream event without choices")
        if not choices:
            return ""
        choice = choices[0]
        if not isinstance(choice, dict):
            self._bad("sent a stream event with a malformed choice")
        self.reason = _finish(choice.get("finish_reason")) or self.reason
        if self.chat:
            delta = choice.get("delta")
            piece = delta.get("content") if isinstance(delta, dict) else None
        else:
            piece = choice.get("text")
        if piece is not None and not isinstance(piece, str):
            self._bad("sent stream text that is not a string")
        if piece:
            self.pieces.append(piece)
        return piece or ""

    def accept_whole(
        self, text: str, reason: FinishReason | None, usage: tuple[int, int] | None
    ) -> None:
        self.whole, self.text, self.done = True, text, True
        self.pieces, self.reason, self.usage = [text], reason, usage

    def final(self, prompt_tokens_estimate: int) -> GenerationChunk:
        if not self.done and self.reason is None:
            message = f"upstream {self.upstream} ended its stream before the answer was finished"
            raise _Failure(BackendError(message), retryable=True)
        prompt, completion = self.usage or (
            prompt_tokens_estimate,
            estimate_tokens("".join(self.pieces)),
        )
        return GenerationChunk("", self.reason or "stop", prompt, completion)

    def _bad(self, what: str) -> NoReturn:
        raise _Failure(BackendError(f"upstream {self.upstream} {what}"), retryable=False)


def _parse_completion(
    upstream: str, data: Any, chat: bool
) -> tuple[str, FinishReason | None, tuple[int, int] | None]:
    """Text, finish reason and (prompt, completion) usage of an OpenAI answer."""

    def bad(what: str) -> _Failure:
        return _Failure(BackendError(f"upstream {upstream} {what}"), retryable=False)

    if not isinstance(data, dict):
        raise bad("returned JSON that is not an object")
    if "error" in data:
        raise bad(f"returned an error: {_error_text(data['error'])}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise bad(f"returned JSON without choices: {_snippet(json.dumps(data))}")
    choice = choices[0]
    if chat:
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        text = "" if text is None and isinstance(message, dict) else text
    else:
        text = choice.get("text")
    if not isinstance(text, str):
        raise bad("returned a choice without text")
    return text, _finish(choice.get("finish_reason")), _parse_usage(data.get("usage"))


def _tool_calls(data: Any) -> tuple[dict[str, Any], ...]:
    """The first choice's OpenAI-format tool calls (already checked to be a completion)."""
    message = data["choices"][0].get("message")
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    if not isinstance(calls, list):
        return ()
    return tuple(call for call in calls if isinstance(call, dict))


def _parse_usage(usage: Any) -> tuple[int, int] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt, completion
    return None


def _finish(value: Any) -> FinishReason | None:
    if value is None:
        return None
    # tool_calls, function_call, eos...: the answer ended normally.
    return _FINISH.get(str(value), "stop")


def _retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")


def _error_message(response: httpx.Response) -> str:
    try:
        body = json.loads(response.content)
    except ValueError:
        return _snippet(response.text)
    if isinstance(body, dict) and "error" in body:
        return _error_text(body["error"])
    return _snippet(response.text)


def _error_text(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return _snippet(error["message"])
    return _snippet(str(error))


def _content_text(content: Any) -> str:
    """Text of a message's content: a string or OpenAI's list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _settings(name: str, options: dict[str, Any]) -> UpstreamSettings:
    if not options:
        raise ConfigError(f"upstream {name!r} is not configured (add it under upstreams:)")
    try:
        settings = UpstreamSettings.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"upstreams.{name} is invalid: {problems}") from None
    if not settings.base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"upstreams.{name}.base_url must start with http:// or https://, "
            f"got {settings.base_url!r}"
        )
    return settings


def create(target: str, context: ProviderContext) -> UpstreamProvider:
    """The (not yet started) provider for ``upstream:NAME``; its settings
    are ``context.options`` (``upstreams.NAME`` of ``llmline.yaml``)."""
    scheme, name = split_target(target)
    if scheme != "upstream" or not name:
        raise ConfigError(f"not an upstream target: {target!r} (expected upstream:NAME)")
    return UpstreamProvider(target, name, _settings(name, dict(context.options)))

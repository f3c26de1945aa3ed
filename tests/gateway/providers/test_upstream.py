"""The upstream provider against a real stub OpenAI server on loopback.

Every test talks real HTTP (uvicorn + httpx) to :mod:`llmline.testing.upstream`;
only the model's answer is canned.  Backoff sleeps go through a recorder so
that retry delays can be checked without waiting them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from llmline.errors import ConfigError
from llmline.gateway.config import UpstreamSettings
from llmline.gateway.errors import BackendError, BackendTimeout, BackendUnavailable
from llmline.gateway.providers import Provider, ProviderContext, create_provider
from llmline.gateway.providers.base import GenerationChunk, GenerationRequest
from llmline.gateway.providers.breaker import CircuitBreaker
from llmline.gateway.providers.upstream import (
    RETRY_AFTER_CAP_S,
    UpstreamProvider,
    create,
    estimate_tokens,
)
from llmline.testing.server import ServerThread, free_port
from llmline.testing.upstream import StubBehaviour, stub_upstream_app

__all__: list[str] = []

USER = {"role": "user", "content": "hello there world"}
CHAT = GenerationRequest(messages=(USER,))
PROMPT = GenerationRequest(prompt="once upon a time", max_tokens=3)


def state(breaker: CircuitBreaker) -> str:
    return breaker.state  # a call, so that mypy does not narrow the property


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """Records backoff delays instead of sleeping them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


class Stub:
    def __init__(self, behaviour: StubBehaviour, url: str) -> None:
        self.behaviour = behaviour
        self.url = url
        self.base_url = url + "/v1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def stub() -> Iterator[Stub]:
    behaviour = StubBehaviour()
    app = stub_upstream_app(behaviour)
    with ServerThread(app, timeout_graceful_shutdown=2) as server:
        yield Stub(behaviour, server.url)


def settings(base_url: str, **overrides: Any) -> UpstreamSettings:
    options: dict[str, Any] = {
        "base_url": base_url,
        "model": "served-model",
        "timeout_s": 5.0,
        "connect_timeout_s": 2.0,
        "max_retries": 2,
        "backoff_s": 0.01,
        **overrides,
    }
    return UpstreamSettings(**options)


@contextlib.asynccontextmanager
async def started(
    base_url: str,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleeps: Sleeps | None = None,
    **overrides: Any,
) -> AsyncIterator[UpstreamProvider]:
    provider = UpstreamProvider(
        "upstream:vllm-a",
        "vllm-a",
        settings(base_url, **overrides),
        clock=clock,
        sleep=sleeps or Sleeps(),
    )
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


async def collect(provider: UpstreamProvider, request: GenerationRequest) -> list[GenerationChunk]:
    return [chunk async for chunk in provider.stream(request)]


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait (up to a generous deadline) for the server thread to catch up."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.01)


# -- answers -------------------------------------------------------------------


@pytest.mark.anyio
async def test_chat_generate_maps_text_usage_and_sends_parameters(stub: Stub) -> None:
    request = GenerationRequest(
        messages=({"role": "system", "content": "be brief"}, USER),
        max_tokens=7,
        temperature=0.5,
        top_p=0.9,
        stop=("END",),
        seed=42,
        user="u-1",
        request_id="req-123",
    )
    async with started(stub.base_url) as provider:
        out = await provider.generate(request)
    assert out.text == "stub: hello there world"
    assert out.finish_reason == "stop"
    # The stub counts words; these are its numbers, not the estimate.
    assert (out.prompt_tokens, out.completion_tokens) == (5, 4)
    body = stub.behaviour.last_body
    assert body["model"] == "served-model"
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (7, 0.5, 0.9)
    assert (body["stop"], body["seed"], body["user"]) == (["END"], 42, "u-1")
    assert "stream" not in body
    assert stub.behaviour.last_headers["x-request-id"] == "req-123"


@pytest.mark.anyio
async def test_completion_generate_reports_length(stub: Stub) -> None:
    async with started(stub.base_url) as provider:
        out = await provider.generate(PROMPT)
    assert out.text == "stub: once upon"
    assert out.finish_reason == "length"
    assert (out.prompt_tokens, out.completion_tokens) == (4, 3)
    assert stub.behaviour.last_body["prompt"] == "once upon a time"


@pytest.mark.anyio
async def test_missing_usage_is_estimated(stub: Stub) -> None:
    stub.behaviour.usage = False
    stub.behaviour.text = "twelve chars"
    async with started(stub.base_url) as provider:
        out = await provider.generate(CHAT)
    assert out.prompt_tokens == estimate_tokens("hello there world") == 5
    assert out.completion_tokens == estimate_tokens("twelve chars") == 3


@pytest.mark.anyio
async def test_chat_stream_yields_pieces_then_final_counts(stub: Stub) -> None:
    async with started(stub.base_url) as provider:
        chunks = await collect(provider, CHAT)
    *pieces, final = chunks
    assert [c.text for c in pieces] == ["stub:", " hello", " there", " world"]
    assert all(c.finish_reason is None for c in pieces)
    assert final.text == ""
    assert (final.finish_reason, final.prompt_tokens, final.completion_tokens) == ("stop", 3, 4)
    body = stub.behaviour.last_body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.anyio
async def test_completion_stream(stub: Stub) -> None:
    async with started(stub.base_url) as provider:
        *pieces, final = await collect(provider, PROMPT)
    assert "".join(c.text for c in pieces) == "stub: once upon"
    assert (final.finish_reason, final.prompt_tokens, final.completion_tokens) == ("length", 4, 3)


@pytest.mark.anyio
async def test_stream_without_usage_is_estimated(stub: Stub) -> None:
    # An upstream that ignores stream_options sends no usage chunk.
    stub.behaviour.raw = (
        b'data: {"choices": [{"index": 0, "delta": {"content": "abcdefgh"}}]}\n\n'
        b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    async with started(stub.base_url) as provider:
        *pieces, final = await collect(provider, CHAT)
    assert [c.text for c in pieces] == ["abcdefgh"]
    assert (final.finish_reason, final.prompt_tokens, final.completion_tokens) == ("length", 5, 2)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("upstream_reason", "reason"),
    [("tool_calls", "stop"), ("abort", "cancelled"), ("content_filter", "content_filter")],
)
async def test_finish_reasons_are_mapped(stub: Stub, upstream_reason: str, reason: str) -> None:
    choice = {"message": {"content": "x"}, "finish_reason": upstream_reason}
    stub.behaviour.raw = json.dumps({"choices": [choice]}).encode()
    async with started(stub.base_url) as provider:
        out = await provider.generate(CHAT)
    assert out.finish_reason == reason


@pytest.mark.anyio
async def test_api_key_is_sent_as_bearer(stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMLINE_TEST_UPSTREAM_KEY", "sk-test-123")
    stub.behaviour.api_key = "sk-test-123"
    async with started(stub.base_url, api_key_env="LLMLINE_TEST_UPSTREAM_KEY") as provider:
        out = await provider.generate(CHAT)
    assert out.text.startswith("stub:")
    assert stub.behaviour.last_headers["authorization"] == "Bearer sk-test-123"


@pytest.mark.anyio
async def test_missing_api_key_env_fails_health_not_start(
    stub: Stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMLINE_TEST_UPSTREAM_KEY", raising=False)
    async with started(stub.base_url, api_key_env="LLMLINE_TEST_UPSTREAM_KEY") as provider:
        health = provider.health()
        assert health.state == "failed"
        assert "LLMLINE_TEST_UPSTREAM_KEY" in health.detail
        with pytest.raises(BackendUnavailable):
            await provider.generate(CHAT)
    assert stub.behaviour.requests == 0


@pytest.mark.anyio
async def test_health_lifecycle_and_probe_detail(stub: Stub) -> None:
    stub.behaviour.model = "served-model"
    provider = UpstreamProvider("upstream:vllm-a", "vllm-a", settings(stub.base_url))
    assert provider.health().state == "loading"
    await provider.start()
    assert provider.health().ready
    assert provider.health().detail == "serves served-model"
    await provider.close()
    assert not provider.health().ready
    with pytest.raises(BackendUnavailable, match="not started"):
        await provider.generate(CHAT)


@pytest.mark.anyio
async def test_start_does_not_fail_when_upstream_is_down() -> None:
    async with started(f"http://127.0.0.1:{free_port()}/v1") as provider:
        health = provider.health()
    assert health.ready  # the circuit, not the probe, decides readiness
    assert "GET /models failed" in health.detail


# -- retries -------------------------------------------------------------------


@pytest.mark.anyio
async def test_retries_then_succeeds(stub: Stub) -> None:
    stub.behaviour.fail_first = 2
    sleeps = Sleeps()
    async with started(stub.base_url, sleeps=sleeps, backoff_s=0.2) as provider:
        out = await provider.generate(CHAT)
    assert out.text == "stub: hello there world"
    assert stub.behaviour.requests == 3
    # Jittered exponential: within [base/2, base] of 0.2 s, then of 0.4 s.
    first, second = sleeps.delays
    assert 0.1 <= first <= 0.2
    assert 0.2 <= second <= 0.4
    assert provider.breaker.consecutive_failures == 0


@pytest.mark.anyio
async def test_real_backoff_sleep_then_success(stub: Stub) -> None:
    stub.behaviour.fail_first = 1
    provider = UpstreamProvider("upstream:vllm-a", "vllm-a", settings(stub.base_url))
    await provider.start()
    try:
        out = await provider.generate(PROMPT)
    finally:
        await provider.close()
    assert out.text == "stub: once upon"
    assert stub.behaviour.requests == 2


@pytest.mark.anyio
async def test_500_gives_backend_error_after_retries(stub: Stub) -> None:
    stub.behaviour.mode = "error500"
    async with started(stub.base_url, max_retries=2) as provider:
        with pytest.raises(BackendError) as caught:
            await provider.generate(CHAT)
    assert type(caught.value) is BackendError
    assert caught.value.message.startswith("upstream vllm-a returned HTTP 500")
    assert caught.value.status == 502
    assert stub.behaviour.requests == 3


@pytest.mark.anyio
async def test_4xx_is_not_retried_and_does_not_trip_the_breaker(stub: Stub) -> None:
    stub.behaviour.api_key = "expected-key"  # we send none: 401
    async with started(stub.base_url, max_retries=3, breaker_failures=1) as provider:
        with pytest.raises(BackendError, match="returned HTTP 401: invalid API key"):
            await provider.generate(CHAT)
        assert provider.health().ready
    assert stub.behaviour.requests == 1


@pytest.mark.anyio
async def test_429_retry_after_is_honoured(stub: Stub) -> None:
    stub.behaviour.fail_first, stub.behaviour.fail_status = 1, 429
    stub.behaviour.retry_after = "3"
    sleeps = Sleeps()
    async with started(stub.base_url, sleeps=sleeps) as provider:
        out = await provider.generate(CHAT)
    assert out.text.startswith("stub:")
    assert stub.behaviour.requests == 2
    assert sleeps.delays == [3.0]


@pytest.mark.anyio
async def test_retry_after_is_capped_and_accepts_http_dates(stub: Stub) -> None:
    stub.behaviour.mode = "error429"
    stub.behaviour.retry_after = email.utils.formatdate(time.time() + 3600, usegmt=True)
    sleeps = Sleeps()
    async with started(stub.base_url, sleeps=sleeps, max_retries=1) as provider:
        with pytest.raises(BackendError, match="returned HTTP 429") as caught:
            await provider.generate(CHAT)
    assert caught.value.code == "upstream_rate_limited"
    assert sleeps.delays == [RETRY_AFTER_CAP_S]
    assert stub.behaviour.requests == 2


@pytest.mark.anyio
async def test_hang_raises_backend_timeout_and_hangs_up(stub: Stub) -> None:
    stub.behaviour.mode = "hang"
    async with started(stub.base_url, timeout_s=0.3, max_retries=1) as provider:
        with pytest.raises(BackendTimeout, match=r"upstream vllm-a timed out after 0\.3 s"):
            await provider.generate(CHAT)
    assert stub.behaviour.requests == 2  # timeouts are retried
    await eventually(lambda: stub.behaviour.disconnects == 2, "the stub saw both hang-ups")


@pytest.mark.anyio
async def test_stream_hang_raises_backend_timeout(stub: Stub) -> None:
    stub.behaviour.mode = "hang"
    async with started(stub.base_url, timeout_s=0.3, max_retries=0) as provider:
        with pytest.raises(BackendTimeout) as caught:
            await collect(provider, CHAT)
    assert caught.value.status == 504


@pytest.mark.anyio
async def test_unreachable_upstream_errors_then_opens_circuit() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    async with started(base_url, max_retries=1, breaker_failures=2) as provider:
        with pytest.raises(BackendError, match="upstream vllm-a is unreachable"):
            await provider.generate(CHAT)
        with pytest.raises(BackendUnavailable, match="circuit open after 2 consecutive"):
            await provider.generate(CHAT)


# -- malformed answers ---------------------------------------------------------


@pytest.mark.anyio
async def test_garbage_body_is_a_backend_error(stub: Stub) -> None:
    stub.behaviour.mode = "garbage"
    async with started(stub.base_url) as provider:
        with pytest.raises(BackendError, match="returned invalid JSON"):
            await provider.generate(CHAT)
        with pytest.raises(BackendError, match="invalid JSON in its event stream"):
            await collect(provider, CHAT)
    assert stub.behaviour.requests == 2  # malformed answers are not retried


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"id": "x"}', "without choices"),
        (b'{"choices": []}', "without choices"),
        (b"[1, 2]", "not an object"),
        (b'{"choices": [{"message": {"content": 7}}]}', "without text"),
        (b'{"error": {"message": "model overloaded"}}', "returned an error: model overloaded"),
    ],
)
async def test_malformed_json_answers(stub: Stub, raw: bytes, message: str) -> None:
    stub.behaviour.raw = raw
    async with started(stub.base_url) as provider:
        with pytest.raises(BackendError, match=message):
            await provider.generate(CHAT)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'data: {"id": "x"}\n\n', "event without choices"),
        (b"<html>hello</html>\n", "not a server-sent event"),
        (b'data: {"choices": [{"delta": {"content": 5}}]}\n\n', "not a string"),
        (b'data: {"error": {"message": "oom"}}\n\n', "error mid-stream: oom"),
        (b"", "ended its stream before the answer was finished"),
    ],
)
async def test_malformed_streams(stub: Stub, raw: bytes, message: str) -> None:
    stub.behaviour.raw = raw
    async with started(stub.base_url, max_retries=0) as provider:
        with pytest.raises(BackendError, match=message):
            await collect(provider, CHAT)


@pytest.mark.anyio
async def test_truncated_stream_after_text_is_not_retried(stub: Stub) -> None:
    stub.behaviour.raw = b'data: {"choices": [{"index": 0, "delta": {"content": "half"}}]}\n\n'
    seen: list[str] = []
    async with started(stub.base_url, max_retries=2) as provider:
        with pytest.raises(BackendError, match="ended its stream before"):
            async for chunk in provider.stream(CHAT):
                seen.append(chunk.text)
    assert seen == ["half"]
    assert stub.behaviour.requests == 1


@pytest.mark.anyio
async def test_dropped_connection_mid_stream_is_not_retried(stub: Stub) -> None:
    stub.behaviour.mode = "disconnect"
    seen: list[str] = []
    async with started(stub.base_url, max_retries=2) as provider:
        with pytest.raises(BackendError, match="upstream vllm-a failed"):
            async for chunk in provider.stream(CHAT):
                seen.append(chunk.text)
    assert seen == ["stub:"]
    assert stub.behaviour.requests == 1


@pytest.mark.anyio
async def test_dropped_connection_without_stream_is_retried(stub: Stub) -> None:
    stub.behaviour.mode = "disconnect"
    async with started(stub.base_url, max_retries=1) as provider:
        with pytest.raises(BackendError, match="upstream vllm-a failed"):
            await provider.generate(CHAT)
    assert stub.behaviour.requests == 2


@pytest.mark.anyio
async def test_stream_retries_before_first_piece(stub: Stub) -> None:
    stub.behaviour.fail_first = 1
    async with started(stub.base_url) as provider:
        chunks = await collect(provider, CHAT)
    assert "".join(c.text for c in chunks) == "stub: hello there world"
    assert stub.behaviour.requests == 2


@pytest.mark.anyio
async def test_upstream_ignoring_stream_flag_still_streams(stub: Stub) -> None:
    stub.behaviour.raw = (
        b'{"choices": [{"message": {"content": "all at once"}, "finish_reason": "stop"}],'
        b' "usage": {"prompt_tokens": 9, "completion_tokens": 3}}'
    )
    stub.behaviour.raw_content_type = "application/json"
    async with started(stub.base_url) as provider:
        *pieces, final = await collect(provider, CHAT)
    assert [c.text for c in pieces] == ["all at once"]
    assert (final.finish_reason, final.prompt_tokens, final.completion_tokens) == ("stop", 9, 3)


# -- cancellation --------------------------------------------------------------


@pytest.mark.anyio
async def test_cancelling_the_consumer_closes_the_upstream_stream(stub: Stub) -> None:
    stub.behaviour.mode, stub.behaviour.delay_s = "slow", 0.2
    stub.behaviour.text = " ".join(f"w{i}" for i in range(100))
    first = asyncio.Event()
    async with started(stub.base_url) as provider:

        async def consume() -> None:
            async for _ in provider.stream(CHAT):
                first.set()

        before = asyncio.all_tasks()
        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(lambda: stub.behaviour.disconnects == 1, "the stub saw the hang-up")
        assert asyncio.all_tasks() == before  # nothing left running
        # The connection pool is still usable, and the breaker did not count it.
        assert provider.breaker.consecutive_failures == 0
        stub.behaviour.mode = "ok"
        out = await provider.generate(CHAT)
    assert out.text.startswith("w0 w1 w2")


@pytest.mark.anyio
async def test_breaking_out_of_a_stream_closes_the_upstream_response(stub: Stub) -> None:
    stub.behaviour.mode, stub.behaviour.delay_s = "slow", 0.2
    stub.behaviour.text = " ".join(f"w{i}" for i in range(100))
    async with started(stub.base_url) as provider:
        stream = provider.stream(CHAT)
        async with contextlib.aclosing(stream):
            async for _ in stream:
                break
        await eventually(lambda: stub.behaviour.disconnects == 1, "the stub saw the hang-up")


# -- circuit breaker -----------------------------------------------------------


@pytest.mark.anyio
async def test_circuit_opens_then_fails_fast_without_calling(stub: Stub) -> None:
    stub.behaviour.mode = "error500"
    clock = Clock()
    async with started(
        stub.base_url, clock=clock, max_retries=0, breaker_failures=3, breaker_reset_s=30
    ) as provider:
        for _ in range(3):
            with pytest.raises(BackendError, match="HTTP 500"):
                await provider.generate(CHAT)
        health = provider.health()
        assert health.state == "open"
        assert "3 consecutive failures" in health.detail
        assert "HTTP 500" in health.detail
        with pytest.raises(BackendUnavailable) as caught:
            await provider.generate(CHAT)
        with pytest.raises(BackendUnavailable):
            await collect(provider, CHAT)
    assert caught.value.status == 503
    assert stub.behaviour.requests == 3


@pytest.mark.anyio
async def test_retries_stop_when_the_circuit_opens(stub: Stub) -> None:
    stub.behaviour.mode = "error500"
    async with started(stub.base_url, max_retries=5, breaker_failures=2) as provider:
        with pytest.raises(BackendError, match="HTTP 500"):
            await provider.generate(CHAT)
    assert stub.behaviour.requests == 2


@pytest.mark.anyio
async def test_half_open_trial_reopens_on_failure_and_closes_on_success(stub: Stub) -> None:
    stub.behaviour.mode = "error500"
    clock = Clock()
    async with started(
        stub.base_url, clock=clock, max_retries=0, breaker_failures=2, breaker_reset_s=30
    ) as provider:
        for _ in range(2):
            with pytest.raises(BackendError):
                await provider.generate(CHAT)
        assert provider.health().state == "open"
        clock.now += 30
        assert provider.health().ready  # half-open: the router may send the trial
        with pytest.raises(BackendError, match="HTTP 500"):
            await provider.generate(CHAT)  # the trial fails...
        assert provider.health().state == "open"  # ...and the circuit opens again
        assert stub.behaviour.requests == 3
        clock.now += 30
        stub.behaviour.mode = "ok"
        out = await provider.generate(CHAT)
        assert out.text.startswith("stub:")
        assert state(provider.breaker) == "closed"
        assert provider.health().ready
        await provider.generate(CHAT)
    assert stub.behaviour.requests == 5


def test_breaker_opens_after_consecutive_failures_only() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 10.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure("boom")
    assert breaker.allow()
    breaker.record_success()  # a success resets the count
    for _ in range(2):
        breaker.record_failure("boom")
    assert state(breaker) == "closed"
    breaker.record_failure("boom")
    assert state(breaker) == "open"
    assert not breaker.allow()
    assert breaker.retry_in_s() == 10.0
    assert breaker.last_failure == "boom"


def test_breaker_half_open_lets_one_trial_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert state(breaker) == "half-open"
    assert breaker.allow()
    assert not breaker.allow()  # only one trial at a time
    assert breaker.trial_in_flight()
    breaker.record_success()
    assert state(breaker) == "closed"
    assert breaker.allow() and breaker.allow()


def test_breaker_abandoned_trial_does_not_stick() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    breaker.release()  # e.g. the trial was cancelled
    assert breaker.allow()
    clock.now += 10  # never reports back: the lease runs out
    assert breaker.allow()
    breaker.record_failure()
    assert state(breaker) == "open"


def test_breaker_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1.0)
    with pytest.raises(ValueError):
        CircuitBreaker(1, 0.0)


# -- factory and configuration -------------------------------------------------


def test_create_through_the_entry_point(stub: Stub) -> None:
    context = ProviderContext(None, {"base_url": stub.base_url, "model": "m"})
    provider = create_provider("upstream:vllm-a", context)
    assert isinstance(provider, UpstreamProvider)
    assert isinstance(provider, Provider)
    assert (provider.target, provider.name, provider.settings.model) == (
        "upstream:vllm-a",
        "vllm-a",
        "m",
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "upstream 'vllm-a' is not configured"),
        ({"base_url": "http://x/v1"}, r"upstreams\.vllm-a is invalid: model: Field required"),
        (
            {"base_url": "http://x/v1", "model": "m", "timeout_s": 0},
            r"upstreams\.vllm-a is invalid: timeout_s: ",
        ),
        ({"base_url": "http://x/v1", "model": "m", "colour": 1}, "colour: Extra inputs"),
        ({"base_url": "x:8000", "model": "m"}, "base_url must start with http"),
    ],
)
def test_invalid_settings_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        create("upstream:vllm-a", ProviderContext(None, options))
    assert "\n" not in str(caught.value)


def test_create_rejects_other_targets() -> None:
    with pytest.raises(ConfigError, match="expected upstream:NAME"):
        create("upstream:", ProviderContext(None, {"base_url": "http://x", "model": "m"}))


def test_count_tokens_is_a_character_estimate() -> None:
    provider = create("upstream:a", ProviderContext(None, {"base_url": "http://x", "model": "m"}))
    assert [provider.count_tokens(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]


def test_stub_serves_openai_sdk_shapes(stub: Stub) -> None:
    """The stub itself, through a plain client: models, errors, unknown routes."""
    with httpx.Client(base_url=stub.base_url) as client:
        models = client.get("/models").json()
        assert models["data"][0]["id"] == "stub-model"
        assert client.post("/nope", json={}).status_code == 404
        assert client.post("/chat/completions", content=b"{").status_code == 400
        stub.behaviour.mode = "error429"
        stub.behaviour.retry_after = "2"
        response = client.post("/completions", json={"prompt": "x"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"

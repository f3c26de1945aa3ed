"""A bounded load test of a deployment over real HTTP: ``llmline loadtest``.

Requests go to the gateway's OpenAI-compatible ``/v1/chat/completions``
at a fixed arrival rate (an *open* model: request ``i`` is sent at
``i / rps`` seconds whether or not earlier ones have answered, as real
users arrive), so a slow server shows up as growing latency rather than
as a politely lowered rate.  At most ``concurrency`` requests are in
flight: a request due while that many are open is *skipped* (counted,
never queued: queueing would hide the server's latency from the figures).

Bounds: ``rps * duration`` may not exceed :data:`MAX_REQUESTS` and each
request has a timeout, so a load test always ends.  Latency percentiles are
over successful (2xx) answers, measured from the moment the request was
sent; with ``stream`` also the time to the first content token (TTFT).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from llmline.errors import UserError

__all__ = [
    "DEFAULT_PROMPT",
    "MAX_DURATION_S",
    "MAX_REQUESTS",
    "LoadTestResult",
    "Percentiles",
    "load_test",
    "run_load_test",
]

MAX_REQUESTS = 100_000
MAX_DURATION_S = 3600.0
# "{n}" becomes the request's number: unique prompts, so no cache answers them.
DEFAULT_PROMPT = "Load test request {n}: what is a list comprehension in Python?"


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p90: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles | None:
        if not values:
            return None
        ordered = sorted(values)

        def rank(q: float) -> float:
            return round(ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1], 3)

        mean = round(sum(ordered) / len(ordered), 3)
        return cls(rank(50), rank(90), rank(99), mean, round(ordered[-1], 3))


@dataclass
class LoadTestResult:
    deployment: str
    url: str
    target_rps: float
    duration_s: float
    concurrency: int
    stream: bool
    scheduled: int  # requests the rate and duration call for
    sent: int
    skipped: int  # due while `concurrency` requests were in flight: not sent
    ok: int  # 2xx answers
    errors: dict[str, int]  # by HTTP status, or by the client error's name
    elapsed_s: float  # from the first request sent to the last answer
    sent_rps: float  # the arrival rate achieved while sending
    achieved_rps: float  # answers (any status) per second of elapsed time
    latency_ms: Percentiles | None
    ttft_ms: Percentiles | None
    completion_tokens: int
    max_in_flight: int
    notes: list[str] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_count": self.error_count}


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    completion_tokens: int = 0
    answered: int = 0  # HTTP answers of any status (client errors are not answers)
    in_flight: int = 0
    max_in_flight: int = 0
    last_answer: float = 0.0


def _check_bounds(rps: float, duration_s: float, concurrency: int) -> int:
    if not (rps > 0 and math.isfinite(rps)):
        raise UserError(f"--rps must be a positive number, not {rps:g}")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise UserError(f"--duration must be over 0 and at most {MAX_DURATION_S:g} s")
    if concurrency < 1:
        raise UserError(f"--concurrency must be at least 1, not {concurrency}")
    scheduled = math.floor(rps * duration_s + 1e-9)
    if scheduled > MAX_REQUESTS:
        raise UserError(
            f"refusing to send {scheduled} requests ({rps:g} rps for {duration_s:g} s): "
            f"the cap is {MAX_REQUESTS}; lower --rps or --duration"
        )
    if scheduled < 1:
        raise UserError(f"{rps:g} rps for {duration_s:g} s is less than one request")
    return scheduled


def _body(deployment: str, prompt: str, n: int, max_tokens: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": deployment,
        "messages": [{"role": "user", "content": prompt.replace("{n}", str(n))}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


async def _read_stream(response: httpx.Response, sent: float, tally: _Tally) -> str | None:
    """Consume an SSE answer; the TTFT is recorded; an error event's type, if any."""
    first = True
    async for line in response.aiter_lines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        if "error" in event:
            return str(event["error"].get("type") or "stream_error")
        choices = event.get("choices") or []
        if first and any((c.get("delta") or {}).get("content") for c in choices):
            tally.ttfts.append((time.perf_counter() - sent) * 1000)
            first = False
        usage = event.get("usage")
        if usage:
            tally.completion_tokens += int(usage.get("completion_tokens") or 0)
    return None


async def _one(client: httpx.AsyncClient, body: dict[str, Any], tally: _Tally) -> None:
    sent = time.perf_counter()
    try:
        if body.get("stream"):
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                failure = None
                if response.is_success:
                    failure = await _read_stream(response, sent, tally)
                else:
                    await response.aread()
        else:
            response = await client.post("/v1/chat/completions", json=body)
            failure = None
            if response.is_success:
                usage = response.json().get("usage") or {}
                tally.completion_tokens += int(usage.get("completion_tokens") or 0)
    except httpx.HTTPError as exc:
        tally.errors[type(exc).__name__] += 1
        return
    finally:
        tally.in_flight -= 1
        tally.last_answer = time.perf_counter()
    tally.answered += 1
    if not response.is_success:
        tally.errors[str(response.status_code)] += 1
    elif failure is not None:
        tally.errors[failure] += 1
    else:
        tally.latencies.append((time.perf_counter() - sent) * 1000)


async def run_load_test(
    url: str,
    deployment: str,
    *,
    rps: float,
    duration_s: float,
    concurrency: int = 64,
    max_tokens: int = 16,
    prompt: str = DEFAULT_PROMPT,
    stream: bool = False,
    api_key: str | None = None,
    timeout_s: float = 60.0,
) -> LoadTestResult:
    """Send ``rps`` requests per second for ``duration_s`` to ``deployment``
    of the gateway at ``url`` (its root, e.g. ``http://127.0.0.1:8000``)."""
    scheduled = _check_bounds(rps, duration_s, concurrency)
    base = url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    tally = _Tally()
    tasks: list[asyncio.Task[None]] = []
    skipped = 0
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=timeout_s
    ) as client:
        start = last_sent = time.perf_counter()
        for n in range(scheduled):
            delay = start + n / rps - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if tally.in_flight >= concurrency:
                skipped += 1
                continue
            tally.in_flight += 1
            last_sent = time.perf_counter()
            tally.max_in_flight = max(tally.max_in_flight, tally.in_flight)
            body = _body(deployment, prompt, n, max_tokens, stream)
            tasks.append(asyncio.create_task(_one(client, body, tally)))
        await asyncio.gather(*tasks)
    elapsed = max(tally.last_answer - start, 1e-9)
    # n requests are n - 1 intervals apart: the rate they really arrived at.
    sent_rps = (len(tasks) - 1) / (last_sent - start) if last_sent > start else 0.0
    return LoadTestResult(
        deployment=deployment,
        url=base,
        target_rps=rps,
        duration_s=duration_s,
        concurrency=concurrency,
        stream=stream,
        scheduled=scheduled,
        sent=len(tasks),
        skipped=skipped,
        ok=len(tally.latencies),
        errors=dict(sorted(tally.errors.items())),
        elapsed_s=round(elapsed, 3),
        sent_rps=round(sent_rps, 2),
        achieved_rps=round(tally.answered / elapsed, 2),
        latency_ms=Percentiles.of(tally.latencies),
        ttft_ms=Percentiles.of(tally.ttfts) if stream else None,
        completion_tokens=tally.completion_tokens,
        max_in_flight=tally.max_in_flight,
        notes=_notes(skipped, tally, stream),
    )


def _notes(skipped: int, tally: _Tally, stream: bool) -> list[str]:
    notes = []
    if skipped:
        notes.append(
            f"{skipped} requests were skipped: the concurrency limit was reached "
            "(the server is slower than the rate; raise --concurrency or lower --rps)"
        )
    if stream and tally.latencies and not tally.ttfts:
        notes.append("no answer streamed any content: TTFT not measured")
    return notes


def load_test(url: str, deployment: str, **options: Any) -> LoadTestResult:
    """:func:`run_load_test` from synchronous code (its own event loop)."""
    return asyncio.run(run_load_test(url, deployment, **options))

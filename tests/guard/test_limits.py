"""Token buckets, stream slots and ledgers: the same behaviour in process
and in a real redis-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from llmline.gateway.errors import InvalidRequestError, RateLimitError
from llmline.guard.limits import (
    BudgetLedger,
    MemoryLedger,
    MemoryRateLimiter,
    RateLimiter,
    RedisLedger,
    RedisRateLimiter,
    Take,
)
from llmline.guard.quota import Limits, Quota, period_end, period_scope
from llmline.testing import RedisServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[RateLimiter, BudgetLedger]]:
    if request.param == "memory":
        yield MemoryRateLimiter(), MemoryLedger()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"t{uuid.uuid4().hex[:8]}:"  # tests share the server: private keys
    yield (
        RedisRateLimiter.from_url(server.url, prefix=prefix),
        RedisLedger.from_url(server.url, prefix=prefix),
    )


def test_bucket_grants_up_to_its_size_then_says_how_long_to_wait(backend) -> None:
    limiter, _ = backend

    async def scenario() -> list[float]:
        waits = [await limiter.take([Take("k:rpm", 6, 1)]) for _ in range(8)]
        await limiter.aclose()
        return waits

    waits = asyncio.run(scenario())
    assert waits[:6] == [0.0] * 6
    # 6 per minute refill one every 10 s: the 7th waits about 10 s.
    assert all(9.0 < w <= 10.0 for w in waits[6:]), waits


def test_all_or_nothing_across_buckets(backend) -> None:
    limiter, _ = backend

    async def scenario() -> tuple[float, float, float]:
        assert await limiter.take([Take("dep:rpm", 1, 1)]) == 0.0
        # The deployment is out: the key's bucket must not be charged either.
        refused = await limiter.take([Take("key:rpm", 2, 1), Take("dep:rpm", 1, 1)])
        first = await limiter.take([Take("key:rpm", 2, 1)])
        second = await limiter.take([Take("key:rpm", 2, 1)])
        await limiter.aclose()
        return refused, first, second

    refused, first, second = asyncio.run(scenario())
    assert refused > 0
    assert (first, second) == (0.0, 0.0)


def test_adjust_gives_back_and_takes_more(backend) -> None:
    limiter, _ = backend
    take = Take("k:tpm", 100, 80)

    async def scenario() -> tuple[float, float, float]:
        assert await limiter.take([take]) == 0.0
        blocked = await limiter.take([Take("k:tpm", 100, 50)])
        await limiter.adjust(take, 60)  # used 20 of the 80 reserved
        granted = await limiter.take([Take("k:tpm", 100, 50)])
        await limiter.adjust(take, -100)  # used far more than reserved: the bucket goes below 0
        after = await limiter.take([Take("k:tpm", 100, 1)])
        await limiter.aclose()
        return blocked, granted, after

    blocked, granted, after = asyncio.run(scenario())
    assert blocked > 0 and granted == 0.0
    assert after > 30  # about 70 tokens short at 100/min: ~42 s


def test_memory_bucket_refills_with_time() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    take = Take("k", 60, 1)
    asyncio.run(limiter.take([Take("k", 60, 60)]))
    assert asyncio.run(limiter.take([take])) > 0
    clock.now += 1.0  # one per second
    assert asyncio.run(limiter.take([take])) == 0.0
    assert asyncio.run(limiter.take([take])) > 0


def test_stream_slots(backend) -> None:
    limiter, _ = backend

    async def scenario() -> list[bool]:
        got = [await limiter.open_stream("key:k", 2, f"s{i}") for i in range(3)]
        await limiter.close_stream("key:k", "s0")
        got.append(await limiter.open_stream("key:k", 2, "s3"))
        await limiter.aclose()
        return got

    assert asyncio.run(scenario()) == [True, True, False, True]


def test_ledger_charges_once_per_request(backend) -> None:
    _, ledger = backend

    async def scenario() -> tuple[list[bool], list[float]]:
        charged = [
            await ledger.charge("r1", ["a", "b"], 0.25),
            await ledger.charge("r1", ["a", "b"], 0.25),  # a replay
            await ledger.charge("r2", ["a"], 0.5),
        ]
        spent = await ledger.spent(["a", "b", "c"])
        await ledger.aclose()
        return charged, spent

    charged, spent = asyncio.run(scenario())
    assert charged == [True, False, True]
    assert spent == pytest.approx([0.75, 0.25, 0.0])


# -- the quota policy ----------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def quota() -> Quota:
    now = datetime(2026, 12, 3, 23, 0, tzinfo=UTC)
    return Quota(MemoryRateLimiter(), MemoryLedger(), now=lambda: now)


@pytest.mark.anyio
async def test_quota_refuses_the_excess_only(quota: Quota) -> None:
    key = Limits("key:k1", "API key k1", rpm=3)
    admitted, refused = 0, []
    for i in range(5):
        try:
            await quota.admit([key], request_id=f"r{i}", tokens=10, stream=False)
            admitted += 1
        except RateLimitError as exc:
            refused.append(exc)
    assert admitted == 3 and len(refused) == 2
    assert refused[0].headers["Retry-After"] == "20"  # 3/min: one every 20 s
    assert "API key k1: 3 requests per minute" in str(refused[0])


@pytest.mark.anyio
async def test_quota_budget_and_period_reset(quota: Quota) -> None:
    key = Limits("key:k1", "API key k1", budget_usd=1.0, budget_period="day")
    lease = await quota.admit([key], request_id="r1", tokens=10, stream=False)
    await lease.settle(tokens=10, cost_usd=1.5)
    with pytest.raises(RateLimitError) as info:
        await quota.admit([key], request_id="r2", tokens=10, stream=False)
    assert info.value.code == "budget_exceeded"
    assert info.value.headers["Retry-After"] == "3600"  # 23:00 UTC → midnight
    assert "daily budget of $1" in str(info.value)


@pytest.mark.anyio
async def test_quota_budget_left_mid_request(quota: Quota) -> None:
    key = Limits("key:k1", "API key k1", budget_usd=1.0)
    lease = await quota.admit([key], request_id="r1", tokens=10, stream=True)
    assert lease.budget_left(0.5) is None
    exhausted = lease.budget_left(1.01)
    assert exhausted is not None and exhausted[0] is key


@pytest.mark.anyio
async def test_quota_tokens_reserved_and_given_back(quota: Quota) -> None:
    key = Limits("key:k1", "API key k1", tpm=100)
    lease = await quota.admit([key], request_id="r1", tokens=90, stream=False)
    with pytest.raises(RateLimitError):
        await quota.admit([key], request_id="r2", tokens=50, stream=False)
    await lease.settle(tokens=30, cost_usd=0.0)  # 60 of the 90 come back
    await quota.admit([key], request_id="r3", tokens=50, stream=False)
    with pytest.raises(InvalidRequestError, match="more than the 100 tokens per minute"):
        await quota.admit([key], request_id="r4", tokens=101, stream=False)


@pytest.mark.anyio
async def test_quota_stream_limit_frees_on_settle(quota: Quota) -> None:
    key = Limits("key:k1", "API key k1", max_streams=1)
    lease = await quota.admit([key], request_id="s1", tokens=1, stream=True)
    with pytest.raises(RateLimitError, match="1 streams open"):
        await quota.admit([key], request_id="s2", tokens=1, stream=True)
    await quota.admit([key], request_id="n1", tokens=1, stream=False)  # not a stream: fine
    await lease.settle(tokens=1, cost_usd=0.0)
    await quota.admit([key], request_id="s3", tokens=1, stream=True)


def test_periods() -> None:
    now = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)
    assert period_scope("key:k", "day", now) == "key:k:d2026-12-31"
    assert period_scope("key:k", "month", now) == "key:k:m2026-12"
    assert period_end("day", now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_end("month", now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_end("month", datetime(2026, 1, 31, tzinfo=UTC)) == datetime(
        2026, 2, 1, tzinfo=UTC
    )

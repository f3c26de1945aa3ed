"""Rate limits, stream slots and budget ledgers: in-process or in Redis.

Rate limits are token buckets: a bucket allowing ``per_minute`` units holds
at most that many and refills at ``per_minute / 60`` per second, so a quiet
key may burst up to one minute's allowance and a busy one gets a steady
rate.  :meth:`RateLimiter.take` takes from several buckets at once, all or
nothing (a request counts against its key *and* its deployment, and must
not use up the one when the other refuses), and says how long to wait when
it refuses.

The in-process classes keep state per process.  The Redis classes keep it
in Redis with Lua scripts (one round trip, atomic), so every worker and
every instance shares one limit; Redis' clock is used for refills, so
instances with skewed clocks still agree.

Budgets are ledgers of USD spent per scope and period.  A charge carries
its request id and is applied at most once, so replaying requests from the
request log after a crash (see :mod:`llmline.monitoring.requestlog`)
never counts one twice.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "BudgetLedger",
    "MemoryLedger",
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisLedger",
    "RedisRateLimiter",
    "Take",
]


@dataclass(frozen=True)
class Take:
    """``amount`` units from the bucket ``bucket`` that allows ``per_minute``."""

    bucket: str
    per_minute: float
    amount: float


class RateLimiter(Protocol):
    async def take(self, takes: Sequence[Take]) -> float:
        """Take every amount, or none: 0.0 when granted, else the seconds
        until the request would be granted (nothing is taken then)."""
        ...

    async def adjust(self, take: Take, amount: float) -> None:
        """Give ``amount`` back (negative: take more, the bucket may go below
        zero) once a request's true cost is known."""
        ...

    async def open_stream(self, scope: str, limit: int, stream_id: str) -> bool:
        """Hold one of ``limit`` stream slots of ``scope``; False when all are held."""
        ...

    async def close_stream(self, scope: str, stream_id: str) -> None: ...

    async def aclose(self) -> None: ...


class BudgetLedger(Protocol):
    async def spent(self, scopes: Sequence[str]) -> list[float]:
        """USD spent so far in each ledger scope (e.g. ``key:k1:d2026-12-03``)."""
        ...

    async def charge(self, request_id: str, scopes: Sequence[str], usd: float) -> bool:
        """Add ``usd`` to every scope, once per request id; False if already charged."""
        ...

    async def aclose(self) -> None: ...


# -- in-process -------------------------------------------------------------------


class MemoryRateLimiter:
    """Token buckets in this process (one lock: every operation is a few
    dictionary lookups, far cheaper than contention would be)."""

    def __init__(self, *, clock: Any = time.monotonic, stream_ttl_s: float = 600.0) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, at)
        self._streams: dict[str, dict[str, float]] = {}  # scope -> stream id -> expiry
        self._lock = threading.Lock()
        self.stream_ttl_s = stream_ttl_s

    def _level(self, take: Take, now: float) -> float:
        tokens, at = self._buckets.get(take.bucket, (take.per_minute, now))
        return min(take.per_minute, tokens + (now - at) * take.per_minute / 60.0)

    async def take(self, takes: Sequence[Take]) -> float:
        with self._lock:
            now = self._clock()
            levels = [self._level(t, now) for t in takes]
            wait = max(
                (
                    (t.amount - level) * 60.0 / t.per_minute
                    for t, level in zip(takes, levels, strict=True)
                ),
                default=0.0,
            )
            if wait > 0:
                return wait
            for t, level in zip(takes, levels, strict=True):
                self._buckets[t.bucket] = (level - t.amount, now)
            if len(self._buckets) > 100_000:
                self._forget_full(now)
            return 0.0

    def _forget_full(self, now: float) -> None:
        """Drop buckets idle for over a minute: they are full again anyway."""
        for bucket, (_, at) in list(self._buckets.items()):
            if now - at > 60.0:
                del self._buckets[bucket]

    async def adjust(self, take: Take, amount: float) -> None:
        with self._lock:
            now = self._clock()
            level = self._level(take, now)
            self._buckets[take.bucket] = (min(take.per_minute, level + amount), now)

    async def open_stream(self, scope: str, limit: int, stream_id: str) -> bool:
        with self._lock:
            now = self._clock()
            held = {s: e for s, e in self._streams.get(scope, {}).items() if e > now}
            if len(held) >= limit:
                self._streams[scope] = held
                return False
            held[stream_id] = now + self.stream_ttl_s
            self._streams[scope] = held
            return True

    async def close_stream(self, scope: str, stream_id: str) -> None:
        with self._lock:
            self._streams.get(scope, {}).pop(stream_id, None)

    async def aclose(self) -> None:
        return None


class MemoryLedger:
    """Spending in this process; rebuilt from the request log at start."""

    def __init__(self, *, remember: int = 100_000) -> None:
        self._spent: dict[str, float] = {}
        self._charged: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    def load(self, totals: dict[str, float]) -> None:
        """Start from the spending the request log holds (at start)."""
        with self._lock:
            for scope, usd in totals.items():
                self._spent[scope] = max(self._spent.get(scope, 0.0), usd)

    async def spent(self, scopes: Sequence[str]) -> list[float]:
        with self._lock:
            return [self._spent.get(s, 0.0) for s in scopes]

    async def charge(self, request_id: str, scopes: Sequence[str], usd: float) -> bool:
        with self._lock:
            if request_id in self._charged:
                return False
            self._charged[request_id] = None
            if len(self._charged) > self._remember:
                self._charged.popitem(last=False)
            for scope in scopes:
                self._spent[scope] = self._spent.get(scope, 0.0) + usd
            return True

    async def aclose(self) -> None:
        return None


# -- Redis -------------------------------------------------------------------------

# KEYS: buckets; ARGV: per_minute, amount for each.  Redis converts Lua
# numbers to integers in replies, so the wait comes back as a string.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local levels = {}
local wait = 0
for i = 1, #KEYS do
  local cap = tonumber(ARGV[2 * i - 1])
  local amount = tonumber(ARGV[2 * i])
  local v = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens, at = tonumber(v[1]), tonumber(v[2])
  if tokens == nil then tokens = cap; at = now end
  local level = math.min(cap, tokens + (now - at) * cap / 60)
  levels[i] = level
  if level < amount then wait = math.max(wait, (amount - level) * 60 / cap) end
end
if wait > 0 then return tostring(wait) end
for i = 1, #KEYS do
  local left = levels[i] - tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[i], 120)
end
return '0'
"""

_ADJUST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local cap = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(v[1]), tonumber(v[2])
if tokens == nil then tokens = cap; at = now end
local level = math.min(cap, tokens + (now - at) * cap / 60)
local after = math.min(cap, level + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'tokens', tostring(after), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 120)
return 1
"""

# KEYS[1]: the scope's sorted set of stream id -> expiry; ARGV: limit, id, ttl.
_OPEN_STREAM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])))
return 1
"""

# KEYS[1]: the request's marker, KEYS[2..]: ledger scopes; ARGV: usd, ttls.
_CHARGE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[2])) then return 0 end
for i = 2, #KEYS do
  redis.call('INCRBYFLOAT', KEYS[i], ARGV[1])
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3]))
end
return 1
"""


class RedisRateLimiter:
    """Token buckets and stream slots shared through Redis."""

    def __init__(self, client: Redis, *, prefix: str = "llmline:", stream_ttl_s: float = 600.0):
        self._client = client
        self._prefix = prefix
        self.stream_ttl_s = stream_ttl_s
        self._take = client.register_script(_TAKE)
        self._adjust = client.register_script(_ADJUST)
        self._open = client.register_script(_OPEN_STREAM)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisRateLimiter:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url), **options)

    async def take(self, takes: Sequence[Take]) -> float:
        keys = [f"{self._prefix}rl:{t.bucket}" for t in takes]
        args: list[float] = []
        for t in takes:
            args += [t.per_minute, t.amount]
        reply = await self._take(keys=keys, args=args)
        return float(reply)

    async def adjust(self, take: Take, amount: float) -> None:
        key = f"{self._prefix}rl:{take.bucket}"
        await self._adjust(keys=[key], args=[take.per_minute, amount])

    async def open_stream(self, scope: str, limit: int, stream_id: str) -> bool:
        key = f"{self._prefix}streams:{scope}"
        return bool(await self._open(keys=[key], args=[limit, stream_id, self.stream_ttl_s]))

    async def close_stream(self, scope: str, stream_id: str) -> None:
        await self._client.zrem(f"{self._prefix}streams:{scope}", stream_id)

    async def aclose(self) -> None:
        await self._client.aclose()


class RedisLedger:
    """Spending shared through Redis.  Each charge sets a marker for its
    request id (kept ``marker_ttl_s``, two days by default) so a replayed
    charge is a no-op; ledgers expire ``scope_ttl_s`` after their last
    charge (longer than the longest period, a month)."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "llmline:",
        marker_ttl_s: int = 2 * 86400,
        scope_ttl_s: int = 40 * 86400,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self.marker_ttl_s = marker_ttl_s
        self.scope_ttl_s = scope_ttl_s
        self._charge = client.register_script(_CHARGE)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisLedger:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url), **options)

    async def spent(self, scopes: Sequence[str]) -> list[float]:
        if not scopes:
            return []
        values = await self._client.mget([f"{self._prefix}spent:{s}" for s in scopes])
        return [float(v) if v is not None else 0.0 for v in values]

    async def charge(self, request_id: str, scopes: Sequence[str], usd: float) -> bool:
        keys = [f"{self._prefix}charged:{request_id}"]
        keys += [f"{self._prefix}spent:{s}" for s in scopes]
        reply = await self._charge(
            keys=keys, args=[repr(float(usd)), self.marker_ttl_s, self.scope_ttl_s]
        )
        return bool(reply)

    async def aclose(self) -> None:
        await self._client.aclose()

"""Admission control: requests and tokens per minute, USD budgets and
concurrent streams, for API keys and deployments alike.

A request is admitted in :meth:`Quota.admit` and settled in
:meth:`Lease.settle` once its true cost is known:

* **tokens per minute** are reserved up front as the prompt's estimated
  tokens plus ``max_tokens`` (what the request *may* use, as OpenAI's limits
  count it) and the unused part is given back at the end;
* **budgets** refuse a request when the period's spending already reached
  the budget; the request's cost is charged when it finishes, once per
  request id;
* **streams** hold a slot while they stream.

Every refusal is a :class:`~llmline.gateway.errors.RateLimitError` (429)
whose ``Retry-After`` is when the request would be admitted: the bucket's
refill time, or the end of the budget's period.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmline.gateway.errors import InvalidRequestError, RateLimitError

if TYPE_CHECKING:
    from collections.abc import Callable

    from llmline.guard.keys import ApiKeyInfo
    from llmline.guard.limits import BudgetLedger, RateLimiter, Take

__all__ = [
    "BUDGET_ADJECTIVE",
    "Lease",
    "Limits",
    "LimitsPolicy",
    "Quota",
    "estimate_tokens",
    "period_end",
    "period_scope",
]

Period = Literal["day", "month"]
BUDGET_ADJECTIVE = {"day": "daily", "month": "monthly"}


class LimitsPolicy(BaseModel):
    """A deployment's limits in ``llmline.yaml`` (all traffic to it together)."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1, description="Requests per minute")
    tpm: int | None = Field(default=None, ge=1, description="Tokens per minute (in + out)")
    budget_usd: float | None = Field(default=None, gt=0, description="Spending per period")
    budget_period: Period = Field(default="month", description="day or month (UTC)")
    max_streams: int | None = Field(default=None, ge=1, description="Streams open at once")


@dataclass(frozen=True)
class Limits:
    """One party's limits: ``scope`` is ``key:<id>`` or ``deployment:<name>``."""

    scope: str
    label: str  # how messages name it: "API key k1" / "deployment 'chat'"
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: Period = "month"
    max_streams: int | None = None

    @classmethod
    def of_key(cls, key: ApiKeyInfo) -> Limits:
        return cls(
            f"key:{key.key_id}",
            f"API key {key.key_id}",
            key.rpm,
            key.tpm,
            key.budget_usd,
            key.budget_period,
            key.max_streams,
        )

    @classmethod
    def of_deployment(cls, name: str, policy: LimitsPolicy) -> Limits:
        return cls(
            f"deployment:{name}",
            f"deployment {name!r}",
            policy.rpm,
            policy.tpm,
            policy.budget_usd,
            policy.budget_period,
            policy.max_streams,
        )

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.rpm, self.tpm, self.budget_usd, self.max_streams))


def period_scope(scope: str, period: Period, now: datetime) -> str:
    """The ledger scope of ``scope``'s current day or month (UTC)."""
    stamp = now.strftime("d%Y-%m-%d") if period == "day" else now.strftime("m%Y-%m")
    return f"{scope}:{stamp}"


def period_end(period: Period, now: datetime) -> datetime:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day + timedelta(days=1)
    first = day.replace(day=1)
    return (first + timedelta(days=32)).replace(day=1)


@dataclass
class Lease:
    """An admitted request's hold on its quotas."""

    quota: Quota
    request_id: str
    parties: Sequence[Limits]
    reserved_tokens: int
    token_takes: list[Take] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)  # scopes whose stream slot it holds
    # (limits, ledger scope, spent when admitted) of every party with a budget
    budgets: list[tuple[Limits, str, float]] = field(default_factory=list)
    settled: bool = False

    def budget_left(self, running_usd: float) -> tuple[Limits, float] | None:
        """The party whose budget this request exhausts with ``running_usd``
        spent so far, and its budget; None while every budget holds."""
        for limits, _, spent in self.budgets:
            assert limits.budget_usd is not None
            if spent + running_usd > limits.budget_usd:
                return limits, limits.budget_usd
        return None

    async def settle(self, *, tokens: int, cost_usd: float) -> None:
        """Give back unused reserved tokens, charge the cost, free the stream."""
        if self.settled:
            return
        self.settled = True
        limiter = self.quota.limiter
        for take in self.token_takes:
            await limiter.adjust(take, float(self.reserved_tokens - tokens))
        for scope in self.streams:
            await limiter.close_stream(scope, self.request_id)
        scopes = [ledger_scope for _, ledger_scope, _ in self.budgets]
        if scopes and cost_usd > 0:
            await self.quota.ledger.charge(self.request_id, scopes, cost_usd)


class Quota:
    def __init__(
        self,
        limiter: RateLimiter,
        ledger: BudgetLedger,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.limiter = limiter
        self.ledger = ledger
        self.now = now

    async def admit(
        self, parties: Sequence[Limits], *, request_id: str, tokens: int, stream: bool
    ) -> Lease:
        """Admit a request that may use ``tokens`` tokens, or raise 429."""
        parties = [p for p in parties if not p.empty]
        lease = Lease(self, request_id, parties, reserved_tokens=tokens)
        if not parties:
            return lease
        await self._check_budgets(lease)
        await self._take_rates(lease, tokens)
        if stream:
            await self._open_streams(lease)
        return lease

    async def _check_budgets(self, lease: Lease) -> None:
        now = self.now()
        budgeted = [p for p in lease.parties if p.budget_usd is not None]
        scopes = [period_scope(p.scope, p.budget_period, now) for p in budgeted]
        spent = await self.ledger.spent(scopes)
        for party, scope, usd in zip(budgeted, scopes, spent, strict=True):
            assert party.budget_usd is not None
            if usd >= party.budget_usd:
                resets = period_end(party.budget_period, now)
                raise RateLimitError(
                    f"{party.label} has spent its {BUDGET_ADJECTIVE[party.budget_period]} "
                    f"budget of ${party.budget_usd:g} (${usd:.4f}); it resets at "
                    f"{resets.isoformat(timespec='seconds')}",
                    retry_after_s=(resets - now).total_seconds(),
                    code="budget_exceeded",
                )
            lease.budgets.append((party, scope, usd))

    async def _take_rates(self, lease: Lease, tokens: int) -> None:
        from llmline.guard.limits import Take

        takes: list[Take] = []
        for party in lease.parties:
            if party.rpm is not None:
                takes.append(Take(f"{party.scope}:rpm", party.rpm, 1))
            if party.tpm is not None:
                if tokens > party.tpm:
                    raise InvalidRequestError(
                        f"this request may use {tokens} tokens (prompt + max_tokens), more "
                        f"than the {party.tpm} tokens per minute {party.label} allows; "
                        "lower max_tokens",
                        param="max_tokens",
                        code="tokens_per_minute_exceeded",
                    )
                takes.append(Take(f"{party.scope}:tpm", party.tpm, tokens))
        if not takes:
            return
        wait = await self.limiter.take(takes)
        if wait > 0:
            raise RateLimitError(_rate_message(lease.parties), retry_after_s=wait)
        lease.token_takes = [t for t in takes if t.bucket.endswith(":tpm")]

    async def _open_streams(self, lease: Lease) -> None:
        for party in lease.parties:
            if party.max_streams is None:
                continue
            if not await self.limiter.open_stream(party.scope, party.max_streams, lease.request_id):
                await lease.settle(tokens=0, cost_usd=0.0)  # give back what was taken
                raise RateLimitError(
                    f"{party.label} already has {party.max_streams} streams open "
                    "(its limit); retry when one ends",
                    retry_after_s=1.0,
                    code="too_many_streams",
                )
            lease.streams.append(party.scope)


def _rate_message(parties: Sequence[Limits]) -> str:
    limits = []
    for party in parties:
        parts = [
            f"{party.rpm} requests" if party.rpm else "",
            f"{party.tpm} tokens" if party.tpm else "",
        ]
        named = " and ".join(p for p in parts if p)
        if named:
            limits.append(f"{party.label}: {named} per minute")
    return "rate limit reached (" + "; ".join(limits) + ")"


def estimate_tokens(text: str) -> int:
    """A cheap upper-ish estimate of a prompt's tokens (about 4 characters
    each in English), used only to reserve tokens before the real count."""
    return max(1, math.ceil(len(text) / 4))

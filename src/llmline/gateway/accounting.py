"""Assembly of the gateway's governance state: quotas (in-process or
Redis), the request log, and the reconciliation of budgets at start.

At start the request log first stores what dead processes' journals hold.
Then budgets are made whole: in-process ledgers are rebuilt from the
request log (this period's spending per key and deployment); a Redis
ledger already holds the shared totals and only the recovered requests
are replayed into it (each charge is applied once per request id, so one
that did reach Redis before the crash is not counted twice).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from llmline.guard.limits import MemoryLedger, MemoryRateLimiter, RedisLedger, RedisRateLimiter
from llmline.guard.quota import Quota, period_scope

if TYPE_CHECKING:
    from collections.abc import Callable

    from llmline.monitoring.requestlog import RequestLog, RequestRecord
    from llmline.settings import Settings
    from llmline.workspace import Workspace

__all__ = ["build_quota", "build_request_log", "reconcile", "redis_url"]

log = logging.getLogger("llmline.gateway")


def redis_url(settings: Settings) -> str | None:
    """``$LLMLINE_REDIS_URL``, else ``gateway.redis_url`` of ``llmline.yaml``."""
    return os.environ.get("LLMLINE_REDIS_URL") or settings.gateway.redis_url


def build_quota(settings: Settings) -> Quota:
    url = redis_url(settings)
    if url:
        return Quota(RedisRateLimiter.from_url(url), RedisLedger.from_url(url))
    return Quota(MemoryRateLimiter(), MemoryLedger())


def build_request_log(workspace: Workspace) -> RequestLog:
    from llmline.monitoring.requestlog import RequestLog

    return RequestLog(workspace.metadata, workspace.state_dir / "journal", redact=_log_redactor())


def _log_redactor() -> Callable[[str], str] | None:
    """PII and secrets replaced in logged texts (the guard's own scanners)."""
    try:
        from llmline.gateway.safety import ScanContext
        from llmline.guard.scanners import create_scanner

        scanners = [create_scanner("pii"), create_scanner("secrets")]
    except Exception as exc:  # a broken plugin must not stop serving; say so loudly
        log.warning("request log: texts are stored unredacted (%s)", exc)
        return None
    context = ScanContext(direction="output")

    def redact(text: str) -> str:
        for scanner in scanners:
            redacted = scanner.scan(text, context).redacted_text
            text = redacted if redacted is not None else text
        return text

    return redact


async def reconcile(quota: Quota, requestlog: RequestLog, workspace: Workspace) -> int:
    """Recover journals and make budgets whole; the number of recovered requests."""
    import asyncio

    recovered = await asyncio.to_thread(requestlog.recover)
    if isinstance(quota.ledger, MemoryLedger):
        totals = await asyncio.to_thread(_period_totals, workspace, quota.now())
        quota.ledger.load(totals)
    else:
        await _replay(quota, recovered)
    return len(recovered)


async def _replay(quota: Quota, records: list[RequestRecord]) -> None:
    replayed = 0
    for record in records:
        if record.charges and record.cost_usd > 0:
            replayed += await quota.ledger.charge(
                record.request_id, record.charges, record.cost_usd
            )
    if replayed:
        log.warning("budgets: replayed %d charges lost in a crash", replayed)


def _period_totals(workspace: Workspace, now: datetime) -> dict[str, float]:
    """This day's and month's spending per key and deployment, by ledger scope."""
    from llmline.monitoring.requestlog import spending_since

    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    totals: dict[str, float] = {}
    for period, since in (("day", day), ("month", month)):
        for by, prefix in (("key_id", "key"), ("deployment", "deployment")):
            spent = spending_since(workspace.metadata, since.astimezone(UTC), by=by)
            for name, usd in spent.items():
                scope = period_scope(f"{prefix}:{name}", period, now)  # type: ignore[arg-type]
                totals[scope] = usd
    return totals

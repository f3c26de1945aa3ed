"""SLO attainment, error budget and burn rates, computed from the request log.

An SLO (``monitoring.slos`` in ``llmline.yaml``, :class:`SloSpec`) says what
share of requests must be *good* over a compliance window.  What is good
depends on its kind:

- ``latency``: among successful (2xx) requests, answered within ``threshold_ms``;
- ``error_rate``: any request that did not fail with a 5xx status;
- ``availability``: any request a backend answered (not 502, 503 or 504).

The *error budget* is the share of bad requests the objective allows
(``1 - objective``); the *burn rate* over a window is the bad share in that
window divided by the budget: 1 spends the budget exactly over the
compliance window, 14.4 spends 2 % of a 30-day budget in one hour.  Status
follows the multi-window, multi-burn-rate alerts of the Google SRE workbook
(chapter "Alerting on SLOs"): a condition fires when both its long and its
short window burn faster than the rate that spends its share of the budget.
The thresholds scale with the compliance window, so they are 14.4, 6 and 1
for a 30-day SLO.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import and_, case, func, select

from llmline.monitoring.config import SloSpec, duration
from llmline.storage.request_tables import RequestRow

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from llmline.storage.db import MetadataStore
    from llmline.workspace import Workspace

__all__ = [
    "BURN_WINDOWS",
    "BurnCondition",
    "SloStatus",
    "burn_rates",
    "slo_report",
    "slo_status",
]

SloState = Literal["ok", "at-risk", "breached", "no-data"]

# Windows burn rates are reported over (those longer than an SLO's window are left out).
BURN_WINDOWS: dict[str, timedelta] = {
    name: duration(name) for name in ("5m", "30m", "1h", "6h", "24h", "3d")
}


@dataclass(frozen=True)
class BurnCondition:
    """One row of the workbook's table: page or ticket when both windows
    burn faster than the rate that spends ``budget_share`` of the budget
    within ``long``."""

    severity: str
    long: str
    short: str
    budget_share: float

    def threshold(self, slo_window: timedelta) -> float:
        return self.budget_share * (slo_window / BURN_WINDOWS[self.long])


CONDITIONS = (
    BurnCondition("page", "1h", "5m", 0.02),
    BurnCondition("page", "6h", "30m", 0.05),
    BurnCondition("ticket", "3d", "6h", 0.10),
)


@dataclass
class SloStatus:
    name: str
    kind: str
    objective: float
    window: str
    deployment: str | None
    threshold_ms: float | None
    total: int
    good: int
    bad: int
    attainment: float | None  # good / total over the window; None without traffic
    error_budget_remaining: float | None  # share of the budget left; < 0 when overspent
    burn_rates: dict[str, float | None]
    firing: list[str] = field(default_factory=list)  # burn conditions that fire now
    status: SloState = "no-data"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- what a good request is ------------------------------------------------------------


def population(kind: str) -> ColumnElement[bool] | None:
    """Which requests an SLO of ``kind`` counts (None: every request)."""
    if kind == "latency":
        return and_(RequestRow.status >= 200, RequestRow.status < 300)
    return None


def bad_request(kind: str, threshold_ms: float | None) -> ColumnElement[bool]:
    if kind == "latency":
        assert threshold_ms is not None
        return RequestRow.latency_ms > threshold_ms
    if kind == "error_rate":
        return RequestRow.status >= 500
    return RequestRow.status.in_((502, 503, 504))


def window_counts(
    store: MetadataStore,
    *,
    kind: str,
    threshold_ms: float | None,
    deployment: str | None,
    windows: dict[str, timedelta],
    now: datetime,
) -> dict[str, tuple[int, int]]:
    """``{window: (total, bad)}`` for requests in ``[now - window, now]``,
    in one indexed scan of the longest window."""
    bad = bad_request(kind, threshold_ms)
    columns = []
    for span in windows.values():
        recent = RequestRow.created_at >= now - span
        columns.append(func.sum(case((recent, 1), else_=0)))
        columns.append(func.sum(case((and_(recent, bad), 1), else_=0)))
    query = select(*columns).where(
        RequestRow.created_at >= now - max(windows.values()), RequestRow.created_at <= now
    )
    scope = population(kind)
    if scope is not None:
        query = query.where(scope)
    if deployment is not None:
        query = query.where(RequestRow.deployment == deployment)
    with store.read_session() as session:
        values = [int(v or 0) for v in session.execute(query).one()]
    return {name: (values[2 * i], values[2 * i + 1]) for i, name in enumerate(windows)}


# -- the report ---------------------------------------------------------------------------


def _burn(total: int, bad: int, objective: float) -> float | None:
    if total == 0:
        return None
    return round((bad / total) / (1 - objective), 6)


def _slo_counts(
    store: MetadataStore, slo: SloSpec, windows: dict[str, timedelta], now: datetime
) -> dict[str, tuple[int, int]]:
    return window_counts(
        store,
        kind=slo.kind,
        threshold_ms=slo.threshold_ms,
        deployment=slo.deployment,
        windows=windows,
        now=now,
    )


def burn_rates(
    store: MetadataStore, slo: SloSpec, windows: dict[str, timedelta], *, now: datetime
) -> dict[str, float | None]:
    """Burn rate of ``slo`` over each of ``windows`` ending at ``now`` (None: no traffic)."""
    counts = _slo_counts(store, slo, windows, now)
    return {name: _burn(total, bad, slo.objective) for name, (total, bad) in counts.items()}


def _firing(slo_window: timedelta, rates: dict[str, float | None]) -> list[str]:
    fired = []
    for condition in CONDITIONS:
        long, short = rates.get(condition.long), rates.get(condition.short)
        if long is None or short is None:
            continue  # the long window does not fit in the SLO's, or no traffic
        threshold = condition.threshold(slo_window)
        if long > threshold and short > threshold:
            fired.append(
                f"{condition.severity}: burn rate {long:g} over {condition.long} and "
                f"{short:g} over {condition.short} > {threshold:g}"
            )
    return fired


def slo_status(store: MetadataStore, slo: SloSpec, *, now: datetime | None = None) -> SloStatus:
    """Attainment of ``slo`` over its window ending at ``now`` (default: now)."""
    now = now or datetime.now(UTC)
    slo_window = slo.window_td
    windows = {name: span for name, span in BURN_WINDOWS.items() if span <= slo_window}
    windows["slo"] = slo_window
    counts = _slo_counts(store, slo, windows, now)
    total, bad = counts.pop("slo")
    rates = {name: _burn(t, b, slo.objective) for name, (t, b) in counts.items()}
    status = SloStatus(
        name=slo.name,
        kind=slo.kind,
        objective=slo.objective,
        window=slo.window,
        deployment=slo.deployment,
        threshold_ms=slo.threshold_ms,
        total=total,
        good=total - bad,
        bad=bad,
        attainment=None,
        error_budget_remaining=None,
        burn_rates=rates,
    )
    if total == 0:
        return status
    allowed_bad = total * (1 - slo.objective)
    status.attainment = round((total - bad) / total, 6)
    status.error_budget_remaining = round((allowed_bad - bad) / allowed_bad, 6)
    status.firing = _firing(slo_window, rates)
    status.status = _state(status)
    return status


def _state(status: SloStatus) -> SloState:
    remaining = status.error_budget_remaining
    assert remaining is not None
    # A tiny float residue must not turn an exactly spent budget into "breached".
    if remaining < 0 and not math.isclose(remaining, 0, abs_tol=1e-9):
        return "breached"
    return "at-risk" if status.firing else "ok"


def slo_report(
    workspace: Workspace, *, now: datetime | None = None, slos: list[SloSpec] | None = None
) -> list[SloStatus]:
    """The status of every SLO of ``monitoring.slos`` (or of ``slos``)."""
    chosen = workspace.settings.monitoring.slos if slos is None else slos
    now = now or datetime.now(UTC)
    return [slo_status(workspace.metadata, slo, now=now) for slo in chosen]

"""Cost reports from the request log: per key, deployment, model version or day.

How a request's cost is computed (by the gateway, when it answers, and
stored in ``requests.cost_usd``; this module only sums it):

- a model behind an upstream (``upstream:NAME``) is priced per token:
  ``prompt_tokens * input_usd_per_1k / 1000 + completion_tokens *
  output_usd_per_1k / 1000`` with the prices of ``upstreams.NAME`` in
  ``llmline.yaml`` (0 when none are set);
- a self-hosted model (``embedded:…``) is priced as the request's share of
  the machine-hour while it ran: ``gateway.embedded.usd_per_hour * latency_s
  / (requests in flight on that model + 1) / 3600``, so concurrent requests
  split the machine's cost instead of each paying for all of it;
- anything else (cache hits, refused requests, fake test backends) costs 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import case, func, select

from llmline.errors import UserError
from llmline.monitoring.config import duration
from llmline.storage.request_tables import RequestRow

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from llmline.workspace import Workspace

__all__ = ["GROUPINGS", "CostReport", "CostRow", "cost_report"]

Grouping = Literal["key", "deployment", "model", "day"]
GROUPINGS: tuple[Grouping, ...] = ("key", "deployment", "model", "day")


@dataclass
class CostRow:
    group: str | None  # the key id, deployment, model version or UTC day; None: not recorded
    requests: int
    errors: int  # answered with a status >= 400
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens": self.tokens}


@dataclass
class CostReport:
    by: Grouping
    since: datetime
    until: datetime
    rows: list[CostRow]
    total: CostRow

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "rows": [row.to_dict() for row in self.rows],
            "total": self.total.to_dict(),
        }


def _group_column(by: str, dialect: str) -> ColumnElement[Any]:
    columns: dict[str, ColumnElement[Any]] = {
        "key": RequestRow.key_id.expression,
        "deployment": RequestRow.deployment.expression,
        "model": RequestRow.model_version.expression,
    }
    if by in columns:
        return columns[by]
    if by == "day":
        # Days are UTC days on every engine (PostgreSQL would use the session's zone).
        if dialect == "postgresql":
            return func.to_char(func.timezone("UTC", RequestRow.created_at), "YYYY-MM-DD")
        return func.strftime("%Y-%m-%d", RequestRow.created_at)
    raise UserError(f"cannot group costs by {by!r}: choose one of {', '.join(GROUPINGS)}")


def _since(since: datetime | timedelta | str, until: datetime) -> datetime:
    if isinstance(since, str):
        try:
            since = duration(since)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if isinstance(since, timedelta):
        return until - since
    return since if since.tzinfo else since.replace(tzinfo=UTC)


def cost_report(
    workspace: Workspace,
    *,
    by: Grouping = "deployment",
    since: datetime | timedelta | str = "30d",
    until: datetime | None = None,
) -> CostReport:
    """Requests, tokens and USD per ``by`` group in ``[since, until]``.

    ``since`` is a time or a window back from ``until`` (``"7d"``, a
    timedelta); ``until`` defaults to now.  Rows are ordered by cost, most
    expensive first (by day: oldest first).
    """
    until = until or datetime.now(UTC)
    start = _since(since, until)
    store = workspace.metadata
    group = _group_column(by, store.engine.dialect.name).label("grp")
    query = (
        select(
            group,
            func.count(),
            func.sum(case((RequestRow.status >= 400, 1), else_=0)),
            func.sum(RequestRow.prompt_tokens),
            func.sum(RequestRow.completion_tokens),
            func.sum(RequestRow.cost_usd),
        )
        .where(RequestRow.created_at >= start, RequestRow.created_at <= until)
        .group_by(group)
    )
    with store.read_session() as session:
        rows = [_row(values) for values in session.execute(query).all()]
    if by == "day":
        rows.sort(key=lambda r: r.group or "")
    else:
        rows.sort(key=lambda r: (-r.cost_usd, -r.requests, r.group or ""))
    return CostReport(by=by, since=start, until=until, rows=rows, total=_sum(rows))


def _row(values: Any) -> CostRow:
    group, requests, errors, prompt, completion, cost = values
    return CostRow(
        group=None if group is None else str(group),
        requests=int(requests or 0),
        errors=int(errors or 0),
        prompt_tokens=int(prompt or 0),
        completion_tokens=int(completion or 0),
        cost_usd=round(float(cost or 0.0), 8),
    )


def _sum(rows: list[CostRow]) -> CostRow:
    return CostRow(
        group=None,
        requests=sum(r.requests for r in rows),
        errors=sum(r.errors for r in rows),
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
        cost_usd=round(sum(r.cost_usd for r in rows), 8),
    )

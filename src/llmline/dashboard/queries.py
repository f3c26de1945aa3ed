"""What the dashboard shows, as plain typed Python over the stores.

Every function here reads with bounded, indexed queries (``requests`` by
``created_at`` or ``(deployment, created_at)``, feedback by request id,
runs and evaluations newest-first with a limit), so a page costs the same
on a workspace with a million logged requests as on a new one.  The HTTP
layer (:mod:`llmline.dashboard.routes`) only calls these and renders.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer, selectinload

from llmline.storage.request_tables import RequestRow

if TYPE_CHECKING:
    from llmline.evaluation.runner import EvalResult
    from llmline.evaluation.store import Comparison
    from llmline.gateway.deployments.spec import DeploymentSpec
    from llmline.gateway.engine import Engine, LiveDeployment
    from llmline.workspace import Workspace

__all__ = [
    "WINDOWS",
    "Bucket",
    "DeploymentView",
    "DriftReport",
    "Kpis",
    "RequestDetail",
    "RequestSummary",
    "RunSummary",
    "TargetView",
    "WindowMetrics",
    "deployments",
    "drift_report",
    "eval_comparisons",
    "evaluations",
    "kpis",
    "parse_window",
    "pipeline_runs",
    "recent_requests",
    "request_detail",
    "timeseries",
    "traffic_split",
    "window_metrics",
]

# Overview windows: (length, chart bucket).  Buckets keep every chart at
# 7-24 points whatever the window.
WINDOWS: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=5)),
    "6h": (timedelta(hours=6), timedelta(minutes=15)),
    "24h": (timedelta(hours=24), timedelta(hours=1)),
    "7d": (timedelta(days=7), timedelta(days=1)),
}
MAX_LIST_ROWS = 200
StatusFilter = Literal["ok", "error"] | int | None


def parse_window(text: str | None) -> str:
    """A known window name (``1h``, ``6h``, ``24h``, ``7d``); default ``24h``."""
    return text if text in WINDOWS else "24h"


def _now() -> datetime:
    return datetime.now(UTC)


# -- deployments --------------------------------------------------------------


@dataclass(frozen=True)
class TargetView:
    target: str
    role: str  # live | challenger | candidate | standby | shadow copy | fallback
    share_percent: float | None  # None: decided per request (least-busy, latency)
    state: str  # ready | loading | failed
    detail: str | None
    in_flight: int

    @property
    def healthy(self) -> bool:
        return self.state == "ready"


@dataclass(frozen=True)
class DeploymentView:
    name: str
    kind: str
    strategy: str
    phase: str
    reason: str
    revision: int
    live_target: str
    targets: list[TargetView]
    implicit: bool

    @property
    def healthy(self) -> bool:
        return any(t.healthy for t in self.targets if t.role != "fallback")


def deployments(engine: Engine) -> list[DeploymentView]:
    """The gateway's live deployments, with traffic split and backend health."""
    return [_deployment_view(engine, live) for _, live in sorted(engine.deployments.items())]


def _deployment_view(engine: Engine, live: LiveDeployment) -> DeploymentView:
    spec, router = live.spec, live.router
    phase, live_index = router.phase, router.live
    shares = traffic_split(spec, phase, live_index)
    targets = []
    for target, (role, share) in [
        *shares.items(),
        *((f, ("fallback", 0.0)) for f in spec.fallbacks),
    ]:
        health = engine.health(target)
        targets.append(
            TargetView(target, role, share, health.state, health.detail, engine.in_flight(target))
        )
    return DeploymentView(
        name=spec.name,
        kind=spec.kind,
        strategy=spec.strategy,
        phase=phase,
        reason=live.state.reason,
        revision=live.revision,
        live_target=spec.models[live_index],
        targets=targets,
        implicit=live.implicit,
    )


def traffic_split(
    spec: DeploymentSpec, phase: str, live: int
) -> dict[str, tuple[str, float | None]]:
    """Role and intended traffic share (percent) of each model, per the
    strategy and rollout phase (what the router does, not what it measured)."""
    strategy, models, weights = spec.strategy, spec.models, spec.weights
    if strategy in ("least-busy", "latency"):
        return dict.fromkeys(models, ("candidate", None))
    if strategy == "random":
        return {m: ("candidate", 100.0 / len(models)) for m in models}
    if strategy == "weighted":
        total = sum(weights or ()) or 1.0
        return {
            m: ("candidate", 100.0 * w / total) for m, w in zip(models, weights or (), strict=True)
        }
    if strategy == "canary" and phase == "running":
        stable, challenger = models
        return {
            stable: ("live", 100.0 - spec.canary.percent),
            challenger: ("challenger", spec.canary.percent),
        }
    if strategy in ("canary", "shadow") and phase != "running":
        winner = 1 if phase == "promoted" else 0
        return {
            m: ("live", 100.0) if i == winner else ("standby", 0.0) for i, m in enumerate(models)
        }
    if strategy == "shadow":
        # The copy gets every request too, but its answers are never returned.
        return {
            m: ("live", 100.0) if i == live else ("shadow copy", 100.0)
            for i, m in enumerate(models)
        }
    return {m: ("live", 100.0) if i == live else ("standby", 0.0) for i, m in enumerate(models)}


# -- request metrics ------------------------------------------------------------
#
# One query per page: a range scan of the ``created_at`` index returning only
# numbers (seconds into the window, status, latency, cost, tokens; no
# datetimes to parse, no texts), grouped into buckets in Python.  Rows beyond
# MAX_WINDOW_ROWS (the newest are kept) are left out, and the page says so,
# so a flood of traffic cannot make the dashboard slow.

MAX_WINDOW_ROWS = 200_000


@dataclass(frozen=True)
class Kpis:
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    cost_usd: float
    tokens: int

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class Bucket(Kpis):
    start: datetime = field(default_factory=_now)


@dataclass(frozen=True)
class WindowMetrics:
    window: str
    totals: Kpis
    buckets: list[Bucket]
    truncated: bool  # more rows in the window than MAX_WINDOW_ROWS


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _figures(rows: Sequence[Sequence[Any]]) -> Kpis:
    latencies = [float(r[2]) for r in rows]
    return Kpis(
        requests=len(rows),
        errors=sum(1 for r in rows if r[1] >= 400),
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        cost_usd=float(sum(r[3] or 0.0 for r in rows)),
        tokens=int(sum(r[4] or 0 for r in rows)),
    )


def _seconds_since(session: Session, since: datetime) -> Any:
    """SQL: seconds from ``since`` to each row's ``created_at``."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", RequestRow.created_at) - since.timestamp()
    # SQLite keeps UTC datetimes as ISO text.
    text = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return (func.julianday(RequestRow.created_at) - func.julianday(text)) * 86400.0


def window_metrics(
    workspace: Workspace, window: str = "24h", *, deployment: str | None = None
) -> WindowMetrics:
    """Totals over the window, and the window cut into equal buckets
    (oldest first, empty ones included) for the charts."""
    window = parse_window(window)
    length, step = WINDOWS[window]
    end = _now()
    since = end - length
    first = _floor(since, step) + step  # buckets start on round times
    with workspace.metadata.read_session() as session:
        query = select(
            _seconds_since(session, since),
            RequestRow.status,
            RequestRow.latency_ms,
            RequestRow.cost_usd,
            RequestRow.prompt_tokens + RequestRow.completion_tokens,
        ).where(RequestRow.created_at >= since)
        if deployment is not None:
            query = query.where(RequestRow.deployment == deployment)
        query = query.order_by(RequestRow.created_at.desc()).limit(MAX_WINDOW_ROWS + 1)
        rows = session.execute(query).all()
    truncated = len(rows) > MAX_WINDOW_ROWS
    rows = rows[:MAX_WINDOW_ROWS]
    count = math.ceil((end - first) / step)
    grouped: list[list[Any]] = [[] for _ in range(count)]
    offset, step_s = (first - since).total_seconds(), step.total_seconds()
    for row in rows:
        index = math.floor((row[0] - offset) / step_s)
        if 0 <= index < count:
            grouped[index].append(row)
    buckets = [
        Bucket(**vars(_figures(group)), start=first + i * step) for i, group in enumerate(grouped)
    ]
    return WindowMetrics(window, _figures(rows), buckets, truncated)


def kpis(workspace: Workspace, window: str = "24h", *, deployment: str | None = None) -> Kpis:
    """Requests, errors (status >= 400), latency p50/p95, cost and tokens in the window."""
    return window_metrics(workspace, window, deployment=deployment).totals


def timeseries(
    workspace: Workspace, window: str = "24h", *, deployment: str | None = None
) -> list[Bucket]:
    """The window's buckets (see :func:`window_metrics`)."""
    return window_metrics(workspace, window, deployment=deployment).buckets


def _floor(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // step) * step


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- requests -------------------------------------------------------------------


@dataclass(frozen=True)
class RequestSummary:
    request_id: str
    created_at: datetime
    endpoint: str
    deployment: str | None
    model_version: str | None
    status: int
    latency_ms: float
    cost_usd: float
    tokens: int
    cache: str | None
    blocked: bool
    flagged: list[str]  # categories any guardrail reported
    citations: int

    @property
    def ok(self) -> bool:
        return self.status < 400


@dataclass(frozen=True)
class RequestDetail:
    summary: RequestSummary
    key_id: str | None
    user: str | None
    route_reason: str | None
    prompt_version: str | None
    finish_reason: str | None
    error: str | None
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    input_text: str | None
    output_text: str | None
    safety_input: dict[str, Any]
    safety_output: dict[str, Any] | None
    citations: list[dict[str, Any]]
    trace_id: str | None
    feedback: list[dict[str, Any]] = field(default_factory=list)


def recent_requests(
    workspace: Workspace,
    *,
    deployment: str | None = None,
    status: StatusFilter = None,
    before: datetime | None = None,
    limit: int = 50,
) -> list[RequestSummary]:
    """The newest requests (before ``before``), optionally of one deployment
    and one status class (``ok``, ``error``) or code; at most 200."""
    query = select(RequestRow).options(defer(RequestRow.input_text), defer(RequestRow.output_text))
    if deployment:
        query = query.where(RequestRow.deployment == deployment)
    if before is not None:
        query = query.where(RequestRow.created_at < before)
    if status == "ok":
        query = query.where(RequestRow.status < 400)
    elif status == "error":
        query = query.where(RequestRow.status >= 400)
    elif isinstance(status, int):
        query = query.where(RequestRow.status == status)
    query = query.order_by(RequestRow.created_at.desc()).limit(max(1, min(limit, MAX_LIST_ROWS)))
    with workspace.metadata.read_session() as session:
        return [_summary(row) for row in session.scalars(query)]


def known_deployments(workspace: Workspace) -> list[str]:
    """Names for the requests filter: the saved deployments."""
    from llmline.gateway.deployments import DeploymentStore

    return sorted(info.name for info in DeploymentStore(workspace.metadata).list())


def _summary(row: RequestRow) -> RequestSummary:
    safety = row.safety or {}
    sides = [safety.get("input") or {}, safety.get("output") or {}]
    flagged = sorted({c for side in sides for c in side.get("categories", [])})
    return RequestSummary(
        request_id=row.request_id,
        created_at=_aware(row.created_at),
        endpoint=row.endpoint,
        deployment=row.deployment,
        model_version=row.model_version,
        status=row.status,
        latency_ms=row.latency_ms,
        cost_usd=row.cost_usd,
        tokens=row.prompt_tokens + row.completion_tokens,
        cache=row.cache,
        blocked=any(bool(side.get("blocked")) for side in sides),
        flagged=flagged,
        citations=len(_citations(safety)),
    )


def _citations(safety: dict[str, Any]) -> list[dict[str, Any]]:
    found = safety.get("citations") or []
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def request_detail(workspace: Workspace, request_id: str) -> RequestDetail | None:
    """One logged request with its safety decisions, citations and feedback."""
    with workspace.metadata.read_session() as session:
        row = session.get(RequestRow, request_id)
        if row is None:
            return None
        safety = dict(row.safety or {})
        detail = RequestDetail(
            summary=_summary(row),
            key_id=row.key_id,
            user=row.user,
            route_reason=row.route_reason,
            prompt_version=row.prompt_version,
            finish_reason=row.finish_reason,
            error=row.error,
            stream=row.stream,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            ttft_ms=row.ttft_ms,
            input_text=row.input_text,
            output_text=row.output_text,
            safety_input=dict(safety.get("input") or {}),
            safety_output=safety.get("output"),
            citations=_citations(safety),
            trace_id=row.trace_id,
        )
    detail.feedback.extend(_feedback(workspace, request_id))
    return detail


def _feedback(workspace: Workspace, request_id: str) -> list[dict[str, Any]]:
    from llmline.storage.feedback_tables import FeedbackRow

    query = (
        select(FeedbackRow)
        .where(FeedbackRow.request_id == request_id)
        .order_by(FeedbackRow.created_at)
        .limit(MAX_LIST_ROWS)
    )
    with workspace.metadata.read_session() as session:
        return [
            {
                "created_at": _aware(f.created_at),
                "rating": f.rating,
                "scale": f.rating_scale,
                "comment": f.comment,
                "correction": f.correction,
                "status": f.status,
            }
            for f in session.scalars(query)
        ]


def trace_of(workspace: Workspace, trace_id: str) -> list[dict[str, Any]] | None:
    """The stored trace's spans, depth-first, each with ``depth``,
    ``offset_ms`` (since the trace began), ``duration_ms``, ``name``,
    ``kind`` and ``status``; None when tracing is not installed or the
    trace is not (or no longer) stored."""
    import importlib

    from llmline.errors import UserError

    try:  # the tracing module may be absent from an installation: looked up, not imported
        get_trace = importlib.import_module("llmline.monitoring.tracing").get_trace
    except (ImportError, AttributeError):
        return None
    try:
        trace = get_trace(workspace, trace_id)
    except (LookupError, UserError):
        return None
    data = trace.to_dict() if hasattr(trace, "to_dict") else trace
    spans = _flatten(data.get("spans", []) if isinstance(data, dict) else [])
    starts = [s["started_at"] for s in spans if s["started_at"] is not None]
    origin = min(starts, default=None)
    for span in spans:
        begun = span.pop("started_at")
        gap = (begun - origin).total_seconds() * 1000 if begun and origin else 0.0
        span["offset_ms"] = gap
    return spans[:MAX_LIST_ROWS]


def _flatten(spans: list[Any], depth: int = 0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for span in spans:
        if not isinstance(span, dict):
            continue
        try:
            started = _aware(datetime.fromisoformat(str(span.get("started_at"))))
        except ValueError:
            started = None
        out.append(
            {
                "depth": depth,
                "name": str(span.get("name", "?")),
                "kind": span.get("kind"),
                "status": span.get("status"),
                "duration_ms": float(span.get("duration_ms") or 0.0),
                "started_at": started,
            }
        )
        out.extend(_flatten(list(span.get("children") or []), depth + 1))
    return out


# -- drift ------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftReport:
    created_at: str | None
    window: str | None
    deployment: str | None
    status: str  # ok | warn | drift
    tests: list[dict[str, Any]]
    n_current: int | None
    n_reference: int | None
    plot: str | None  # PNG path, when the report made one


def drift_report(workspace: Workspace) -> DriftReport | None:
    """The latest ``llmline monitor drift`` report, or None before the first."""
    path = workspace.state_dir / "monitoring" / "drift" / "latest.json"
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return DriftReport(None, None, None, "unreadable", [{"name": str(exc)}], None, None, None)
    return DriftReport(
        created_at=data.get("created_at"),
        window=data.get("window"),
        deployment=data.get("deployment"),
        status=str(data.get("status", "ok")),
        tests=[t for t in data.get("tests", []) if isinstance(t, dict)],
        n_current=data.get("n_current"),
        n_reference=data.get("n_reference"),
        plot=data.get("plot"),
    )


# -- pipeline runs and evaluations ----------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    pipeline: str
    status: str
    started_at: datetime
    duration_s: float | None
    parameters: dict[str, Any]
    outputs: dict[str, Any]
    error: str | None
    steps: list[dict[str, Any]]

    @property
    def cache_hits(self) -> int:
        return sum(bool(s["cached"]) for s in self.steps)


def pipeline_runs(workspace: Workspace, *, limit: int = 50) -> list[RunSummary]:
    """The newest pipeline runs with their steps."""
    # The run store's own rule for "running" rows whose process died.
    from llmline.pipelines.store import _live_status
    from llmline.storage.pipeline_tables import PipelineRun

    query = (
        select(PipelineRun)
        .options(selectinload(PipelineRun.steps))
        .order_by(PipelineRun.id.desc())
        .limit(max(1, min(limit, MAX_LIST_ROWS)))
    )
    with workspace.metadata.read_session() as session:
        return [
            RunSummary(
                run_id=row.run_id,
                pipeline=row.pipeline,
                status=_live_status(row),
                started_at=_aware(row.started_at),
                duration_s=(row.finished_at - row.started_at).total_seconds()
                if row.finished_at
                else None,
                parameters=dict(row.parameters or {}),
                outputs=dict(row.outputs or {}),
                error=row.error,
                steps=[
                    {
                        "name": s.name,
                        "status": s.status,
                        "cached": s.cached,
                        "duration_s": s.duration_s,
                    }
                    for s in row.steps
                ],
            )
            for row in session.scalars(query)
        ]


def evaluations(workspace: Workspace, *, limit: int = 50) -> list[EvalResult]:
    """The newest evaluations (without their samples), newest first."""
    from llmline.evaluation.runner import EvalResult
    from llmline.storage.eval_tables import Evaluation

    query = (
        select(Evaluation)
        .options(defer(Evaluation.samples))
        .order_by(Evaluation.created_at.desc(), Evaluation.id.desc())
        .limit(max(1, min(limit, MAX_LIST_ROWS)))
    )
    with workspace.metadata.read_session() as session:
        return [
            EvalResult(
                model_ref=row.model_ref,
                dataset_ref=row.dataset_ref,
                split=row.split,
                metrics=dict(row.metrics),
                config=dict(row.config),
                created_at=_aware(row.created_at),
                id=row.id,
            )
            for row in session.scalars(query)
        ]


def eval_comparisons(results: Sequence[EvalResult]) -> list[Comparison]:
    """Per dataset split, the newest evaluation of the two most recently
    evaluated models side by side (``results`` newest first): only results on
    the same data are compared."""
    from llmline.evaluation.store import Comparison

    newest: dict[tuple[str, str], dict[str, EvalResult]] = {}
    for result in results:
        by_model = newest.setdefault((result.dataset_ref, result.split), {})
        by_model.setdefault(result.model_ref, result)
    comparisons = []
    for by_model in newest.values():
        if len(by_model) >= 2:
            latest, previous = list(by_model.values())[:2]
            comparisons.append(Comparison.of(previous, latest))
    return comparisons

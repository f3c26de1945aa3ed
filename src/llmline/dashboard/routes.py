"""Routes of the ``/ui`` dashboard: server-rendered HTML over
:mod:`llmline.dashboard.queries`.

Auth is the gateway's: an API key whose role may read metrics (viewer and
up).  Browsers cannot add a Bearer header to a link, so ``/ui/login`` takes
the key once and keeps it in an HttpOnly, SameSite=Strict cookie (Secure
over TLS) scoped to ``/ui``; the header still works for scripts.  Prompt
and answer texts are shown only to roles with ``requests.read`` (admin,
deployer): a viewer sees metrics, safety decisions and lineage.  With auth
off (loopback without ``--auth``) everything is open and there is no login.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from llmline.dashboard import charts, lineage, queries
from llmline.gateway.errors import AuthenticationError
from llmline.guard.rbac import allowed

__all__ = ["COOKIE", "router"]

router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)

COOKIE = "llmline_ui_key"
_HERE = Path(__file__).parent
_T = TypeVar("_T")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        # Every value is escaped: prompts and answers may hold HTML.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ms=_ms, usd=_usd, pct=_pct, when=_when, share=_share, seconds=_seconds)
    return env


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.1f} ms"


def _usd(value: float | None) -> str:
    if value is None:
        return "–"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _share(value: float | None) -> str:
    return "dynamic" if value is None else f"{value:.0f}%"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "–"
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    assert isinstance(moment, datetime)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_ENV = _environment()


# -- auth ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """Who looks at the dashboard (``key_id`` None: auth is off)."""

    auth_on: bool
    key_id: str | None = None
    role: str | None = None

    @property
    def reads_texts(self) -> bool:
        return not self.auth_on or (self.role is not None and allowed(self.role, "requests.read"))


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        return header
    cookie = request.cookies.get(COOKIE)
    return f"Bearer {cookie}" if cookie else None


async def _viewer(request: Request) -> Viewer | Response:
    """The viewer, or the response to send instead: a redirect to the login
    page (no or bad key) or a 403 page (a role that may not read metrics)."""
    auth = request.app.state.auth
    if not auth.enabled:
        return Viewer(auth_on=False)
    try:
        caller = await auth.caller(_token(request), None)
    except AuthenticationError:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)
    key = caller.key
    if key is None or not allowed(key.role, "metrics.read"):
        role = key.role if key is not None else "unknown"
        return _page(
            request,
            "error.html",
            Viewer(auth_on=True),
            status=403,
            title="Not allowed",
            message=f"API key role {role} may not read the dashboard "
            "(roles that may: admin, deployer, viewer).",
        )
    return Viewer(auth_on=True, key_id=key.key_id, role=key.role)


def _safe_next(value: str | None) -> str:
    """Only a path inside the dashboard: never an open redirect."""
    if value and value.startswith("/ui") and not value.startswith("//"):
        return value
    return "/ui"


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    if not request.app.state.auth.enabled:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _page(request, "login.html", Viewer(auth_on=True), next=_safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    auth = request.app.state.auth
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    target = _safe_next(form.get("next", [""])[0])
    if not auth.enabled:
        return RedirectResponse(target, status_code=303)
    error: str | None = None
    try:
        caller = await auth.caller(f"Bearer {key}", None)
    except AuthenticationError as exc:
        error = "no API key given" if not key else str(exc)  # messages never echo the key
    else:
        if caller.key is None or not allowed(caller.key.role, "metrics.read"):
            error = "this key's role may not read the dashboard (use a viewer key)"
    if error is not None:
        viewer = Viewer(auth_on=True)
        return _page(request, "login.html", viewer, status=401, next=target, error=error)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        key,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/logout")
async def logout() -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


@router.get("/static/dashboard.css")
async def stylesheet() -> Response:
    css = (_HERE / "static" / "dashboard.css").read_text("utf-8")
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=300"})


# -- pages ---------------------------------------------------------------------------


def _page(
    request: Request, template: str, viewer: Viewer, *, status: int = 200, **context: Any
) -> HTMLResponse:
    html = _ENV.get_template(template).render(
        viewer=viewer, path=request.url.path, now=datetime.now(UTC), **context
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _workspace(request: Request) -> Any:
    return request.app.state.service.engine.workspace


async def _read(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run a blocking store query off the event loop."""
    return await asyncio.to_thread(functools.partial(function, *args, **kwargs))


def _no_workspace(request: Request, viewer: Viewer) -> HTMLResponse:
    return _page(
        request,
        "error.html",
        viewer,
        status=503,
        title="No workspace",
        message="This gateway runs without a workspace: there is no request log to show.",
    )


async def _open(request: Request) -> tuple[Viewer, Any] | Response:
    """The viewer and the workspace of a page, or the response to send
    instead (login redirect, 403, or no workspace)."""
    viewer = await _viewer(request)
    if isinstance(viewer, Response):
        return viewer
    ws = _workspace(request)
    if ws is None:
        return _no_workspace(request, viewer)
    return viewer, ws


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, window: str | None = None) -> Response:
    opened = await _open(request)
    if isinstance(opened, Response):
        return opened
    viewer, ws = opened
    window = queries.parse_window(window)
    live = queries.deployments(request.app.state.service.engine)
    metrics = await _read(queries.window_metrics, ws, window)
    drift = await _read(queries.drift_report, ws)
    return _page(
        request,
        "overview.html",
        viewer,
        window=window,
        windows=list(queries.WINDOWS),
        deployments=live,
        kpis=metrics.totals,
        truncated=metrics.truncated,
        charts=_charts(metrics.buckets, window),
        drift=drift,
    )


def _charts(buckets: list[queries.Bucket], window: str) -> dict[str, Any]:
    fmt = "%m-%d" if window == "7d" else "%H:%M"
    labels = [b.start.strftime(fmt) for b in buckets]
    per = {"1h": "5 min", "6h": "15 min", "24h": "hour", "7d": "day"}[window]
    return {
        "latency": charts.line_chart(
            "latency p50 and p95 (ms)",
            labels,
            [
                charts.Series("p50", [b.p50_ms for b in buckets], charts.PALETTE[0]),
                charts.Series("p95", [b.p95_ms for b in buckets], charts.PALETTE[1]),
            ],
            fmt=lambda v: f"{v:g}",
        ),
        "errors": charts.line_chart(
            "error rate (%)",
            labels,
            [
                charts.Series(
                    "errors",
                    [None if b.error_rate is None else 100 * b.error_rate for b in buckets],
                    charts.PALETTE[3],
                )
            ],
            fmt=lambda v: f"{v:g}%",
        ),
        "requests": charts.bar_chart(
            f"requests per {per}",
            labels,
            [float(b.requests) for b in buckets],
            colour=charts.PALETTE[0],
        ),
        "cost": charts.bar_chart(
            f"cost per {per} (USD)",
            labels,
            [b.cost_usd for b in buckets],
            fmt=lambda v: f"${v:.4g}",
        ),
        "per": per,
    }


def _status_filter(text: str | None) -> queries.StatusFilter:
    if text in ("ok", "error"):
        return text  # type: ignore[return-value]
    return int(text) if text and text.isdigit() else None


def _moment(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


@router.get("/requests", response_class=HTMLResponse)
async def requests_page(
    request: Request,
    deployment: str | None = None,
    status: str | None = None,
    before: str | None = None,
) -> Response:
    opened = await _open(request)
    if isinstance(opened, Response):
        return opened
    viewer, ws = opened
    rows = await _read(
        queries.recent_requests,
        ws,
        deployment=deployment or None,
        status=_status_filter(status),
        before=_moment(before),
    )
    names = await _read(queries.known_deployments, ws)
    return _page(
        request,
        "requests.html",
        viewer,
        rows=rows,
        deployments=names,
        deployment=deployment or "",
        status_filter=status or "",
        older=rows[-1].created_at.isoformat() if len(rows) == 50 else None,
    )


@router.get("/requests/{request_id}", response_class=HTMLResponse)
async def request_page(request: Request, request_id: str) -> Response:
    opened = await _open(request)
    if isinstance(opened, Response):
        return opened
    viewer, ws = opened
    detail = await _read(queries.request_detail, ws, request_id)
    if detail is None:
        message = f"No logged request {request_id!r} (the log is written within a second)."
        return _page(request, "error.html", viewer, status=404, title="Not found", message=message)
    graph = await _read(lineage.response_lineage, ws, request_id, detail.summary.model_version)
    trace = await _read(queries.trace_of, ws, detail.trace_id) if detail.trace_id else None
    _place_spans(trace or [])
    return _page(
        request,
        "request.html",
        viewer,
        r=detail,
        lineage=graph,
        lineage_svg=lineage.render_svg(graph),
        colours=lineage.KIND_COLOURS,
        trace=trace,
    )


def _place_spans(spans: list[dict[str, Any]]) -> None:
    """Left edge and width (percent of the whole trace) of each span's bar."""
    total = max((s["offset_ms"] + s["duration_ms"] for s in spans), default=0.0) or 1.0
    for span in spans:
        span["left_pct"] = min(99.5, 100 * span["offset_ms"] / total)
        span["width_pct"] = max(0.5, min(100 - span["left_pct"], 100 * span["duration_ms"] / total))


@router.get("/drift", response_class=HTMLResponse)
async def drift_page(request: Request) -> Response:
    opened = await _open(request)
    if isinstance(opened, Response):
        return opened
    viewer, ws = opened
    report = await _read(queries.drift_report, ws)
    has_plot = bool(report and report.plot and Path(report.plot).is_file())
    return _page(request, "drift.html", viewer, report=report, has_plot=has_plot)


@router.get("/drift/plot.png")
async def drift_plot(request: Request) -> Response:
    viewer = await _viewer(request)
    if isinstance(viewer, Response):
        return viewer
    ws = _workspace(request)
    report = await _read(queries.drift_report, ws) if ws is not None else None
    # Only the plot the latest report names, never a path from the request.
    if report is None or not report.plot or not report.plot.endswith(".png"):
        return Response(status_code=404)
    if not Path(report.plot).is_file():
        return Response(status_code=404)
    return FileResponse(report.plot, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/runs", response_class=HTMLResponse)
async def runs_page(request: Request) -> Response:
    opened = await _open(request)
    if isinstance(opened, Response):
        return opened
    viewer, ws = opened
    runs = await _read(queries.pipeline_runs, ws)
    return _page(request, "runs.html", viewer, runs=runs)


@router.get("/evals", response_class=HTMLResponse)
async def evals_page(request: Request, a: str | None = None, b: str | None = None) -> Response:
    opened = await _open(request)
    if isinstance(opened, Response):
        return opened
    viewer, ws = opened
    results = await _read(queries.evaluations, ws)
    comparisons = queries.eval_comparisons(results)
    error = None
    if a and b:
        from llmline.errors import UserError
        from llmline.evaluation.store import EvalStore

        try:
            comparisons = [await _read(EvalStore(ws.metadata).compare, a, b)]
        except UserError as exc:
            error = str(exc)
    from llmline.evaluation.store import LIST_METRICS

    metric_names = [n for n in LIST_METRICS if any(n in r.metrics for r in results)]
    return _page(
        request,
        "evals.html",
        viewer,
        results=results,
        comparisons=comparisons,
        metric_names=metric_names,
        error=error,
    )

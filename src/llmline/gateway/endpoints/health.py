"""``/healthz`` (the process is alive), ``/readyz`` (every deployment has
a ready backend) and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from llmline.gateway.metrics import CONTENT_TYPE

__all__ = ["router"]

router = APIRouter(tags=["operations"])


def _report(request: Request) -> tuple[bool, dict[str, Any]]:
    engine = request.app.state.service.engine
    deployments: dict[str, Any] = {}
    # Registry models called by name count too ("model:NAME"): `llmline serve`
    # preloads the champions, and is ready once they are.
    for key, live in engine.deployments.items():
        states = {t: engine.health(t) for t in live.targets}
        deployments[key] = {
            "ready": any(h.ready for h in states.values()),
            "backends": {t: {"state": h.state, "detail": h.detail} for t, h in states.items()},
        }
    ready = all(d["ready"] for d in deployments.values())
    return ready, {"status": "ready" if ready else "not ready", "deployments": deployments}


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    _, report = _report(request)
    return {"status": "ok", "deployments": report["deployments"]}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    ready, report = _report(request)
    if not request.app.state.started:
        ready, report["status"] = False, "starting"
    if not ready:
        not_ready = [n for n, d in report["deployments"].items() if not d["ready"]]
        report["error"] = {
            "message": "not ready: " + (", ".join(not_ready) or "starting"),
            "type": "service_unavailable",
            "param": None,
            "code": "not_ready",
        }
    return JSONResponse(report, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    await request.app.state.auth.caller(request.headers.get("authorization"), None)
    service = request.app.state.service
    engine = service.engine
    for target, health in engine.backends().items():
        service.metrics.backend_up.labels(target).set(1 if health.ready else 0)
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)

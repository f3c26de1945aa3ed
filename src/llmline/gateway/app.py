"""The app factory: ``build_app(workspace)`` returns the FastAPI gateway.

Nothing happens at import time; backends start in the app's lifespan, so
``/healthz`` answers at once while weights load and ``/readyz`` says 503
until they are ready.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmline.errors import UserError
from llmline.gateway.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
)

if TYPE_CHECKING:
    from llmline.gateway.caching import ExactCache
    from llmline.gateway.deployments.spec import DeploymentSpec
    from llmline.gateway.engine import Engine
    from llmline.gateway.observe import Observer
    from llmline.gateway.safety import Scanner
    from llmline.gateway.serving import Service
    from llmline.guard.guardrails import Guardrails
    from llmline.guard.quota import Quota
    from llmline.monitoring.alerts import GatewayAlerting
    from llmline.monitoring.requestlog import RequestLog
    from llmline.settings import Settings
    from llmline.workspace import Workspace

__all__ = ["app_from_env", "build_app"]

log = logging.getLogger("llmline.gateway")


def build_app(
    workspace: Workspace | Settings | Path | str | None = None,
    *,
    deployments: Sequence[DeploymentSpec] = (),
    scanners: Mapping[str, Scanner] | None = None,
    embedder: Any = None,
    sync_config: bool = True,
    preload: Sequence[str] | None = None,
    auth: bool = False,
) -> FastAPI:
    """The gateway for ``workspace`` (a Workspace, its folder, or Settings).

    ``deployments`` are served from memory in addition to those saved in
    the metadata store; ``scanners`` (by name) replace the guard's own and
    ``embedder`` the MiniLM one (tests inject fast ones).  ``sync_config``
    saves the ``deployments:`` of ``llmline.yaml`` at startup.  ``preload``
    names registry models to load at startup (default: every champion, when
    no deployment exists).
    ``auth`` requires an API key (``llmline keys create``) on every call
    but the health probes.
    """
    from llmline.gateway.auth import Authenticator
    from llmline.gateway.observe import RequestObserver

    ws = _workspace(workspace)
    parts = _Parts.build(ws, scanners=scanners, embedder=embedder)
    lifespan = _lifespan(
        parts, ws, deployments=deployments, sync_config=sync_config, preload=preload
    )
    app = FastAPI(
        title="llmline gateway",
        version=_version(),
        description="OpenAI-compatible gateway: deployments, rollouts, safety, citations.",
        lifespan=lifespan,
    )
    app.state.service = parts.service
    app.state.auth = Authenticator(ws, enabled=auth)
    app.state.embedder = parts.embedder
    app.state.started = False
    _install_error_handlers(app)
    _include_routers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=parts.settings.gateway.max_body_bytes)
    # Outermost: it sees every answer, and runs the observer from startup to after shutdown.
    app.add_middleware(RequestObserver, observer=parts.observer)
    return app


@dataclass
class _Parts:
    """What one gateway app is made of, built before it starts."""

    settings: Settings
    embedder: Any
    engine: Engine
    guard: Guardrails
    quota: Quota
    requestlog: RequestLog | None
    observer: Observer
    alerting: GatewayAlerting
    service: Service

    @classmethod
    def build(
        cls, ws: Workspace | None, *, scanners: Mapping[str, Scanner] | None, embedder: Any
    ) -> _Parts:
        from llmline.gateway.accounting import build_quota, build_request_log
        from llmline.gateway.caching import SemanticCache
        from llmline.gateway.embedder import MiniLMEmbedder
        from llmline.gateway.engine import Engine
        from llmline.gateway.observe import build_observer
        from llmline.gateway.serving import Service
        from llmline.guard.guardrails import Guardrails
        from llmline.monitoring.alerts import GatewayAlerting
        from llmline.settings import Settings

        settings = ws.settings if ws is not None else Settings()
        embedder = embedder or MiniLMEmbedder()
        engine = Engine(ws)
        guard = Guardrails(settings.guard, scanners=scanners, embedder=embedder.embed)
        quota = build_quota(settings)
        requestlog = None
        if ws is not None and settings.monitoring.request_log:
            requestlog = build_request_log(ws)
        observer = build_observer(ws, settings, requestlog=requestlog)
        # Built here, not in the lifespan: malformed alert rules stop `serve` with one line.
        alerting = GatewayAlerting(ws)
        service = Service(
            engine,
            settings,
            metrics=observer.metrics,
            guard=guard,
            cache=_exact_cache(settings),
            semantic=SemanticCache(embedder),
            quota=quota,
            requestlog=requestlog,
            observer=observer,
        )
        return cls(
            settings, embedder, engine, guard, quota, requestlog, observer, alerting, service
        )


def _lifespan(
    parts: _Parts,
    ws: Workspace | None,
    *,
    deployments: Sequence[DeploymentSpec],
    sync_config: bool,
    preload: Sequence[str] | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    from llmline.gateway.accounting import reconcile

    engine, requestlog, settings = parts.engine, parts.requestlog, parts.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if ws is not None and sync_config and settings.deployments:
            from llmline.gateway.deployments.api import sync_declared_deployments

            sync_declared_deployments(ws)
        for spec in deployments:
            await engine.add(spec)
        if requestlog is not None and ws is not None:
            await reconcile(parts.quota, requestlog, ws)
            requestlog.start()
        # The classifiers load now, not inside the first request's latency budget.
        await asyncio.to_thread(parts.guard.warm_up)
        await engine.start(reload_interval_s=settings.gateway.reload_interval_s)
        engine.preload(list(preload) if preload is not None else _default_preload(engine))
        parts.alerting.start()
        app.state.started = True
        try:
            yield
        finally:
            app.state.started = False
            await _shut_down(parts)

    return lifespan


async def _shut_down(parts: _Parts) -> None:
    await parts.service.drain()
    await parts.engine.close()
    await parts.service.cache.close()
    if parts.requestlog is not None:
        await parts.requestlog.close()
    await parts.quota.limiter.aclose()
    await parts.quota.ledger.aclose()
    await parts.alerting.stop()


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory`` (``llmline serve --workers N``): the
    workspace comes from ``$LLMLINE_WORKSPACE``."""
    from llmline.workspace import find_workspace

    workspace = find_workspace(os.environ.get("LLMLINE_WORKSPACE"))
    # `llmline serve` settles auto/on/off for its host and passes it on as "on"/"off".
    return build_app(workspace, auth=workspace.settings.gateway.auth == "on")


def _workspace(value: Workspace | Settings | Path | str | None) -> Workspace | None:
    from llmline.settings import Settings
    from llmline.workspace import Workspace

    if value is None or isinstance(value, Workspace):
        return value
    if isinstance(value, Settings):
        return Workspace(Path.cwd(), value)
    return Workspace(Path(value))


def _default_preload(engine: Engine) -> list[str]:
    return [] if engine.deployments else engine.champions()


def _exact_cache(settings: Settings) -> ExactCache:
    from llmline.gateway.caching import LRUCache, RedisCache

    url = settings.gateway.redis_url
    return RedisCache(url) if url else LRUCache()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llmline")
    except PackageNotFoundError:
        return "0"


def _include_routers(app: FastAPI) -> None:
    from llmline.dashboard import routes as dashboard
    from llmline.gateway.endpoints import (
        admin,
        chat,
        completions,
        embeddings,
        feedback,
        health,
        models,
    )

    for module in (chat, completions, embeddings, models, health, admin, feedback, dashboard):
        app.include_router(module.router)


def _error(exc: GatewayError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _install_error_handlers(app: FastAPI) -> None:
    """One OpenAI-style error body for every failure."""

    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, exc: GatewayError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(_invalid(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        body = GatewayError(str(exc.detail), code=kinds.get(exc.status_code)).body()
        body["error"]["type"] = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(UserError)
    async def user_error(_: Request, exc: UserError) -> JSONResponse:
        # A registry or template problem a request ran into (e.g. a deleted version).
        if isinstance(exc, LookupError):
            return _error(NotFoundError(str(exc), code="not_found"))
        return _error(InvalidRequestError(str(exc)))


def _invalid(exc: RequestValidationError) -> InvalidRequestError:
    errors = exc.errors()
    first: dict[str, Any] = dict(errors[0]) if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return InvalidRequestError(
            f"the body is not valid JSON: {first.get('ctx', {}).get('error', message)}"
        )
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = f"{param}: " if param else ""
    return InvalidRequestError(f"{where}{message}{more}", param=param)


def _replay(messages: list[Message], last: Message | None, receive: Receive) -> Receive:
    """A ``receive`` giving ``messages`` (then ``last``) before the real one
    (which later reports the client's disconnect)."""
    queue = [*messages, *([last] if last is not None else [])]

    async def replayed() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replayed


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``, judged by Content-Length when sent
    and by counting otherwise (a chunked upload cannot sneak past)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        # Read the body here (counting) so that an oversized one is refused
        # before anything parses it; the app then gets it replayed.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message, receive), send)
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], None, receive), send)

    def _message(self) -> str:
        return f"the request body is larger than this gateway's limit of {self.max_bytes} bytes"

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _error(PayloadTooLargeError(self._message()))
        await response(scope, receive, send)

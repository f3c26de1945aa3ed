"""What the gateway records about each request: its trace, its JSON log
line, its request-log row and the metrics derived from them.

:class:`RequestObserver` (ASGI middleware, outermost) opens a
:class:`RequestTrace` for every call of an API endpoint and makes it the
*current* one (a context variable the handler, the auth check and the
:class:`~llmline.gateway.serving.Service` read).  The trace's root span is
``<operation> <deployment>``; the stages add children: ``auth``,
``guardrails.input``, ``cache.lookup``, ``routing``, ``backend`` (GenAI
semantic-convention attributes; ``generation`` below it for streams, with
a ``first_token`` event), ``guardrails.output`` and ``postprocess``.

Child spans get their parent passed explicitly and are never attached to
the OpenTelemetry context: a stream's stages run in an async generator
that is resumed from another task, where attaching and detaching contexts
does not pair up.  Spans left open by an exception are ended, marked as
errors, when the request ends.

Every request yields exactly one record: the Service writes it for
requests it handled (:meth:`Observer.finish`); the middleware writes it
for the others (refused at auth, an unknown model, an invalid body, an
embeddings call), from what the handler noted on the trace and from the
response's status and error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as otel
from opentelemetry.trace import INVALID_SPAN, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from llmline.gateway.metrics import GatewayMetrics
    from llmline.gateway.providers import GenerationOutput
    from llmline.gateway.safety import SafetyAttributes
    from llmline.gateway.serving import Answer, Caller, Prepared
    from llmline.monitoring.requestlog import RequestLog, RequestRecord
    from llmline.monitoring.tracing import Tracing
    from llmline.settings import Settings
    from llmline.workspace import Workspace

__all__ = [
    "TRACE_HEADER",
    "Observer",
    "RequestObserver",
    "RequestTrace",
    "backend",
    "build_observer",
    "current_trace",
    "generated",
    "output",
    "postprocessed",
    "routed",
    "safety",
]

TRACE_HEADER = "x-llmline-trace-id"
#: API paths observed, with their GenAI operation and request-id prefix.
_ENDPOINTS = {
    "/v1/chat/completions": ("chat", "chat", "chatcmpl"),
    "/v1/completions": ("completions", "text_completion", "cmpl"),
    "/v1/embeddings": ("embeddings", "embeddings", "emb"),
}
_ERROR_BODY_MAX = 8192
log = logging.getLogger("llmline.gateway")
_propagator = TraceContextTextMapPropagator()
_current: ContextVar[RequestTrace | None] = ContextVar("llmline_request_trace", default=None)

Attributes = Mapping[str, Any]


def current_trace() -> RequestTrace:
    """The trace of the request being handled (a disabled one outside requests)."""
    trace = _current.get()
    return trace if trace is not None else RequestTrace(None, "none")


def _clean(attributes: Attributes | None) -> dict[str, Any]:
    # OpenTelemetry refuses None values (with a warning per value): leave them out.
    return {k: v for k, v in (attributes or {}).items() if v is not None}


class RequestTrace:
    """One request's spans, and what its record needs if the Service never
    handles it.  With tracing off every span is OpenTelemetry's no-op span."""

    def __init__(
        self,
        tracing: Tracing | None,
        endpoint: str,
        *,
        operation: str = "",
        parent: Context | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.operation = operation or endpoint
        self.started = time.perf_counter()
        self.accounted = False  # the Service wrote the record
        self.key_id: str | None = None
        self.user: str | None = None
        self.deployment: str | None = None
        self.model_version: str | None = None
        self.prompt_tokens = 0
        self.request_id: str | None = None
        self.backend: Span | None = None  # the backend call in progress (parent of generation)
        self._tracing = tracing
        self._open: list[Span] = []
        if tracing is None:
            self.root: Span = INVALID_SPAN
            self.trace_id: str | None = None
            return
        remote = otel.get_current_span(parent).get_span_context() if parent else None
        valid = remote is not None and remote.is_valid
        self.root = tracing.stage(self.operation, remote if valid else None, SpanKind.SERVER)
        self._root_context = self.root.get_span_context()
        self.trace_id = f"{self._root_context.trace_id:032x}"

    @property
    def recording(self) -> bool:
        return self._tracing is not None

    def start(
        self,
        name: str,
        attributes: Attributes | None = None,
        *,
        parent: Span | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Span:
        """A child span (of ``parent``, else the root), ended by :meth:`end`
        or, at the latest, when the request ends."""
        if self._tracing is None:
            return INVALID_SPAN
        context = self._root_context if parent is None else parent.get_span_context()
        span = self._tracing.stage(name, context, kind, attributes)
        self._open.append(span)
        return span

    def end(self, span: Span, attributes: Attributes | None = None) -> None:
        if not span.is_recording():
            return
        if attributes:
            span.set_attributes(attributes)  # a StageSpan leaves None values out
        span.end()
        if span in self._open:
            self._open.remove(span)

    def fail(self, span: Span, error: BaseException) -> None:
        """End ``span`` as failed with ``error``."""
        if span.is_recording():
            span.set_status(Status(StatusCode.ERROR, str(error)[:300] or type(error).__name__))
            span.set_attribute("error.type", type(error).__name__)
            self.end(span)

    def requested(self, body: bytes) -> None:
        """Who and what from the request body (a request the Service never saw)."""
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        model, user = data.get("model"), data.get("user")
        if isinstance(user, str) and self.user is None:
            self.user = user[:200]
        if not isinstance(model, str):
            return
        if self.endpoint == "embeddings":
            self.model_version = self.model_version or model[:300]
        else:
            self.deployment = self.deployment or model[:100]

    def identify(self, caller: Caller) -> None:
        self.user = caller.user
        if caller.key is not None:
            self.key_id = caller.key.key_id

    def close(self, status: int) -> None:
        """End the spans still open (as errors) and the root."""
        for span in list(self._open):
            span.set_status(Status(StatusCode.ERROR, "did not finish (the request ended)"))
            self.end(span)
        if self._tracing is None:
            return
        root = self.root
        served = self.deployment or (self.model_version if self.endpoint == "embeddings" else None)
        if served:
            root.update_name(f"{self.operation} {served}")
        root.set_attributes(
            _clean(
                {
                    "http.response.status_code": status,
                    "llmline.request_id": self.request_id,
                    "llmline.deployment": self.deployment,
                    "llmline.key_id": self.key_id,
                }
            )
        )
        if status >= 500:
            root.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
        root.end()


# -- the stages' spans (called from serving.py) ---------------------------------------


def safety(prepared: Prepared, span: Span, attributes: SafetyAttributes) -> None:
    """End a guardrails span with its decision."""
    categories = list(attributes.categories or ())
    decision = {"llmline.safety.blocked": attributes.blocked}
    prepared.trace.end(span, {**decision, "llmline.safety.categories": categories or None})


def routed(prepared: Prepared, span: Span, decision: Any) -> None:
    """End the routing span with the router's choice."""
    prepared.trace.end(
        span,
        {
            "llmline.route.target": decision.target,
            "llmline.route.reason": decision.reason,
            "llmline.route.shadow": decision.shadow,
        },
    )


def backend(prepared: Prepared, target: str) -> _BackendSpan:
    """``with backend(prepared, target):`` around one provider call."""
    return _BackendSpan(prepared, target)


class _BackendSpan:
    def __init__(self, prepared: Prepared, target: str) -> None:
        self.trace = prepared.trace
        self.prepared = prepared
        self.target = target
        self.span: Span = INVALID_SPAN

    def __enter__(self) -> Span:
        if not self.trace.recording:
            return self.span
        request = self.prepared.request
        operation = "text_completion" if self.prepared.endpoint == "completions" else "chat"
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.system": self.target.partition(":")[0],
            "gen_ai.request.model": self.target,
            "gen_ai.request.max_tokens": request.max_tokens,
            "gen_ai.request.temperature": request.temperature,
            "gen_ai.request.top_p": request.top_p,
            "gen_ai.request.seed": request.seed,
            "llmline.stream": self.prepared.stream,
        }
        self.span = self.trace.start("backend", attributes, kind=SpanKind.CLIENT)
        self.trace.backend = self.span
        return self.span

    def __exit__(self, kind: Any, error: BaseException | None, *_: Any) -> None:
        self.trace.backend = None
        if isinstance(error, Exception):
            self.trace.fail(self.span, error)
        else:  # done, or a client that left (GeneratorExit, cancellation): not a failure
            self.trace.end(self.span)


def _usage(output: GenerationOutput, target: str) -> dict[str, Any]:
    return {
        "gen_ai.response.model": target,
        "gen_ai.response.finish_reasons": [output.finish_reason],
        "gen_ai.usage.input_tokens": output.prompt_tokens,
        "gen_ai.usage.output_tokens": output.completion_tokens,
        "llmline.ttft_ms": None if output.ttft_ms is None else round(output.ttft_ms, 3),
    }


def output(prepared: Prepared, generated: GenerationOutput, target: str) -> None:
    """A non-streamed answer's usage, on its backend span."""
    span = prepared.trace.backend
    if span is not None and span.is_recording():
        span.set_attributes(_clean(_usage(generated, target)))


def generated(
    prepared: Prepared, span: Span, output: GenerationOutput, target: str, started: float
) -> None:
    """End a stream's ``generation`` span and its backend span, with usage
    and a ``first_token`` event at the time the first text arrived."""
    trace = prepared.trace
    if not span.is_recording():
        return
    if output.ttft_ms is not None:
        # perf_counter times to the wall clock OpenTelemetry uses (ns since the epoch).
        ago_s = time.perf_counter() - (started + output.ttft_ms / 1000)
        span.add_event("first_token", timestamp=time.time_ns() - int(ago_s * 1e9))
    usage = _usage(output, target)
    trace.end(span, usage)
    if trace.backend is not None:
        trace.end(trace.backend, usage)


def postprocessed(prepared: Prepared, span: Span, answer: Answer) -> None:
    """End the postprocess span: citations found and the cost."""
    prepared.trace.end(
        span,
        {
            "llmline.citations": len(answer.citations),
            "llmline.cost_usd": answer.cost_usd,
            "llmline.finish_reason": answer.finish_reason,
        },
    )


# -- records, logs and metrics --------------------------------------------------------


class Observer:
    """Turns finished requests into their record, log line and metrics."""

    def __init__(
        self,
        *,
        metrics: GatewayMetrics,
        requestlog: RequestLog | None = None,
        tracing: Tracing | None = None,
        json_logs: bool = False,
    ) -> None:
        self.metrics = metrics
        self.requestlog = requestlog
        self.tracing = tracing
        self.json_logs = json_logs

    def start(self) -> None:
        if self.tracing is not None:
            self.tracing.start()

    def close(self) -> None:
        if self.tracing is not None:
            self.tracing.shutdown()

    def begin(self, path: str, headers: Mapping[str, str]) -> RequestTrace:
        endpoint, operation, _ = _ENDPOINTS[path]
        tracing = self.tracing
        # A caller's W3C traceparent makes this request part of its trace.
        parent = _propagator.extract(headers) if tracing is not None else None
        return RequestTrace(tracing, endpoint, operation=operation, parent=parent)

    def finish(self, prepared: Prepared, record: RequestRecord) -> None:
        """The Service's record of a request it handled."""
        trace = prepared.trace
        trace.accounted = True
        trace.request_id, trace.deployment = record.request_id, record.deployment
        if trace.recording:
            trace.root.set_attributes(_record_attributes(record))
        self.emit(record, trace)

    def emit(self, record: RequestRecord, trace: RequestTrace | None) -> None:
        from llmline.monitoring.logs import log_request, tokens_per_second

        if trace is not None:
            record.trace_id = trace.trace_id
        metrics = self.metrics
        if record.status >= 400:
            metrics.request_errors.labels(record.endpoint, str(record.status)).inc()
        speed = tokens_per_second(record)
        if speed is not None:
            version = record.model_version or "none"
            metrics.tokens_per_second.labels(record.deployment, version).observe(speed)
        if self.json_logs:
            log_request(record)
        if self.requestlog is not None:
            self.requestlog.record(record)

    def complete(self, trace: RequestTrace, status: int, error_body: bytes) -> None:
        """The end of an observed HTTP call: its record unless the Service
        wrote one, then the trace's end."""
        if not trace.accounted:
            self.emit(self._unhandled(trace, status, error_body), trace)
        trace.close(status)

    def _unhandled(self, trace: RequestTrace, status: int, error_body: bytes) -> RequestRecord:
        from llmline.gateway.serving import new_request_id
        from llmline.monitoring.requestlog import RequestRecord

        prefix = next(p for e, _, p in _ENDPOINTS.values() if e == trace.endpoint)
        trace.request_id = trace.request_id or new_request_id(prefix)
        return RequestRecord(
            request_id=trace.request_id,
            endpoint=trace.endpoint,
            status=status,
            key_id=trace.key_id,
            user=trace.user,
            deployment=trace.deployment,
            model_version=trace.model_version,
            prompt_tokens=trace.prompt_tokens,
            error=_error_message(error_body) if status >= 400 else None,
            latency_ms=(time.perf_counter() - trace.started) * 1000,
        )


def _record_attributes(record: RequestRecord) -> dict[str, Any]:
    return _clean(
        {
            "llmline.request_id": record.request_id,
            "llmline.deployment": record.deployment,
            "llmline.key_id": record.key_id,
            "llmline.model_version": record.model_version,
            "llmline.route_reason": record.route_reason,
            "llmline.prompt_version": record.prompt_version,
            "llmline.cache": record.cache,
            "llmline.finish_reason": record.finish_reason,
            "llmline.stream": record.stream,
            "llmline.cost_usd": record.cost_usd,
            "llmline.error": record.error,
            "gen_ai.usage.input_tokens": record.prompt_tokens,
            "gen_ai.usage.output_tokens": record.completion_tokens,
        }
    )


def _error_message(body: bytes) -> str | None:
    """``error.message`` of an OpenAI-style error body."""
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(message)[:500]


class RequestObserver:
    """ASGI middleware: a :class:`RequestTrace` around each API call, the
    ``x-llmline-trace-id`` response header, and the record of calls the
    Service did not handle."""

    def __init__(self, app: ASGIApp, observer: Observer) -> None:
        self.app = app
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._starting(receive), self._stopped(send))
            return
        path = scope.get("path", "")
        if scope["type"] != "http" or scope.get("method") != "POST" or path not in _ENDPOINTS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        trace = self.observer.begin(path, headers)
        status, error_body = 500, bytearray()

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if trace.trace_id is not None:
                    extra = (TRACE_HEADER.encode(), trace.trace_id.encode())
                    message = {**message, "headers": [*message.get("headers", ()), extra]}
            elif status >= 400 and len(error_body) < _ERROR_BODY_MAX:
                error_body.extend(message.get("body", b"")[:_ERROR_BODY_MAX])
            await send(message)

        body: list[bytes] = []  # kept, not parsed: read only for a request the Service never saw

        async def observed_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(body) < 64:
                body.append(message.get("body", b""))
            return message

        token = _current.set(trace)
        try:
            await self.app(scope, observed_receive, observed_send)
        finally:
            _current.reset(token)
            if not trace.accounted:
                trace.requested(b"".join(body))
            try:
                self.observer.complete(trace, status, bytes(error_body))
            except Exception:  # the answer is sent; observing it must not turn into an error
                log.exception("observing request %s failed", trace.request_id)

    def _starting(self, receive: Receive) -> Receive:
        """Start the observer (its span writer) before the app starts."""

        async def starting() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.observer.start()
            return message

        return starting

    def _stopped(self, send: Send) -> Send:
        """Stop the observer once the app has stopped: the spans of the last
        requests are written (and exported) before the process ends."""

        async def stopped(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await asyncio.to_thread(self.observer.close)
            await send(message)

        return stopped


def build_observer(
    workspace: Workspace | None, settings: Settings, *, requestlog: RequestLog | None
) -> Observer:
    """The observer of a gateway app (and its metrics), as ``monitoring:`` of
    ``llmline.yaml`` says."""
    from llmline.gateway.metrics import GatewayMetrics
    from llmline.monitoring.tracing import build_tracing

    metrics = GatewayMetrics()
    monitoring = settings.monitoring
    tracing = build_tracing(workspace, monitoring)
    if requestlog is not None:
        metrics.watch_queue("requestlog", requestlog)
    if tracing is not None and tracing.store is not None:
        metrics.watch_queue("spans", tracing.store)
    if monitoring.json_logs:
        from llmline.monitoring.logs import configure_request_logs

        configure_request_logs()
    return Observer(
        requestlog=requestlog, tracing=tracing, json_logs=monitoring.json_logs, metrics=metrics
    )

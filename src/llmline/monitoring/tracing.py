"""OpenTelemetry traces of gateway requests: stored locally, exported by OTLP.

Each gateway app builds its own :class:`Tracing`: an SDK ``TracerProvider``
that is never installed as the global one (several apps live in one test
process; a user's own global provider is left alone).  Every span goes to
the local store (``.llmline/traces.db``, see :mod:`llmline.monitoring.spanstore`)
and, when an endpoint is configured, also to an OTLP/HTTP collector through
the SDK's ``BatchSpanProcessor`` (its own thread, queue and retries).

The OTLP endpoint is ``monitoring.otlp_endpoint`` of ``llmline.yaml`` (the
collector's base URL, as ``OTEL_EXPORTER_OTLP_ENDPOINT``: ``/v1/traces`` is
appended), else the standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_ENDPOINT`` variables; headers, timeouts and
compression come from the standard ``OTEL_EXPORTER_OTLP_*`` variables.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from llmline.monitoring.spanstore import (
    LocalSpanProcessor,
    SpanStore,
    Trace,
    TraceSpan,
    TraceSummary,
)
from llmline.monitoring.spanstore import get_trace as _get_trace
from llmline.monitoring.spanstore import list_traces as _list_traces

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from llmline.monitoring.config import MonitoringSettings
    from llmline.workspace import Workspace

__all__ = [
    "StageSpan",
    "Trace",
    "TraceSpan",
    "TraceSummary",
    "Tracing",
    "build_tracing",
    "get_trace",
    "list_traces",
    "otlp_endpoint",
    "trace_store_path",
]

_TRACES_PATH = "/v1/traces"


def trace_store_path(workspace: Workspace) -> Path:
    return workspace.state_dir / "traces.db"


def otlp_endpoint(settings: MonitoringSettings) -> str | None:
    """Where spans are exported to, or None (the local store only)."""
    if settings.otlp_endpoint:
        base = settings.otlp_endpoint.rstrip("/")
        return base if base.endswith(_TRACES_PATH) else base + _TRACES_PATH
    full = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if full:
        return full
    root = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return root.rstrip("/") + _TRACES_PATH if root else None


class Tracing:
    """One app's tracer provider, its local store and its OTLP export."""

    def __init__(
        self,
        *,
        store: SpanStore | None,
        endpoint: str | None,
        service_name: str = "llmline-gateway",
    ) -> None:
        from llmline import __version__

        self.resource = Resource.create(
            {"service.name": service_name, "service.version": __version__}
        )
        self.scope = InstrumentationScope("llmline.gateway", __version__)
        # ALWAYS_ON: every request is stored locally, whatever a caller's traceparent says.
        self.provider = TracerProvider(
            sampler=ALWAYS_ON, resource=self.resource, shutdown_on_exit=False
        )
        self.store = store
        self.endpoint = endpoint
        self.processors: list[SpanProcessor] = []
        if store is not None:
            self.processors.append(LocalSpanProcessor(store))
        if endpoint is not None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self.processors.append(BatchSpanProcessor(OTLPSpanExporter(endpoint)))
        for processor in self.processors:
            self.provider.add_span_processor(processor)
        self.tracer: Tracer = self.provider.get_tracer("llmline.gateway", __version__)

    def stage(
        self,
        name: str,
        parent: SpanContext | None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
    ) -> StageSpan:
        """A span recorded cheaply (see :class:`StageSpan`): a child of
        ``parent`` (local, or a caller's from its traceparent), else the
        root of a new trace."""
        return StageSpan(self, name, parent, kind, attributes)

    def export(self, span: ReadableSpan) -> None:
        for processor in self.processors:
            processor.on_end(span)

    def start(self) -> None:
        if self.store is not None:
            self.store.start()

    def flush(self, timeout_s: float = 30.0) -> bool:
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        """Flush and stop every processor (the OTLP one sends what it holds)."""
        self.provider.shutdown()


_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def _new_trace_id() -> int:
    return random.getrandbits(128) or 1  # 0 is the invalid id


def _new_span_id() -> int:
    return random.getrandbits(64) or 1


class StageSpan(Span):
    """A span of one stage of a request, recorded cheaply.

    The SDK's own ``Span`` costs tens of microseconds to start and end (a
    sampler, locked bounded attributes, limits), and a request has eight
    of them.  A stage span only keeps its name, times, attributes and
    events in plain fields and, when it ends, hands one ``ReadableSpan`` —
    what the SDK itself gives its processors — to the same processors (the
    local store, the OTLP batch exporter).  It is always sampled (the
    provider's sampler is ALWAYS_ON too) and carries no links.
    """

    def __init__(
        self,
        tracing: Tracing,
        name: str,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, Any] | None,
    ) -> None:
        self._tracing = tracing
        self._name = name
        self._parent = parent
        self._kind = kind
        trace_id = parent.trace_id if parent is not None else _new_trace_id()
        self._context = SpanContext(trace_id, _new_span_id(), False, _SAMPLED)
        self._attributes: dict[str, Any] = {}
        self._events: list[Event] = []
        self._status = Status(StatusCode.UNSET)
        self._end: int | None = None
        if attributes:
            self.set_attributes(attributes)
        self._start = time.time_ns()

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end is None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            if value is not None:  # OpenTelemetry has no null attribute values
                self._attributes[key] = list(value) if isinstance(value, tuple) else value

    def set_attribute(self, key: str, value: Any) -> None:
        self.set_attributes({key: value})

    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None:
        self._events.append(Event(name, attributes, timestamp or time.time_ns()))

    def update_name(self, name: str) -> None:
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        self._status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        details = {"exception.type": type(exception).__name__, "exception.message": str(exception)}
        self.add_event("exception", {**details, **(attributes or {})}, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        self._end = end_time or time.time_ns()
        self._tracing.export(
            ReadableSpan(
                name=self._name,
                context=self._context,
                parent=self._parent,
                resource=self._tracing.resource,
                attributes=self._attributes,
                events=self._events,
                kind=self._kind,
                status=self._status,
                start_time=self._start,
                end_time=self._end,
                instrumentation_scope=self._tracing.scope,
            )
        )


def build_tracing(workspace: Workspace | None, settings: MonitoringSettings) -> Tracing | None:
    """The tracing of a gateway app, or None when ``monitoring.tracing`` is off."""
    if not settings.tracing:
        return None
    store = SpanStore(trace_store_path(workspace)) if workspace is not None else None
    return Tracing(store=store, endpoint=otlp_endpoint(settings))


def list_traces(
    workspace: Workspace,
    *,
    limit: int = 20,
    deployment: str | None = None,
    since: datetime | None = None,
) -> list[TraceSummary]:
    """Recent request traces of ``workspace``, newest first."""
    return _list_traces(
        trace_store_path(workspace), limit=limit, deployment=deployment, since=since
    )


def get_trace(workspace: Workspace, trace_id: str) -> Trace:
    """One trace as a tree of spans; ``NotFoundError`` for an unknown id."""
    return _get_trace(trace_store_path(workspace), trace_id)

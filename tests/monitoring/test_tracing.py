"""Traces: the local span store (SQLite, batched, bounded, degrading and
recovering), reading traces back as trees, and OTLP/HTTP export to a real
collector on loopback (protobuf decoded with opentelemetry-proto)."""

from __future__ import annotations

import gzip
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from opentelemetry import trace as otel
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.trace import SpanKind

from llmline.errors import NotFoundError, UserError
from llmline.monitoring.config import MonitoringSettings
from llmline.monitoring.spanstore import SpanStore, get_trace, list_traces
from llmline.monitoring.tracing import Tracing, build_tracing, otlp_endpoint, trace_store_path
from llmline.testing import ServerThread
from llmline.workspace import init_workspace


def _request(tracing: Tracing, deployment: str, *, stages: int = 3) -> str:
    """One request-shaped trace: a root and ``stages`` children; its id."""
    tracer = tracing.tracer
    root = tracer.start_span(
        f"chat {deployment}",
        kind=SpanKind.SERVER,
        attributes={"llmline.deployment": deployment, "llmline.request_id": f"r-{deployment}"},
    )
    context = otel.set_span_in_context(root)
    for i in range(stages):
        child = tracer.start_span(f"stage{i}", context, attributes={"i": i, "tags": ("a", "b")})
        if i == 0:
            child.add_event("first_token", {"n": 1})
        child.end()
    root.set_attribute("http.response.status_code", 200)
    root.end()
    return f"{root.get_span_context().trace_id:032x}"


def test_spans_are_stored_and_read_back_as_trees(tmp_path: Path) -> None:
    store = SpanStore(tmp_path / "traces.db").start()
    tracing = Tracing(store=store, endpoint=None)
    first = _request(tracing, "faq")
    second = _request(tracing, "docs", stages=1)
    tracing.shutdown()
    assert (store.stored, store.dropped, store.pending) == (6, 0, 0)

    listed = list_traces(tmp_path / "traces.db")
    assert [t.trace_id for t in listed] == [second, first]  # newest first
    assert listed[1].span_count == 4
    assert (listed[1].deployment, listed[1].request_id, listed[1].http_status) == (
        "faq",
        "r-faq",
        200,
    )
    assert [t.trace_id for t in list_traces(tmp_path / "traces.db", deployment="faq")] == [first]
    assert len(list_traces(tmp_path / "traces.db", limit=1)) == 1
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert list_traces(tmp_path / "traces.db", since=later) == []

    trace = get_trace(tmp_path / "traces.db", first[:12])  # a unique prefix is enough
    assert trace.trace_id == first and trace.span_count == 4
    (root,) = trace.spans
    assert root.name == "chat faq" and root.kind == "server"
    assert [c.name for c in root.children] == ["stage0", "stage1", "stage2"]
    stage0 = root.children[0]
    assert stage0.attributes == {"i": 0, "tags": ["a", "b"]}
    assert [e["name"] for e in stage0.events] == ["first_token"]
    assert stage0.events[0]["attributes"] == {"n": 1}
    assert trace.to_dict()["spans"][0]["children"][0]["name"] == "stage0"


def test_unknown_and_malformed_trace_ids(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    with pytest.raises(NotFoundError, match="no trace"):
        get_trace(path, "0" * 32)  # no store yet: same answer as an unknown id
    assert list_traces(path) == []
    tracing = Tracing(store=SpanStore(path).start(), endpoint=None)
    _request(tracing, "faq")
    tracing.shutdown()
    with pytest.raises(NotFoundError):
        get_trace(path, "f" * 32)
    for bad in ("xyz", "1234", "g" * 32, "0" * 33):
        with pytest.raises(UserError, match="not a trace id"):
            get_trace(path, bad)


def test_the_queue_is_bounded_and_counts_what_it_drops(tmp_path: Path) -> None:
    store = SpanStore(tmp_path / "traces.db", max_pending=10)  # no writer thread yet
    tracing = Tracing(store=store, endpoint=None)
    for _ in range(5):
        _request(tracing, "faq", stages=4)  # 25 spans
    assert (store.pending, store.dropped) == (10, 15)
    assert store.flush()  # written by the caller when no thread runs
    assert (store.pending, store.stored) == (0, 10)


def test_an_unwritable_store_degrades_then_recovers(tmp_path: Path) -> None:
    """A store whose folder cannot exist (a file is in the way: the same
    for root as for anyone) counts errors, keeps what fits, and writes it
    all once the folder can be made."""
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    store = SpanStore(blocker / "traces.db", flush_interval_s=0.05).start()
    tracing = Tracing(store=store, endpoint=None)
    ids = [_request(tracing, "faq", stages=1) for _ in range(3)]
    _wait(lambda: store.write_errors > 0)
    assert store.degraded and store.stored == 0 and store.pending == 6
    assert not store.flush(timeout_s=5)  # a dead store is not waited for

    blocker.unlink()  # the disk is back
    _wait(lambda: store.stored == 6)
    assert not store.degraded
    tracing.shutdown()
    assert {t.trace_id for t in list_traces(blocker / "traces.db")} == set(ids)


def test_the_global_provider_is_left_alone(tmp_path: Path) -> None:
    before = otel.get_tracer_provider()
    tracing = build_tracing(init_workspace(tmp_path / "ws", load_sample_data=False), _settings())
    assert tracing is not None
    assert otel.get_tracer_provider() is before
    tracing.shutdown()
    assert build_tracing(None, _settings(tracing=False)) is None


def _settings(**values: Any) -> MonitoringSettings:
    return MonitoringSettings.model_validate(values)


def test_otlp_endpoint_from_settings_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert otlp_endpoint(_settings()) is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert otlp_endpoint(_settings()) == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://other:4318/custom")
    assert otlp_endpoint(_settings()) == "http://other:4318/custom"
    configured = _settings(otlp_endpoint="http://mine:4318")
    assert otlp_endpoint(configured) == "http://mine:4318/v1/traces"
    assert otlp_endpoint(_settings(otlp_endpoint="http://mine:4318/v1/traces")) == (
        "http://mine:4318/v1/traces"
    )


def _collector(received: list[Any]) -> Any:
    """A minimal OTLP/HTTP collector: decodes each export request."""
    app = FastAPI()

    @app.post("/v1/traces")
    async def export(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        received.append((request.headers.get("content-type"), message))
        reply = ExportTraceServiceResponse().SerializeToString()
        return Response(reply, media_type="application/x-protobuf")

    return app


def test_spans_are_exported_by_otlp_and_stored_locally(tmp_path: Path) -> None:
    received: list[Any] = []
    with ServerThread(_collector(received)) as collector:
        ws = init_workspace(tmp_path / "ws", load_sample_data=False)
        tracing = build_tracing(ws, _settings(otlp_endpoint=collector.url))
        assert tracing is not None and tracing.endpoint == collector.url + "/v1/traces"
        tracing.start()
        trace_id = _request(tracing, "faq", stages=2)
        tracing.shutdown()  # flushes the batch processor: the export happened by now
    assert received, "the collector got nothing"
    content_type = received[0][0]
    assert content_type == "application/x-protobuf"
    spans = [
        span
        for _, message in received
        for resource in message.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert sorted(s.name for s in spans) == ["chat faq", "stage0", "stage1"]
    assert {s.trace_id.hex() for s in spans} == {trace_id}
    resource = received[0][1].resource_spans[0].resource
    names = {a.key: a.value.string_value for a in resource.attributes}
    assert names["service.name"] == "llmline-gateway"
    root = next(s for s in spans if s.name == "chat faq")
    attributes = {a.key: a.value.string_value for a in root.attributes}
    assert attributes["llmline.deployment"] == "faq"
    # ... and the same trace is in the local store.
    assert get_trace(trace_store_path(ws), trace_id).span_count == 3


def _wait(condition: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)

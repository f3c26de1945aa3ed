"""Observability of the gateway, end to end over HTTP: a trace per request
with a span per stage (stored locally, its id in a response header and in
the request log), one JSON log line per request, records for requests
refused at auth and for embeddings, the metrics that count them, switching
it all off, and serving on through a metadata-store outage."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from llmline.guard.keys import KeyStore
from llmline.monitoring.logs import REQUEST_LOGGER, JsonFormatter
from llmline.monitoring.tracing import Trace, get_trace, list_traces
from llmline.storage.request_tables import RequestRow
from llmline.workspace import Workspace
from tests.gateway.conftest import Running, spec
from tests.gateway.test_upstreams_and_safety import configure

STAGES = ["auth", "guardrails.input", "cache.lookup", "routing", "backend"]
STAGES += ["guardrails.output", "postprocess"]


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines logged on ``llmline.requests`` during the test."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(REQUEST_LOGGER)
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(level)


def chat(gw: Running, content: str, *, token: str | None = None, **body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    payload = {"model": "faq", "messages": [{"role": "user", "content": content}], **body}
    with gw.http() as http:
        return http.post("/v1/chat/completions", json=payload, headers=headers)


def trace_of(gw: Running, ws: Workspace, response: httpx.Response) -> Trace:
    assert gw.service.observer.tracing.flush()
    return get_trace(ws, response.headers["x-llmline-trace-id"])


def rows(ws: Workspace, count: int) -> list[RequestRow]:
    """The request log's rows, once there are ``count`` (oldest first)."""
    deadline = time.monotonic() + 20
    while True:
        with ws.metadata.read_session() as session:
            found = list(session.scalars(select(RequestRow).order_by(RequestRow.created_at)))
            session.expunge_all()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def metric(gw: Running, name: str, token: str | None = None) -> float:
    """The sum of a metric's samples on /metrics (0 when absent)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with gw.http() as http:
        reply = http.get("/metrics", headers=headers)
    assert reply.status_code == 200, reply.text
    text = reply.text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name)] in " {"
    )


def test_a_request_is_traced_logged_and_recorded(start_gateway, gateway_ws, log_lines) -> None:
    gw = start_gateway(spec("faq", "fake:a"))
    first = chat(gw, "what is a list", temperature=0, max_tokens=5)
    again = chat(gw, "what is a list", temperature=0, max_tokens=5)  # the exact cache answers
    assert first.status_code == again.status_code == 200, first.text
    request_id = first.json()["id"]

    trace = trace_of(gw, gateway_ws, first)
    (root,) = trace.spans
    assert root.name == "chat faq" and root.kind == "server"
    assert [s.name for s in root.children] == STAGES
    assert root.attributes["llmline.request_id"] == request_id
    assert root.attributes["llmline.deployment"] == "faq"
    assert root.attributes["http.response.status_code"] == 200
    (backend,) = trace.find("backend")
    assert backend.kind == "client"
    assert backend.attributes["gen_ai.operation.name"] == "chat"
    assert backend.attributes["gen_ai.request.model"] == "fake:a"
    assert backend.attributes["gen_ai.request.max_tokens"] == 5
    assert backend.attributes["gen_ai.request.temperature"] == 0
    assert backend.attributes["gen_ai.usage.output_tokens"] == 5
    assert backend.attributes["gen_ai.response.finish_reasons"] == ["length"]
    assert trace.find("cache.lookup")[0].attributes["llmline.cache.result"] == "miss"

    cached = trace_of(gw, gateway_ws, again)
    assert cached.find("cache.lookup")[0].attributes["llmline.cache.result"] == "hit"
    assert cached.find("backend") == []

    logged = rows(gateway_ws, 2)
    by_id = {r.request_id: r for r in logged}
    assert by_id[request_id].trace_id == first.headers["x-llmline-trace-id"]
    lines = [line for line in log_lines() if line["request_id"] == request_id]
    assert len(lines) == 1
    line = lines[0]
    assert line["logger"] == REQUEST_LOGGER and line["level"] == "info"
    assert line["trace_id"] == trace.trace_id
    assert (line["endpoint"], line["status"], line["deployment"]) == ("chat", 200, "faq")
    assert (line["model_version"], line["cache"], line["completion_tokens"]) == (
        "fake:a",
        "miss",
        5,
    )
    assert line["tokens_per_s"] > 0
    assert "input_text" not in line and "what is a list" not in json.dumps(line)


def test_a_stream_has_a_generation_span_with_its_first_token(start_gateway, gateway_ws) -> None:
    gw = start_gateway(spec("faq", "fake:a?delay_ms=2"))
    body = {"model": "faq", "stream": True, "messages": [{"role": "user", "content": "one two"}]}
    with gw.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert len(response.read()) > 0
    trace = trace_of(gw, gateway_ws, response)
    (backend,) = trace.find("backend")
    assert backend.attributes["llmline.stream"] is True
    (generation,) = backend.children
    assert generation.name == "generation"
    assert [e["name"] for e in generation.events] == ["first_token"]
    assert 0 <= generation.events[0]["at_ms"] <= generation.duration_ms
    assert generation.attributes["gen_ai.usage.output_tokens"] > 0
    assert [s.name for s in trace.spans[0].children][-2:] == ["guardrails.output", "postprocess"]


def test_a_completions_call_and_a_callers_traceparent(start_gateway, gateway_ws) -> None:
    gw = start_gateway(spec("faq", "fake:a"))
    parent = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{parent}-00f067aa0ba902b7-01"}
    with gw.http() as http:
        response = http.post(
            "/v1/completions", json={"model": "faq", "prompt": "say hi"}, headers=headers
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-llmline-trace-id"] == parent  # part of the caller's trace
    trace = trace_of(gw, gateway_ws, response)
    (root,) = trace.spans
    assert root.name == "text_completion faq"  # GenAI operation names
    assert root.parent_id == "00f067aa0ba902b7"
    assert trace.find("backend")[0].attributes["gen_ai.operation.name"] == "text_completion"


def test_refused_and_embeddings_requests_are_recorded(start_gateway, gateway_ws) -> None:
    keys = KeyStore(gateway_ws.metadata)
    viewer, viewer_info = keys.create("dash", "viewer")
    user, user_info = keys.create("app", "user")
    gw = start_gateway(spec("faq", "fake:a"), auth=True)
    assert chat(gw, "hi").status_code == 401
    assert chat(gw, "hi", token=viewer).status_code == 403
    with gw.http() as http:
        embedded = http.post(
            "/v1/embeddings",
            json={"model": "all-MiniLM-L6-v2", "input": ["a b c", "d"]},
            headers={"Authorization": f"Bearer {user}"},
        )
    assert embedded.status_code == 200, embedded.text

    logged = {r.status: r for r in rows(gateway_ws, 3)}
    assert set(logged) == {401, 403, 200}
    assert logged[401].deployment == "faq" and logged[401].key_id is None
    assert "no API key" in (logged[401].error or "")
    assert logged[403].key_id == viewer_info.key_id
    assert logged[403].error
    embeddings = logged[200]
    assert (embeddings.endpoint, embeddings.key_id) == ("embeddings", user_info.key_id)
    assert embeddings.model_version == "all-MiniLM-L6-v2" and embeddings.prompt_tokens > 0
    assert embeddings.trace_id == embedded.headers["x-llmline-trace-id"]
    spans = trace_of(gw, gateway_ws, embedded)
    assert spans.spans[0].name == "embeddings all-MiniLM-L6-v2"
    assert [s.name for s in spans.spans[0].children] == ["auth", "embeddings"]
    refused = trace_of(gw, gateway_ws, chat(gw, "hi", token="llk_not-a-key"))
    assert refused.find("auth")[0].status == "error"
    assert metric(gw, "llmline_request_errors_total", user) == 3


def test_metrics_count_the_log_the_spans_and_tokens_per_second(start_gateway, gateway_ws) -> None:
    gw = start_gateway(spec("faq", "fake:a"))
    for i in range(3):
        assert chat(gw, f"question {i}", temperature=0.5).status_code == 200
    rows(gateway_ws, 3)
    assert gw.service.observer.tracing.flush()
    assert metric(gw, "llmline_requestlog_stored_total") == 3
    assert metric(gw, "llmline_spans_stored_total") == 3 * 7  # uncacheable: no cache.lookup
    for name in ("requestlog", "spans"):
        assert metric(gw, f"llmline_{name}_dropped_total") == 0
        assert metric(gw, f"llmline_{name}_write_errors_total") == 0
        assert metric(gw, f"llmline_{name}_degraded") == 0
    assert metric(gw, "llmline_tokens_per_second_count") == 3
    assert metric(gw, "llmline_gpu_memory_allocated_bytes") == 0  # no CUDA in this process


def test_everything_off(start_gateway, gateway_ws, log_lines) -> None:
    ws = configure(
        gateway_ws, monitoring={"tracing": False, "json_logs": False, "request_log": False}
    )
    gw = start_gateway(spec("faq", "fake:a"), workspace=ws)
    response = chat(gw, "hello")
    assert response.status_code == 200
    assert "x-llmline-trace-id" not in response.headers
    assert gw.service.observer.tracing is None and gw.service.requestlog is None
    time.sleep(0.5)  # what a request log would have written by now
    assert rows(ws, 0) == [] and log_lines() == []
    assert list_traces(ws) == []
    assert not (ws.state_dir / "traces.db").exists()


@pytest.mark.postgres
def test_serving_goes_on_while_the_metadata_db_is_down(
    start_gateway, gateway_ws, postgres_server, postgres_url
) -> None:
    """The metadata store refuses connections mid-run: requests are still
    answered, the failed writes and pending records show on /metrics, and
    once the store is back every record reaches it."""
    import psycopg

    ws = configure(gateway_ws, metadata_url=postgres_url)
    gw = start_gateway(spec("faq", "fake:a"), workspace=ws)
    assert chat(gw, "before").status_code == 200
    assert len(rows(ws, 1)) == 1
    database = postgres_url.rsplit("/", 1)[1]
    admin = psycopg.connect(postgres_server.url_for("postgres"), autocommit=True)
    try:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            [database],
        )
        replies = [chat(gw, f"during {i}") for i in range(5)]
        assert [r.status_code for r in replies] == [200] * 5
        deadline = time.monotonic() + 20
        while metric(gw, "llmline_requestlog_write_errors_total") == 0:
            assert time.monotonic() < deadline, "no write error was counted"
            time.sleep(0.1)
        assert metric(gw, "llmline_requestlog_pending") == 5
        assert metric(gw, "llmline_requestlog_degraded") == 1
    finally:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        admin.close()
    logged = rows(ws, 6)
    assert len(logged) == 6  # nothing was lost
    assert metric(gw, "llmline_requestlog_pending") == 0
    assert metric(gw, "llmline_requestlog_degraded") == 0


def test_a_journal_that_cannot_be_written_does_not_stop_serving(start_gateway, gateway_ws) -> None:
    """The request log's local journal cannot be created (a file where its
    folder should be: the same for root as for anyone, like a full disk):
    requests are answered, the records still reach the store, the failures
    are counted, and journaling resumes once the folder can be made."""
    gw = start_gateway(spec("faq", "fake:a"))
    journal = gateway_ws.state_dir / "journal"
    if journal.exists():
        journal.rmdir()
    journal.write_text("in the way")
    assert [chat(gw, f"question {i}").status_code for i in range(3)] == [200] * 3
    assert len(rows(gateway_ws, 3)) == 3
    assert metric(gw, "llmline_requestlog_journal_errors_total") == 3
    journal.unlink()
    assert chat(gw, "after").status_code == 200
    assert len(rows(gateway_ws, 4)) == 4
    assert metric(gw, "llmline_requestlog_journal_errors_total") == 3

"""``llmline traces list/show``: over a trace store holding real OpenTelemetry
spans (written by the same span processor the gateway uses)."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import trace as otel
from opentelemetry.trace import SpanKind

from llmline.monitoring.spanstore import SpanStore
from llmline.monitoring.tracing import Tracing, trace_store_path
from llmline.workspace import init_workspace
from tests.cli.conftest import CLI


@pytest.fixture
def traced(tmp_path: Path) -> list[str]:
    """Two request traces in ``tmp_path/ws``: faq (3 spans, oldest), docs (2)."""
    ws = init_workspace(tmp_path / "ws", load_sample_data=False)
    tracing = Tracing(store=SpanStore(trace_store_path(ws)).start(), endpoint=None)
    ids = []
    for deployment, stages in (("faq", ["auth", "backend"]), ("docs", ["auth"])):
        root = tracing.tracer.start_span(f"chat {deployment}", kind=SpanKind.SERVER)
        root.set_attributes({"llmline.deployment": deployment, "http.response.status_code": 200})
        for name in stages:
            child = tracing.tracer.start_span(name, otel.set_span_in_context(root))
            if name == "backend":
                child.set_attribute("gen_ai.request.model", "fake:a")
                child.add_event("first_token")
            child.end()
        root.end()
        ids.append(f"{root.get_span_context().trace_id:032x}")
    tracing.shutdown()
    return ids


def test_list_newest_first_and_filtered(cli: CLI, traced: list[str]) -> None:
    listed = cli("traces", "list", "--json")
    assert listed.code == 0, listed.err
    rows = listed.json()
    assert [r["trace_id"] for r in rows] == traced[::-1]
    assert rows[1] | {"started_at": None, "duration_ms": None} == {
        "trace_id": traced[0],
        "name": "chat faq",
        "started_at": None,
        "duration_ms": None,
        "status": "unset",
        "deployment": "faq",
        "request_id": None,
        "http_status": 200,
        "span_count": 3,
    }
    only = cli("traces", "list", "--deployment", "faq", "--limit", "5", "--json").json()
    assert [r["trace_id"] for r in only] == [traced[0]]
    assert cli("traces", "list", "-n", "1", "--json").json()[0]["trace_id"] == traced[1]
    assert cli("traces", "list", "--since", "1h", "--json").json() != []
    table = cli("traces", "list")
    assert table.code == 0 and traced[0] in table.out and "chat faq" in table.out


def test_show_a_tree_of_spans(cli: CLI, traced: list[str]) -> None:
    shown = cli("traces", "show", traced[0], "--json")
    assert shown.code == 0, shown.err
    trace = shown.json()
    assert (trace["trace_id"], trace["span_count"]) == (traced[0], 3)
    (root,) = trace["spans"]
    assert [c["name"] for c in root["children"]] == ["auth", "backend"]
    backend = root["children"][1]
    assert backend["attributes"] == {"gen_ai.request.model": "fake:a"}
    assert [e["name"] for e in backend["events"]] == ["first_token"]
    text = cli("traces", "show", traced[0][:10])  # a unique prefix will do
    assert text.code == 0
    assert "chat faq" in text.out and "└── backend" in text.out
    assert "gen_ai.request.model = fake:a" in text.out and "first_token at" in text.out


def test_unknown_and_bad_ids_fail_in_one_line(cli: CLI, traced: list[str]) -> None:
    unknown = cli("traces", "show", "0" * 32)
    assert unknown.code == 1
    assert unknown.err.startswith("error: no trace 000") and unknown.err.count("\n") == 1
    bad = cli("traces", "show", "not-hex")
    assert bad.code == 1 and "not a trace id" in bad.err
    empty = cli("traces", "list", "--since", "soon")
    assert empty.code == 1 and "invalid duration" in empty.err


def test_no_traces_yet(cli: CLI, tmp_path: Path) -> None:
    init_workspace(tmp_path / "ws", load_sample_data=False)
    assert cli("traces", "list", "--json").json() == []
    assert "no traces yet" in cli("traces", "list").out

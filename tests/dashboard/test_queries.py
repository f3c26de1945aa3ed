"""The dashboard's Python API over the stores: traffic split, metrics of
requests sent through a real gateway, lineage of a response back to the
warehouse query, drift report, runs, evaluations, and the SVG drawings."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from llmline.dashboard import charts, lineage, queries
from llmline.evaluation.runner import EvalResult
from llmline.evaluation.store import EvalStore
from llmline.gateway.deployments.spec import DeploymentSpec, DeploymentState
from llmline.pipelines.store import RunStore
from llmline.workspace import Workspace


def _split(spec: DeploymentSpec, phase: str = "running", live: int = 0) -> dict[str, Any]:
    return queries.traffic_split(spec, phase, live)


@pytest.mark.parametrize(
    ("options", "phase", "live", "expected"),
    [
        (
            {"strategy": "random"},
            "running",
            0,
            {"a": ("candidate", 50.0), "b": ("candidate", 50.0)},
        ),
        (
            {"strategy": "weighted", "weights": [3, 1]},
            "running",
            0,
            {"a": ("candidate", 75.0), "b": ("candidate", 25.0)},
        ),
        (
            {"strategy": "canary", "canary": {"percent": 10}},
            "running",
            0,
            {"a": ("live", 90.0), "b": ("challenger", 10.0)},
        ),
        ({"strategy": "canary"}, "promoted", 1, {"a": ("standby", 0.0), "b": ("live", 100.0)}),
        ({"strategy": "canary"}, "rolled-back", 0, {"a": ("live", 100.0), "b": ("standby", 0.0)}),
        ({"strategy": "shadow"}, "running", 0, {"a": ("live", 100.0), "b": ("shadow copy", 100.0)}),
        ({"strategy": "blue-green"}, "running", 1, {"a": ("standby", 0.0), "b": ("live", 100.0)}),
        (
            {"strategy": "least-busy"},
            "running",
            0,
            {"a": ("candidate", None), "b": ("candidate", None)},
        ),
    ],
)
def test_traffic_split_follows_strategy_and_phase(
    options: dict[str, Any], phase: str, live: int, expected: dict[str, Any]
) -> None:
    spec = DeploymentSpec(name="d", models=["a", "b"], **options)
    DeploymentState(live=live, phase=phase)  # a state the store would accept
    assert _split(spec, phase, live) == expected


def test_percentile_is_nearest_rank() -> None:
    assert queries.percentile([], 0.5) is None
    assert queries.percentile([5.0], 0.95) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert queries.percentile(values, 0.5) == 50.0
    assert queries.percentile(values, 0.95) == 95.0


def test_metrics_of_requests_sent_through_the_gateway(
    secured: tuple[Any, dict[str, str]], gateway_ws: Workspace
) -> None:
    gw, _ = secured
    kpis = queries.kpis(gateway_ws, "1h")
    assert (kpis.requests, kpis.errors) == (5, 2)
    assert kpis.error_rate == pytest.approx(0.4)
    assert kpis.p50_ms is not None and kpis.p95_ms is not None and kpis.p95_ms >= kpis.p50_ms
    assert queries.kpis(gateway_ws, "1h", deployment="chat").errors == 0
    for window, count in (("1h", 12), ("6h", 24), ("24h", 24), ("7d", 7)):
        buckets = queries.timeseries(gateway_ws, window)
        assert len(buckets) == count
        assert sum(b.requests for b in buckets) == 5
        assert buckets[-1].requests == 5  # all just now: the newest bucket
        assert all(b.p50_ms is None for b in buckets[:-1])
    rows = queries.recent_requests(gateway_ws)
    assert [r.created_at for r in rows] == sorted((r.created_at for r in rows), reverse=True)
    assert {r.status for r in queries.recent_requests(gateway_ws, status="error")} == {503}
    assert len(queries.recent_requests(gateway_ws, status=503)) == 2
    assert len(queries.recent_requests(gateway_ws, deployment="chat", status="ok")) == 3
    assert len(queries.recent_requests(gateway_ws, limit=2)) == 2
    older = queries.recent_requests(gateway_ws, before=rows[1].created_at)
    assert [r.request_id for r in older] == [r.request_id for r in rows[2:]]

    failed = queries.request_detail(
        gateway_ws, queries.recent_requests(gateway_ws, status=503)[0].request_id
    )
    assert failed is not None and failed.safety_output is None and failed.error
    ok = queries.request_detail(gateway_ws, rows[-1].request_id)
    assert ok is not None and ok.output_text and ok.safety_output is not None
    assert queries.request_detail(gateway_ws, "nope") is None

    views = {d.name: d for d in queries.deployments(gw.service.engine)}
    assert views["chat"].healthy
    assert [(t.target, t.role, t.share_percent) for t in views["chat"].targets] == [
        ("fake:chat", "candidate", 100.0)
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, str]:
    from llmline.data.builder import build_dataset
    from llmline.testing.workspace import synthetic_workspace

    ws = synthetic_workspace(tmp_path_factory.mktemp("lineage") / "ws", questions=30)
    return ws, build_dataset(ws, "python-faq").ref


def _log(ws: Workspace, **fields: Any) -> str:
    """A record through the request log, as the gateway writes one."""
    from llmline.monitoring.requestlog import RequestLog, RequestRecord

    record = RequestRecord(
        request_id=f"chatcmpl-{uuid.uuid4().hex}", endpoint="chat", status=200, **fields
    )
    log = RequestLog(ws.metadata, ws.state_dir / "test-journal")
    log.record(record)
    asyncio.run(log.close())
    return record.request_id


def test_lineage_of_a_response_reaches_the_warehouse_query(built: tuple[Workspace, str]) -> None:
    from llmline.models import ModelRegistry
    from llmline.storage.lineage import ArtifactRef, add_edge

    ws, dataset = built
    RunStore(ws.metadata).start("run-1", "tune", {"dataset": dataset}, "/tmp/run-1")
    with ws.metadata.session() as session:
        add_edge(session, ArtifactRef("dataset", dataset), ArtifactRef("run", "run-1"), "input_of")
    model = ModelRegistry(ws.metadata).register(
        "faq",
        kind="base",
        uri=str(ws.root),
        format="hf-safetensors",
        source="run-1",
        metadata={"run": "run-1", "dataset": dataset},
    )
    request_id = _log(ws, deployment="faq", model_version=model.ref)
    detail = queries.request_detail(ws, request_id)
    assert detail is not None
    view = lineage.response_lineage(ws, request_id, detail.summary.model_version)
    kinds = {n.kind for n in view.nodes.values()}
    assert kinds == {"response", "model", "run", "dataset", "query", "table", "prompt"}
    query = view.nodes[f"query:{dataset}"]
    assert query.detail is not None and "posts_questions" in query.detail
    edges = {(s, d) for s, d, _ in view.edges}
    assert (f"model:{model.ref}", f"response:{request_id}") in edges
    assert ("run:run-1", f"model:{model.ref}") in edges
    assert (f"dataset:{dataset}", "run:run-1") in edges
    assert (f"query:{dataset}", f"dataset:{dataset}") in edges
    tables = [s for s, d in edges if s.startswith("table:")]
    assert len(tables) == 2 and all((t, f"query:{dataset}") in edges for t in tables)
    svg = str(lineage.render_svg(view))
    assert svg.startswith("<svg") and svg.count('<g class="node') == len(view.nodes)
    # Columns: sources left, the response right.
    xs = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'data-id="([^"]+)"><title>[^<]*</title><rect x="(\d+)"', svg)
    }
    assert xs[tables[0]] < xs[f"query:{dataset}"] < xs[f"dataset:{dataset}"] < xs["run:run-1"]
    assert xs["run:run-1"] < xs[f"model:{model.ref}"] < xs[f"response:{request_id}"]

    unknown = lineage.response_lineage(ws, "r2", "fake:a")  # not a registry model
    assert set(unknown.nodes) == {"response:r2", "model:fake:a"}


def test_lineage_drawing_escapes_references() -> None:
    view = lineage.LineageView()
    view.add(lineage.LineageNode("response:<x>", "response", "<script>x</script>"))
    svg = str(lineage.render_svg(view))
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_drift_report_absent_present_and_unreadable(tmp_path: Path) -> None:
    from llmline.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws", load_sample_data=False)
    assert queries.drift_report(ws) is None
    folder = ws.state_dir / "monitoring" / "drift"
    folder.mkdir(parents=True)
    report = {
        "created_at": "2026-12-04T10:00:00+00:00",
        "window": "24h",
        "deployment": "faq",
        "status": "drift",
        "n_current": 10,
        "n_reference": 20,
        "plot": None,
        "tests": [
            {
                "name": "mmd",
                "kind": "mmd",
                "statistic": 0.3,
                "p_value": 0.001,
                "threshold": 0.05,
                "status": "drift",
                "detail": "",
            }
        ],
    }
    (folder / "latest.json").write_text(json.dumps(report))
    found = queries.drift_report(ws)
    assert found is not None and found.status == "drift" and found.tests[0]["p_value"] == 0.001
    (folder / "latest.json").write_text("{not json")
    broken = queries.drift_report(ws)
    assert broken is not None and broken.status == "unreadable"


def test_runs_and_evaluations_newest_first_and_compared(built: tuple[Workspace, str]) -> None:
    ws, dataset = built
    runs = RunStore(ws.metadata)
    for run_id in ("old", "new"):
        runs.start(run_id, "tune", {}, f"/tmp/{run_id}")
    runs.add_step(
        "new",
        "train",
        status="succeeded",
        cached=True,
        duration_s=1.5,
        outputs={},
        started_at=queries._now(),
    )
    runs.finish("new", "succeeded", outputs={"model": "m@2"})
    listed = queries.pipeline_runs(ws)
    assert [r.run_id for r in listed][:2] == ["new", "old"]
    assert listed[0].cache_hits == 1 and listed[0].duration_s is not None
    assert len(queries.pipeline_runs(ws, limit=1)) == 1

    store = EvalStore(ws.metadata)
    for model, score, split in (
        ("base@1", 0.1, "eval"),
        ("m@1", 0.2, "eval"),
        ("m@2", 0.3, "eval"),
        ("m@2", 0.5, "train"),
    ):
        store.save(
            EvalResult(
                model_ref=model, dataset_ref=dataset, split=split, metrics={"exact_match": score}
            )
        )
    results = queries.evaluations(ws)
    assert [r.model_ref for r in results][:2] == ["m@2", "m@2"]
    assert all(r.samples == [] for r in results)
    [comparison] = queries.eval_comparisons(results)  # the train split has one model only
    assert (comparison.a.model_ref, comparison.b.model_ref) == ("m@1", "m@2")
    assert comparison.same_data and comparison.metrics[0].better == "b"


def test_charts_break_lines_at_gaps_and_escape_titles() -> None:
    assert charts.nice_ticks(0) == [0.0, 1.0]
    assert charts.nice_ticks(87) == [0, 25, 50, 75, 100]
    svg = str(
        charts.line_chart(
            "<b>", ["a", "b", "c", "d", "e"], [charts.Series("s", [1, 2, None, 3, 4])]
        )
    )
    assert svg.count("<polyline") == 2 and "<b>" not in svg and "&lt;b&gt;" in svg
    empty = str(charts.line_chart("t", ["a"], [charts.Series("s", [None])]))
    assert "<polyline" not in empty
    bars = str(charts.bar_chart("t", ["x", "y"], [1.0, 3.0]))
    assert bars.count("<rect") == 2

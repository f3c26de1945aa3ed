"""RAG deployments from the CLI and ``llmline.yaml``, and ``llmline eval rag``
against a running gateway's rag deployment."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from llmline.cli.app import main
from llmline.evaluation.rag import LabeledQuestion, evaluate_rag, gateway_samples
from llmline.gateway.deployments import DeploymentStore
from llmline.gateway.deployments.spec import DeploymentSpec, RagPolicy
from llmline.rag.grounding import map_citations, select_context
from llmline.rag.kb import Hit
from llmline.workspace import Workspace

TIDES = "Tides rise and fall twice a day because the moon pulls on the oceans."


@pytest.fixture
def notes_kb(gateway_ws: Workspace, tmp_path: Path) -> str:
    from llmline.rag import ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tides.md").write_text(f"# Tides\n\n{TIDES}\n", "utf-8")
    (docs / "bread.md").write_text("# Bread\n\nKnead the dough for ten minutes.\n", "utf-8")
    ingest("notes", [docs], workspace=gateway_ws)
    return "notes"


def run_cli(capsys: pytest.CaptureFixture[str], ws: Workspace, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--workspace", str(ws.root), *args])
    captured = capsys.readouterr()
    return code, captured.out if code == 0 else captured.err


def test_deploy_create_kind_rag(
    gateway_ws: Workspace, notes_kb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(
        capsys, gateway_ws, "deploy", "create", "notes-qa", "--kind", "rag", "--kb", "notes",
        "--model", "fake:bot", "--top-k", "3", "--grounded-only", "--min-score", "0.3", "--json",
    )  # fmt: skip
    assert code == 0, out
    spec = DeploymentStore(gateway_ws.metadata).get("notes-qa").spec
    assert spec.kind == "rag" and spec.rag is not None
    assert (spec.rag.knowledge_base, spec.rag.top_k, spec.rag.grounded_only) == ("notes", 3, True)
    assert spec.rag.min_score == 0.3
    code, err = run_cli(
        capsys, gateway_ws, "deploy", "create", "x", "--kind", "rag", "--kb", "nope",
        "--model", "fake:bot",
    )  # fmt: skip
    assert code == 1 and "no knowledge base named 'nope'" in err and "Traceback" not in err
    code, err = run_cli(
        capsys, gateway_ws, "deploy", "create", "y", "--kind", "rag", "--model", "fake:b"
    )
    assert code == 1 and "--kb" in err


def test_declared_rag_deployment_in_llmline_yaml(gateway_ws: Workspace, notes_kb: str) -> None:
    from llmline.gateway.deployments.api import sync_declared_deployments

    config = gateway_ws.root / "llmline.yaml"
    config.write_text(
        config.read_text("utf-8")
        + "\ndeployments:\n  docs:\n    kind: rag\n    models: ['fake:bot']\n"
        "    rag: {knowledge_base: notes, top_k: 2, grounded_only: true}\n",
        "utf-8",
    )
    ws = Workspace(gateway_ws.root)
    (info,) = sync_declared_deployments(ws)
    assert info.spec.kind == "rag" and info.source == "config"
    assert info.spec.rag == RagPolicy(knowledge_base="notes", top_k=2, grounded_only=True)


def test_eval_rag_through_a_gateway(start_gateway: Callable[..., Any], notes_kb: str) -> None:
    from llmline.rag import open_knowledge_base

    target = f"fake:bot?text={quote_plus(TIDES + ' [1]')}"
    policy = RagPolicy(knowledge_base="notes", top_k=2)
    gateway = start_gateway(DeploymentSpec(name="qa", kind="rag", models=[target], rag=policy))
    questions = [LabeledQuestion("Why do tides rise and fall?", ("Tides",), TIDES)]
    with open_knowledge_base("notes", workspace=gateway.app.state.service.engine.workspace) as kb:
        samples = gateway_samples(kb, questions, gateway.url + "/v1", "qa", k=2)
        result = evaluate_rag(samples, knowledge_base=kb.ref, target="qa", k=2)
    (sample,) = samples
    assert sample.contexts[0].title == "Tides"  # what the gateway reported
    assert sample.citations and sample.citations[0][:2] == (0, len(TIDES) + 4)
    (row,) = result.rows
    assert row["citation_accuracy"] == 1.0 and row["faithfulness"] == 1.0
    assert row["mrr"] == 1.0
    assert json.dumps(result.to_dict())  # the --json output is plain JSON


def chunk(text: str, title: str = "T") -> Hit:
    return Hit(title, text, 1.0, f"file:///{title}.md", title, 0, len(text), {}, {"dense": 0.5})


def test_select_context_budget_and_floor() -> None:
    hits = [chunk("a" * 400, "A"), chunk("b" * 400, "B"), chunk("c" * 40, "C")]
    assert [h.title for h in select_context(hits, 200)] == ["A", "B"]  # 100 tokens each
    assert [h.title for h in select_context(hits, 150)] == ["A"]  # C would fit but ranks lower
    assert select_context(hits, 200, min_score=0.6) == []
    (cut,) = select_context(hits, 50)  # a first chunk over the budget is cut to fit
    assert len(cut.text) <= 200 and cut.end == cut.start + len(cut.text)


def test_map_citations_markers_then_overlap() -> None:
    sources = ["The moon pulls on the oceans and makes tides.", "Knead dough ten minutes."]
    answer = "Tides come from the moon [1]. Dough needs kneading [2][7]."
    spans = map_citations(answer, sources)
    assert [(s.source, answer[s.start : s.end]) for s in spans] == [
        (1, "Tides come from the moon [1]."),
        (2, "Dough needs kneading [2][7]."),
    ]
    plain = "The moon pulls the oceans into tides. Bananas are yellow."
    (only,) = map_citations(plain, sources)
    assert (only.source, only.how, plain[only.start : only.end]) == (
        1,
        "overlap",
        "The moon pulls the oceans into tides.",
    )

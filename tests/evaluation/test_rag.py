"""RAG evaluation: retrieval metrics, the support proxy, ``llmline eval rag``
and ``llmline eval compare-rag`` over a tiny real knowledge base, with
``fake:`` models whose answers are set by the test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from llmline.cli.app import main
from llmline.evaluation.rag import (
    SupportScorer,
    is_relevant,
    recall_at_k,
    reciprocal_rank,
)
from llmline.rag.kb import Hit
from llmline.workspace import Workspace, init_workspace

TIDES = "Tides rise and fall twice a day because the moon pulls on the oceans."
BREAD = "Knead the dough for ten minutes, then let it rise in a warm place until it doubles."


def hit(title: str, source: str = "") -> Hit:
    return Hit("c", "text", 1.0, source or f"file:///docs/{title.lower()}.md", title, 0, 4)


def test_recall_and_mrr_read_the_labelled_documents() -> None:
    ranked = [hit("Bread"), hit("Tides"), hit("Moon", "pydoc:moon")]
    assert reciprocal_rank(ranked, ["Tides"]) == 0.5
    assert reciprocal_rank(ranked, ["moon"]) == pytest.approx(1 / 3)  # a pydoc topic key
    assert reciprocal_rank(ranked, ["Salt"]) == 0.0
    assert recall_at_k(ranked, ["Tides", "moon"], k=2) == 0.5
    assert recall_at_k(ranked, ["Tides", "moon"], k=3) == 1.0
    assert is_relevant(hit("Bread"), ["bread.md"])  # a file name labels its chunks too


def test_support_proxy_separates_paraphrase_from_unrelated() -> None:
    scorer = SupportScorer(threshold=0.6)
    claims = ["The moon's pull on the oceans makes tides rise and fall twice daily.", BREAD]
    scores = scorer.support(claims, [TIDES + " Spring tides come at full moon."])
    assert scores[0] >= 0.6 > scores[1]
    assert scorer.supported_share(claims, [TIDES]) == 0.5
    assert scorer.supported_share([], [TIDES]) is None


@pytest.fixture
def kb_workspace(tmp_path: Path) -> Workspace:
    from llmline.rag import ingest

    ws = init_workspace(tmp_path / "ws", load_sample_data=False)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tides.md").write_text(f"# Tides\n\n{TIDES}\n", "utf-8")
    (docs / "bread.md").write_text(f"# Baking bread\n\n{BREAD}\n", "utf-8")
    ingest("notes", [docs], workspace=ws)
    return ws


@pytest.fixture
def questions(tmp_path: Path) -> Path:
    rows = [
        {"question": "Why do tides rise and fall?", "topics": ["Tides"], "answer": TIDES},
        {"question": "How long should dough be kneaded?", "topics": ["bread.md"], "answer": BREAD},
    ]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def run_cli(capsys: pytest.CaptureFixture[str], ws: Workspace, *args: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = main(["--workspace", str(ws.root), *args])
    out = capsys.readouterr()
    return code, json.loads(out.out) if code == 0 else out.err


def fake(name: str, text: str) -> str:
    return f"fake:{name}?text={quote_plus(text)}"


def test_eval_rag_scores_a_grounded_cited_answer(
    kb_workspace: Workspace, questions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = fake("bot", TIDES + " [1]")
    code, report = run_cli(
        capsys, kb_workspace, "eval", "rag", "notes", target, "--dataset", str(questions),
        "--k", "2", "--json",
    )  # fmt: skip
    assert code == 0, report
    tides, bread = report["rows"]
    assert tides["recall_at_k"] == 1.0 and tides["mrr"] == 1.0
    assert bread["recall_at_k"] == 1.0 and bread["mrr"] == 1.0
    assert tides["faithfulness"] == 1.0  # the answer repeats the retrieved chunk
    assert tides["citation_accuracy"] == 1.0  # [1] is the tides chunk
    assert bread["citation_accuracy"] == 0.0  # [1] is the bread chunk: wrong citation
    assert bread["faithfulness"] == 1.0  # both chunks were in its context
    assert tides["context_precision"] == 0.5  # two chunks retrieved, one labelled
    assert report["metrics"]["recall_at_k"] == 1.0
    assert 0.0 < report["metrics"]["answer_relevance"] <= 1.0


def test_eval_rag_bad_dataset_is_a_one_line_error(
    kb_workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no topics"}\n', "utf-8")
    code, err = run_cli(
        capsys, kb_workspace, "eval", "rag", "notes", "fake:x", "--dataset", str(bad)
    )
    assert code == 1
    assert "bad.jsonl:1" in err and "Traceback" not in err


def test_compare_rag_reports_every_variant(
    kb_workspace: Workspace, questions: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The "tuned" model answers like the reference; the base one off-topic.
    base = fake("base", "Bananas are yellow fruit that grow in bunches.")
    tuned = fake("tuned", TIDES)
    out = tmp_path / "report.md"
    code, report = run_cli(
        capsys, kb_workspace, "eval", "compare-rag", "notes", "--base", base, "--tuned", tuned,
        "--dataset", str(questions), "--output", str(out), "--json",
    )  # fmt: skip
    assert code == 0, report
    metrics = {v["label"]: v["metrics"] for v in report["variants"]}
    assert list(metrics) == ["base", "tuned", "base+RAG", "tuned+RAG"]
    assert metrics["tuned"]["rougeL"] > metrics["base"]["rougeL"]
    assert metrics["tuned"]["faithfulness"] > metrics["base"]["faithfulness"]
    assert metrics["base"]["faithfulness"] == 0.0
    markdown = out.read_text("utf-8")
    assert "| tuned+RAG |" in markdown and "ROUGE-L" in markdown
    assert json.loads(out.with_suffix(".json").read_text("utf-8"))["questions"] == 2


def test_eval_rag_retrieval_only(
    kb_workspace: Workspace, questions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = run_cli(
        capsys, kb_workspace, "eval", "rag", "notes", "--retrieval-only", "--dataset",
        str(questions), "--k", "1", "--json",
    )  # fmt: skip
    assert code == 0, report
    assert report["target"] == "retrieval"
    assert report["metrics"]["recall_at_k"] == 1.0 and report["metrics"]["mrr"] == 1.0
    assert report["metrics"]["context_precision"] == 1.0  # k=1: only the labelled chunk
    assert "faithfulness" not in report["metrics"]  # nothing was answered
    code, err = run_cli(capsys, kb_workspace, "eval", "rag", "notes", "--dataset", str(questions))
    assert code == 1 and "--retrieval-only" in err

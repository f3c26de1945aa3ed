"""Which feedback becomes which rows (``llmline.data.feedback_dataset``), on
a real store and artifact folder: ratings, corrections, review status,
templates, de-duplication, the split by question, and lineage at scale."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from llmline.data.feedback_dataset import build_from_feedback, select_feedback
from llmline.errors import EmptyResultError
from llmline.gateway.accounting import build_request_log
from llmline.monitoring.feedback import review_feedback, submit_feedback
from llmline.monitoring.requestlog import RequestRecord
from llmline.prompts import PromptRegistry
from llmline.storage.lineage import ArtifactRef, walk
from llmline.workspace import Workspace, init_workspace

TEMPLATE = "Q: {question}\nA:"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = init_workspace(tmp_path / "ws", load_sample_data=False)
    PromptRegistry(workspace.metadata).create("qa", TEMPLATE)
    return workspace


def _respond(
    ws: Workspace, answers: dict[str, tuple[str, str]], prompt: str | None = "qa@1"
) -> None:
    """Log responses: request id → (question, answer)."""
    requestlog = build_request_log(ws)
    for request_id, (question, answer) in answers.items():
        requestlog.record(
            RequestRecord(
                request_id=request_id,
                endpoint="chat",
                status=200,
                deployment="faq",
                prompt_version=prompt,
                input_text=question,
                output_text=answer,
            )
        )
    asyncio.run(requestlog.close())


def _rows(uri: str) -> list[dict[str, str]]:
    folder = Path(uri)
    return [
        json.loads(line)
        for split in ("train", "eval")
        for line in (folder / f"{split}.jsonl").read_text("utf-8").splitlines()
    ]


def test_ratings_corrections_and_review_decide_the_rows(ws: Workspace) -> None:
    _respond(
        ws,
        {
            "r-good": ("How do I sort a list?", "Call sorted(xs) or xs.sort()."),
            "r-mixed": ("What is a dict?", "A mapping from keys to values."),
            "r-wrong": ("What does len do?", "It deletes the object entirely."),
            "r-bad": ("What is pip?", "A kind of fruit that grows on trees."),
        },
    )
    submit_feedback(ws, "r-good", rating=5)
    submit_feedback(ws, "r-good", rating="up", user="someone else")
    submit_feedback(ws, "r-mixed", rating="up")
    submit_feedback(ws, "r-mixed", rating="down", user="u2")  # mean 3 < 4: not used
    wrong, _ = submit_feedback(ws, "r-wrong", rating=5, correction="It returns the length.")
    submit_feedback(ws, "r-wrong", rating=5, user="u3")  # corrected: its ratings do not count
    bad, _ = submit_feedback(ws, "r-bad", correction="The package installer for Python.")

    selection = select_feedback(ws)
    assert selection.counts() == {"corrections": 0, "rated_answers": 1}  # nothing accepted yet
    review_feedback(ws, wrong.feedback_id, "accepted")
    review_feedback(ws, bad.feedback_id, "rejected")
    result = build_from_feedback(ws)
    rows = {r["input_text"]: r["output_text"] for r in _rows(result.uri)}
    assert rows == {
        "Q: How do I sort a list?\nA:": "Call sorted(xs) or xs.sort().",
        "Q: What does len do?\nA:": "It returns the length.",
    }
    feedback = result.manifest["feedback"]
    assert feedback["rows_from_feedback"] == {"corrections": 1, "rated_answers": 1}
    assert feedback["feedback_used"] == 3  # both ratings of r-good, the accepted correction
    assert result.manifest["template"]["resolved"] == "qa@1"
    assert result.manifest["templates"] == {"qa@1": 2}
    # With ratings needing review, only the accepted correction is left.
    strict = build_from_feedback(ws, "strict", accepted_only=True)
    assert list({r["output_text"] for r in _rows(strict.uri)}) == ["It returns the length."]


def test_duplicates_split_by_question_and_skips(ws: Workspace) -> None:
    same = (
        "Use a context manager: with open(path) as f: data = f.read() closes the file "
        "for you even when an exception is raised, and read() returns the whole text "
        "while iterating over f yields one line at a time"
    )
    answers = {f"r{i}": ("How do I read a file?", same) for i in range(3)}
    answers["r-near"] = ("How do I read a file??", same)
    answers["r-other"] = ("How do I copy a file?", "Use shutil.copy(src, dst) from the stdlib.")
    answers["r-two-vars"] = ("Where is the config?", "It lives in the home folder, usually.")
    _respond(ws, {k: v for k, v in answers.items() if k != "r-two-vars"})
    PromptRegistry(ws.metadata).create("two", "Topic {topic}: {question}")
    _respond(ws, {"r-two-vars": answers["r-two-vars"]}, prompt="two@1")
    for request_id in answers:
        submit_feedback(ws, request_id, rating=5)
    result = build_from_feedback(ws)
    rows = _rows(result.uri)
    # Three identical rows and a near copy of them: one row.
    assert sorted(r["output_text"] for r in rows) == sorted(
        [same, "Use shutil.copy(src, dst) from the stdlib."]
    )
    assert result.report.exact_duplicates == 2 and result.report.near_duplicates == 1
    assert result.manifest["feedback"]["skipped"] == {"template_needs_variables": 1}
    with ws.metadata.read_session() as session:
        graph = walk(session, ArtifactRef("dataset", result.ref))
    requests = {e.src.ref for e in graph.upstream if e.src.kind == "request"}
    # The near copy and the identical three: whichever sorts first stays, and
    # only the feedback behind rows in the files is linked.
    kept = next(r["input_text"] for r in rows if r["output_text"] == same)
    behind = {"r0", "r1", "r2"} if kept == "Q: How do I read a file?\nA:" else {"r-near"}
    assert requests == behind | {"r-other"}


def test_the_split_follows_the_question(ws: Workspace) -> None:
    """The same question, differently worded answers: never in two splits."""
    questions = [f"How do I do thing number {i} in Python?" for i in range(40)]
    answers = {}
    for i, question in enumerate(questions):
        answers[f"a{i}"] = (question, f"First answer about thing {i}: call do_{i}() now.")
        answers[f"b{i}"] = (question, f"Another reply: the function thing_{i}() handles it well.")
    _respond(ws, answers)
    for request_id in answers:
        submit_feedback(ws, request_id, rating=4)
    result = build_from_feedback(ws)
    folder = Path(result.uri)
    splits: dict[str, set[str]] = {}
    for split in ("train", "eval"):
        for line in (folder / f"{split}.jsonl").read_text("utf-8").splitlines():
            splits.setdefault(json.loads(line)["input_text"], set()).add(split)
    assert len(splits) == 40 and all(len(s) == 1 for s in splits.values())
    assert {s for names in splits.values() for s in names} == {"train", "eval"}
    assert sum(result.report.splits.values()) == 80


@pytest.mark.slow
def test_lineage_of_a_large_feedback_dataset_is_walkable(ws: Workspace) -> None:
    """1100 responses: more refs than one SQLite expression may hold."""
    answers = {
        f"r{i}": (f"Question number {i} about Python?", f"Answer {i}: see the docs for item {i}.")
        for i in range(1100)
    }
    _respond(ws, answers)
    for request_id in answers:
        submit_feedback(ws, request_id, rating=5)
    result = build_from_feedback(ws, "big")
    with ws.metadata.read_session() as session:
        graph = walk(session, ArtifactRef("dataset", result.ref))
    assert len({e.src.ref for e in graph.upstream if e.src.kind == "request"}) == 1100
    assert len({e.src.ref for e in graph.upstream if e.src.kind == "feedback"}) == 1100


def test_nothing_usable_and_unstored_responses(ws: Workspace) -> None:
    requestlog = build_request_log(ws)  # journaled, not stored: feedback is accepted...
    requestlog.record(
        RequestRecord(request_id="r-pending", endpoint="chat", status=200, deployment="faq")
    )
    submit_feedback(ws, "r-pending", rating=5)
    # ...but a dataset needs the stored question and answer.
    with pytest.raises(EmptyResultError, match="1 response not stored") as caught:
        build_from_feedback(ws)
    assert "no usable feedback" in str(caught.value)
    assert "\n" not in str(caught.value)

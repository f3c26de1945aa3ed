"""The feedback API on a real SQLite store and a real request-log journal:
validation, idempotence (also under concurrent submissions), responses
still in the journal, review, export."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmline.errors import NotFoundError
from llmline.gateway.accounting import build_request_log
from llmline.monitoring.feedback import (
    MAX_CORRECTION_CHARS,
    FeedbackError,
    export_feedback,
    find_request,
    get_feedback,
    list_feedback,
    parse_since,
    review_feedback,
    submit_feedback,
)
from llmline.monitoring.requestlog import RequestRecord
from llmline.workspace import Workspace, init_workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws", load_sample_data=False)


def _log(ws: Workspace, *ids: str, store: bool = True) -> None:
    """Responses as the gateway logs them: journaled, then (optionally) stored."""
    requestlog = build_request_log(ws)
    for request_id in ids:
        requestlog.record(
            RequestRecord(
                request_id=request_id,
                endpoint="chat",
                status=200,
                deployment="faq",
                input_text=f"question of {request_id}",
                output_text=f"answer of {request_id}",
            )
        )
    if store:
        asyncio.run(requestlog.flush())


def test_submit_is_idempotent_and_distinct_feedback_is_kept(ws: Workspace) -> None:
    _log(ws, "chatcmpl-1")
    first, created = submit_feedback(ws, "chatcmpl-1", rating="up", comment=" great ")
    assert created and first.status == "new"
    assert (first.rating, first.rating_scale, first.thumbs, first.comment) == (
        5,
        "thumbs",
        "up",
        "great",
    )
    again, created_again = submit_feedback(ws, "chatcmpl-1", rating="up", comment="great")
    assert not created_again and again.feedback_id == first.feedback_id
    other, created_other = submit_feedback(ws, "chatcmpl-1", rating=2)
    assert created_other and other.feedback_id != first.feedback_id
    assert (other.rating, other.rating_scale, other.thumbs) == (2, "5", None)
    from_someone_else, created_else = submit_feedback(
        ws, "chatcmpl-1", rating="up", comment="great", user="u2"
    )
    assert created_else and from_someone_else.feedback_id != first.feedback_id
    assert len(list_feedback(ws)) == 3


def test_concurrent_identical_submissions_store_one_row(ws: Workspace) -> None:
    _log(ws, "chatcmpl-2")
    results: list[tuple[str, bool]] = []
    barrier = threading.Barrier(6)

    def send() -> None:
        barrier.wait()
        info, created = submit_feedback(ws, "chatcmpl-2", rating=4, correction="better")
        results.append((info.feedback_id, created))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({fid for fid, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(list_feedback(ws)) == 1


def test_a_response_still_in_the_journal_is_known(ws: Workspace) -> None:
    _log(ws, "chatcmpl-journal", store=False)
    found = find_request(ws, "chatcmpl-journal")
    assert found is not None and not found.stored and found.deployment == "faq"
    info, created = submit_feedback(ws, "chatcmpl-journal", rating=5)
    assert created and info.request_id == "chatcmpl-journal"
    # Its texts are not in the journal (never on disk unredacted): none to show yet.
    assert get_feedback(ws, info.feedback_id).request is None
    # A prefix of a journaled id is not that id.
    with pytest.raises(NotFoundError, match="no response with id 'chatcmpl-jour'"):
        submit_feedback(ws, "chatcmpl-jour", rating=5)


def test_unknown_response_and_bad_values(ws: Workspace) -> None:
    _log(ws, "chatcmpl-3")
    with pytest.raises(NotFoundError, match="no response with id 'chatcmpl-nope'"):
        submit_feedback(ws, "chatcmpl-nope", rating=5)
    bad: list[tuple[dict[str, object], str, str]] = [
        ({"rating": 0}, "rating", "from 1 to 5"),
        ({"rating": 6}, "rating", "from 1 to 5"),
        ({"rating": True}, "rating", "from 1 to 5"),
        ({"rating": "meh"}, "rating", "'up' / 'down'"),
        ({"rating": "up", "scale": "5"}, "rating", "thumbs"),
        ({"rating": 3, "scale": "thumbs"}, "rating", "not a number"),
        ({"rating": 3, "scale": "10"}, "scale", "'5' or 'thumbs'"),
        ({}, "rating", "needs a rating, a comment or a correction"),
        ({"comment": "   "}, "rating", "needs a rating"),
        ({"correction": "x" * (MAX_CORRECTION_CHARS + 1)}, "correction", "at most 8000"),
    ]
    for fields, param, message in bad:
        with pytest.raises(FeedbackError, match=message) as caught:
            submit_feedback(ws, "chatcmpl-3", **fields)  # type: ignore[arg-type]
        assert caught.value.param == param, fields
    with pytest.raises(FeedbackError, match="invalid response id") as caught:
        submit_feedback(ws, 'x" OR 1=1', rating=5)
    assert caught.value.param == "id"
    assert list_feedback(ws) == []


def test_review_list_and_show(ws: Workspace) -> None:
    _log(ws, "chatcmpl-a", "chatcmpl-b")
    a, _ = submit_feedback(ws, "chatcmpl-a", rating=1, correction="the right answer")
    b, _ = submit_feedback(ws, "chatcmpl-b", rating="down")
    accepted = review_feedback(ws, a.feedback_id, "accept", reviewer="ana")
    assert accepted.status == "accepted" and accepted.extra["review"]["by"] == "ana"
    review_feedback(ws, b.feedback_id, "rejected")
    assert [i.feedback_id for i in list_feedback(ws, status="accepted")] == [a.feedback_id]
    assert [i.feedback_id for i in list_feedback(ws, limit=1)] == [b.feedback_id]  # newest first
    assert list_feedback(ws, since=datetime.now(UTC) + timedelta(hours=1)) == []
    shown = get_feedback(ws, a.feedback_id)
    assert shown.request is not None
    assert shown.request["input_text"] == "question of chatcmpl-a"
    assert shown.to_dict()["request"]["output_text"] == "answer of chatcmpl-a"
    with pytest.raises(NotFoundError, match="no feedback with id 'fb-nope'"):
        review_feedback(ws, "fb-nope", "accepted")
    with pytest.raises(FeedbackError, match="invalid status 'maybe'"):
        review_feedback(ws, a.feedback_id, "maybe")


def test_export_is_atomic_and_complete(ws: Workspace, tmp_path: Path) -> None:
    _log(ws, "chatcmpl-e1", "chatcmpl-e2")
    submit_feedback(ws, "chatcmpl-e1", rating=5)
    submit_feedback(ws, "chatcmpl-e2", comment="too long-winded")
    target = tmp_path / "out" / "feedback.jsonl"
    assert export_feedback(ws, target) == 2
    rows = [json.loads(line) for line in target.read_text("utf-8").splitlines()]
    assert [r["request_id"] for r in rows] == ["chatcmpl-e1", "chatcmpl-e2"]  # oldest first
    assert rows[0]["request"]["output_text"] == "answer of chatcmpl-e1"
    # A failing export leaves the previous file whole, and no temporary file behind.
    with pytest.raises(FeedbackError, match="invalid status"):
        export_feedback(ws, target, status="bogus")
    assert len(target.read_text("utf-8").splitlines()) == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["feedback.jsonl"]
    assert export_feedback(ws, target, status="accepted") == 0
    assert target.read_text("utf-8") == ""
    with pytest.raises(FeedbackError, match="unsupported export format"):
        export_feedback(ws, target, format="xml")


def test_parse_since() -> None:
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    assert parse_since("24h", now=now) == now - timedelta(hours=24)
    assert parse_since("2w", now=now) == now - timedelta(days=14)
    assert parse_since("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_since(None) is None
    with pytest.raises(FeedbackError, match="invalid time 'yesterday'"):
        parse_since("yesterday")


@pytest.mark.postgres
def test_submit_review_and_build_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    from llmline.settings import Settings

    root = tmp_path / "pg"
    init_workspace(root, load_sample_data=False)
    settings = Settings.load(root).model_copy(update={"metadata_url": postgres_url})
    workspace = Workspace(root, settings)
    workspace.metadata.upgrade()
    _log(workspace, "chatcmpl-pg")
    first, created = submit_feedback(
        workspace, "chatcmpl-pg", rating="down", correction="the fixed answer"
    )
    again, created_again = submit_feedback(
        workspace, "chatcmpl-pg", rating="down", correction="the fixed answer"
    )
    assert (created, created_again, again.feedback_id) == (True, False, first.feedback_id)
    assert review_feedback(workspace, first.feedback_id, "accepted").status == "accepted"
    with pytest.raises(NotFoundError):
        submit_feedback(workspace, "chatcmpl-none", rating=5)
    from llmline.data.feedback_dataset import build_from_feedback
    from llmline.prompts import PromptRegistry

    PromptRegistry(workspace.metadata).create("qa", "Q: {question}")
    built = build_from_feedback(workspace, template="qa@1")
    assert built.manifest["feedback"]["rows_from_feedback"]["corrections"] == 1
    assert built.manifest["feedback"]["feedback_used"] == 1
    workspace.close()

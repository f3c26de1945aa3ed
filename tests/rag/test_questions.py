"""The shipped labelled question set over CPython's pydoc topics."""

from __future__ import annotations

from pydoc_data.topics import topics

from llmline.evaluation.rag import load_questions, shipped_questions_path


def test_shipped_questions_are_labelled_with_real_topics() -> None:
    questions = load_questions(shipped_questions_path())
    assert len(questions) >= 40
    assert len({q.question for q in questions}) == len(questions)
    for q in questions:
        assert q.question.endswith("?") and q.answer
        assert q.topics and all(topic in topics for topic in q.topics), q.question


def test_shipped_questions_cover_many_topics() -> None:
    labelled = {t for q in load_questions(shipped_questions_path()) for t in q.topics}
    assert len(labelled) >= 35

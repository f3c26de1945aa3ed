"""LLM-as-judge against a real OpenAI-compatible HTTP server on loopback
(``judge_server`` in conftest.py), driven by the real ``openai`` client."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from llmline.evaluation import Judge, JudgeResult, parse_verdict

if TYPE_CHECKING:
    from conftest import JudgeServer


def _grade(judge_server: JudgeServer, answers: list[str], **kwargs: Any) -> JudgeResult:
    with Judge(judge_server.url, "judge-model", **kwargs) as judge:
        return judge.grade_all(
            [f"question {i}" for i in range(len(answers))],
            [f"reference {i}" for i in range(len(answers))],
            answers,
        )


def test_verdicts_are_parsed_and_malformed_ones_counted(judge_server: JudgeServer) -> None:
    answers = list(judge_server.REPLIES)
    result = _grade(judge_server, answers, max_retries=0)
    assert (result.scored, result.unparseable, result.errors) == (4, 3, 0)
    assert result.mean_score == pytest.approx((5 + 4 + 3 + 2) / 4)
    by_answer = dict(zip(answers, result.verdicts, strict=True))
    assert by_answer["FENCED"].reason == "minor\nomission"
    assert by_answer["OUT_OF_RANGE"].status == "unparseable"
    assert by_answer["NO_JSON"].raw == judge_server.REPLIES["NO_JSON"]  # kept for debugging
    assert result.to_metrics() == {
        "judge_scored": 4.0,
        "judge_unparseable": 3.0,
        "judge_errors": 0.0,
        "judge_score": 3.5,
    }


def test_request_carries_the_rubric(judge_server: JudgeServer) -> None:
    _grade(judge_server, ["GOOD"])
    request = judge_server.requests[-1]
    assert request["model"] == "judge-model"
    assert request["temperature"] == 0.0
    prompt = request["messages"][-1]["content"]
    assert "QUESTION:\nquestion 0" in prompt
    assert "REFERENCE:\nreference 0" in prompt
    assert '{"score": <integer 1-5>' in prompt


def test_nothing_scored_means_no_mean_not_nan(judge_server: JudgeServer) -> None:
    result = _grade(judge_server, ["NO_JSON", "EMPTY"])
    assert (result.mean_score, result.scored, result.unparseable) == (None, 0, 2)
    assert "judge_score" not in result.to_metrics()


def test_server_errors_are_counted_after_bounded_retries(judge_server: JudgeServer) -> None:
    before = judge_server.count("HTTP500")
    result = _grade(judge_server, ["HTTP500", "GOOD"], max_retries=1)
    assert (result.scored, result.errors) == (1, 1)
    assert "InternalServerError" in (result.verdicts[0].error or "")
    assert judge_server.count("HTTP500") - before == 2  # first try + one retry


def test_timeouts_are_counted_as_errors(judge_server: JudgeServer) -> None:
    started = time.perf_counter()
    result = _grade(judge_server, ["SLOW", "GOOD"], timeout_s=0.5, max_retries=0)
    assert time.perf_counter() - started < judge_server.SLOW_S
    assert (result.scored, result.errors) == (1, 1)
    assert "Timeout" in (result.verdicts[0].error or "")


def test_responses_that_are_not_completions_are_errors(judge_server: JudgeServer) -> None:
    result = _grade(judge_server, [*judge_server.RAW_BODIES, "GOOD"], max_retries=0)
    assert (result.scored, result.unparseable, result.errors) == (1, 0, 2)
    assert [v.error is not None for v in result.verdicts] == [True, True, False]


def test_unreachable_endpoint_is_counted_not_raised() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with Judge("http://127.0.0.1:1/v1", "m", max_retries=0) as judge:
        result = judge.grade_all(["q"], ["r"], ["a"])
    assert (result.mean_score, result.errors) == (None, 1)
    assert result.verdicts[0].error is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"score": 5, "reason": "ok"}', (5.0, "ok")),
        ('```\n{"Score": "4", "Reason": "ok"}\n```', (4.0, "ok")),
        ('{"verdict": 1} then {"score": 2}', (2.0, "")),
        ("{not json} {\"score\": 1, 'reason': broken", (1.0, "")),
        ('{"score": true}', None),
        ('{"score": 0, "reason": "too low"}', None),
        ("score 5", None),  # a bare number in prose is not a verdict
        (None, None),
    ],
)
def test_parse_verdict(text: str | None, expected: tuple[float, str] | None) -> None:
    assert parse_verdict(text) == expected

"""LLM-as-judge: a model behind any OpenAI-compatible endpoint grades answers.

The judge sees the question, the reference answer and the candidate answer
and replies with ``{"score": 1-5, "reason": "..."}``.  Real judges wrap that
JSON in prose or code fences, or break it; the parser digs it out where it
can, and every verdict it cannot read is *counted* (``unparseable``), as is
every request that failed (``errors``): neither is ever averaged in as a
silent NaN or zero.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from llmline.evaluation._hf import require
from llmline.evaluation.errors import EvaluationError

__all__ = ["RUBRIC", "Judge", "JudgeResult", "Verdict", "parse_verdict"]

MIN_SCORE, MAX_SCORE = 1, 5

SYSTEM_PROMPT = "You grade answers to questions fairly and strictly. You reply with JSON only."

RUBRIC = """Grade the ANSWER to the QUESTION, using the REFERENCE answer as the truth.

Scores:
5 - correct and complete: says what the reference says (wording may differ)
4 - correct, with a minor omission or harmless extra detail
3 - partly correct: misses an important point or contains a minor error
2 - mostly wrong or off-topic, with a small correct part
1 - wrong, empty, or unrelated

Reply with only this JSON object:
{{"score": <integer 1-5>, "reason": "<one sentence>"}}

QUESTION:
{question}

REFERENCE:
{reference}

ANSWER:
{answer}
"""

_FENCE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.DOTALL)
# Last resort for JSON the judge broke (trailing comma, stray quote): the
# score must still be keyed explicitly, so a bare digit in prose never counts.
_SCORE_FIELD = re.compile(r"""["']?score["']?\s*:\s*["']?(\d+(?:\.\d+)?)""", re.IGNORECASE)
_MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Verdict:
    """One graded answer; ``raw`` keeps the judge's reply for debugging."""

    score: float | None
    reason: str = ""
    raw: str | None = None
    error: str | None = None

    @property
    def status(self) -> Literal["scored", "unparseable", "error"]:
        if self.error is not None:
            return "error"
        return "scored" if self.score is not None else "unparseable"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "score": self.score,
            "reason": self.reason,
            "raw": self.raw,
            "error": self.error,
        }


@dataclass(frozen=True)
class JudgeResult:
    """``mean_score`` is over the ``scored`` verdicts only; None when none scored."""

    mean_score: float | None
    scored: int
    unparseable: int
    errors: int
    verdicts: tuple[Verdict, ...] = field(default=(), repr=False)

    @classmethod
    def from_verdicts(cls, verdicts: Sequence[Verdict]) -> JudgeResult:
        scores = [v.score for v in verdicts if v.score is not None and v.error is None]
        return cls(
            mean_score=sum(scores) / len(scores) if scores else None,
            scored=len(scores),
            unparseable=sum(v.status == "unparseable" for v in verdicts),
            errors=sum(v.status == "error" for v in verdicts),
            verdicts=tuple(verdicts),
        )

    @property
    def total(self) -> int:
        return self.scored + self.unparseable + self.errors

    def to_metrics(self) -> dict[str, float]:
        """Flat metrics; ``judge_score`` is absent (not NaN) when nothing scored."""
        metrics = {
            "judge_scored": float(self.scored),
            "judge_unparseable": float(self.unparseable),
            "judge_errors": float(self.errors),
        }
        if self.mean_score is not None:
            metrics["judge_score"] = self.mean_score
        return metrics

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean_score": self.mean_score,
            "scored": self.scored,
            "unparseable": self.unparseable,
            "errors": self.errors,
        }


def parse_verdict(text: str | None) -> tuple[float, str] | None:
    """``(score, reason)`` from a judge's reply, or None when there is none.

    Looks in code fences first, then anywhere in the text, for a JSON object
    with an in-range ``score``; falls back to an explicit ``"score": N``.
    """
    if not text:
        return None
    for chunk in (*_FENCE.findall(text), text):
        for obj in _json_objects(chunk):
            verdict = _from_object(obj)
            if verdict is not None:
                return verdict
    match = _SCORE_FIELD.search(text)
    if match:
        score = _score(match.group(1))
        if score is not None:
            return score, ""
    return None


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    # strict=False: judges often put raw newlines inside the reason string.
    decoder = json.JSONDecoder(strict=False)
    start = text.find("{")
    while start != -1:
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(obj, dict):
            yield obj
        start = text.find("{", end)


def _from_object(obj: dict[str, Any]) -> tuple[float, str] | None:
    fields = {str(k).lower(): v for k, v in obj.items()}
    if "score" not in fields:
        return None
    score = _score(fields["score"])
    if score is None:
        return None
    reason = fields.get("reason", fields.get("explanation", ""))
    return score, reason if isinstance(reason, str) else json.dumps(reason)


def _score(value: Any) -> float | None:
    if isinstance(value, bool):  # bool is an int: true must not read as 1
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and MIN_SCORE <= value <= MAX_SCORE:
        return float(value)
    return None


class Judge:
    """A grader behind ``base_url`` (``.../v1``), e.g. vLLM, llama.cpp, Ollama, OpenAI.

    Each request waits at most ``timeout_s`` and is retried at most
    ``max_retries`` times (with the client's backoff) before it counts as an
    error; ``concurrency`` requests run at once.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        concurrency: int = 4,
        max_tokens: int | None = 300,
    ) -> None:
        if concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise EvaluationError(
                "judge needs concurrency >= 1, max_retries >= 0 and timeout_s > 0"
            )
        openai = require("openai")
        self.base_url = base_url
        self.model = model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.max_tokens = max_tokens
        # Local servers ignore the key, but the client insists on one.
        key = api_key or os.environ.get("LLMLINE_JUDGE_API_KEY") or "not-needed"
        # ValueError: a 200 whose body is not a chat completion (a proxy's
        # HTML page, truncated JSON) fails to parse before the client wraps it.
        self._request_errors: tuple[type[Exception], ...] = (openai.OpenAIError, ValueError)
        self._client = openai.OpenAI(
            base_url=base_url, api_key=key, timeout=timeout_s, max_retries=max_retries
        )

    def config(self) -> dict[str, Any]:
        """What to record beside the scores (never the key)."""
        return {
            "judge_url": self.base_url,
            "judge_model": self.model,
            "judge_timeout_s": self.timeout_s,
            "judge_max_retries": self.max_retries,
        }

    def grade(self, question: str, reference: str, answer: str) -> Verdict:
        prompt = RUBRIC.format(question=question, reference=reference, answer=answer)
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": prompt},
                ],
                temperature=0.0,
                **({"max_tokens": self.max_tokens} if self.max_tokens else {}),
            )
        except self._request_errors as exc:
            return Verdict(None, error=f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS])
        choices = getattr(response, "choices", None)
        if not choices:
            return Verdict(None, error="the endpoint returned no choices")
        raw = choices[0].message.content
        parsed = parse_verdict(raw)
        if parsed is None:
            return Verdict(None, raw=raw)
        return Verdict(parsed[0], reason=parsed[1], raw=raw)

    def grade_all(
        self, questions: Sequence[str], references: Sequence[str], answers: Sequence[str]
    ) -> JudgeResult:
        if not (len(questions) == len(references) == len(answers)):
            raise EvaluationError("questions, references and answers must pair up one to one")
        if not questions:
            raise EvaluationError("nothing to judge: no answers")
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="llmline-judge") as pool:
            verdicts = list(pool.map(self.grade, questions, references, answers))
        return JudgeResult.from_verdicts(verdicts)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

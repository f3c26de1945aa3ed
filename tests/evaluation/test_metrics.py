"""Reference metrics on inputs whose scores are known."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from llmline.evaluation import EvaluationError, compute_metrics, default_embedder
from llmline.evaluation.metrics import (
    bleu,
    chrf,
    exact_match,
    length_stats,
    normalize_answer,
    rouge,
    semantic_similarity,
)

SENTENCES = [
    "Use sorted(d.items(), key=lambda kv: kv[1]) to sort a dictionary by its values.",
    "A decorator is a function that takes a function and returns a new function.",
]


def test_identical_texts_score_perfectly() -> None:
    metrics = compute_metrics(SENTENCES, SENTENCES, semantic=False)
    assert metrics["exact_match"] == 1.0
    assert metrics["bleu"] == pytest.approx(100.0)
    assert metrics["chrf"] == pytest.approx(100.0)
    assert metrics["rouge1"] == metrics["rouge2"] == metrics["rougeL"] == pytest.approx(1.0)


def test_disjoint_texts_score_zero() -> None:
    # No shared word and no shared character, so chrF is 0 too.
    predictions, references = ["aaa bbb ccc ddd"], ["xxx yyy zzz www"]
    assert exact_match(predictions, references) == 0.0
    assert bleu(predictions, references) == 0.0
    assert chrf(predictions, references) == 0.0
    assert rouge(predictions, references) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_partial_overlap_lies_between() -> None:
    predictions = ["the cat sat on the mat today"]
    references = ["the cat sat on the red mat"]
    scores = rouge(predictions, references)
    assert 0.0 < scores["rouge2"] < scores["rouge1"] < 1.0
    assert 0.0 < bleu(predictions, references) < 100.0


def test_rouge_stems_words() -> None:
    assert rouge(["running dogs"], ["run dog"])["rouge1"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("prediction", "reference"),
    [("The answer.", "answer"), ("  An  Answer! ", "answer"), ("answer", "ANSWER")],
)
def test_exact_match_normalises(prediction: str, reference: str) -> None:
    assert normalize_answer(prediction) == "answer"
    assert exact_match([prediction], [reference]) == 1.0


def test_exact_match_is_a_share() -> None:
    assert exact_match(["a b", "c", "d", "e"], ["a b", "c", "x", "y"]) == 0.5


def test_length_stats_in_chars_and_tokens() -> None:
    def tokenizer(texts: list[str], add_special_tokens: bool) -> dict[str, Any]:
        assert add_special_tokens is False
        return {"input_ids": [t.split() for t in texts]}

    stats = length_stats(["ab", "abcd", "abcdef abc"], tokenizer=tokenizer)
    assert stats["answer_chars_mean"] == pytest.approx(16 / 3)
    assert stats["answer_chars_p50"] == 4.0
    assert stats["answer_chars_p95"] == pytest.approx(4 + 0.9 * 6)
    assert stats["answer_tokens_mean"] == pytest.approx(4 / 3)
    assert set(length_stats(["x"])) == {"answer_chars_mean", "answer_chars_p50", "answer_chars_p95"}


@pytest.mark.parametrize(
    "call",
    [
        lambda: compute_metrics([], [], semantic=False),
        lambda: bleu(["a"], []),
        lambda: exact_match(["a", "b"], ["a"]),
        lambda: length_stats([]),
    ],
)
def test_empty_or_mismatched_input_is_a_clear_error(call: Any) -> None:
    with pytest.raises(EvaluationError, match=r"no examples|pair up|no texts"):
        call()


def test_semantic_similarity_ranks_paraphrases_above_unrelated_text() -> None:
    question = ["How do I reverse a list in Python?"]
    paraphrase = semantic_similarity(question, ["What is the way to reverse a Python list?"])
    unrelated = semantic_similarity(question, ["The weather in Paris is sunny today."])
    identical = semantic_similarity(question, question)
    assert identical == pytest.approx(1.0, abs=1e-5)
    assert paraphrase > 0.8
    assert unrelated < 0.2
    assert default_embedder() is default_embedder()  # loaded once per process


def test_compute_metrics_uses_a_given_embedder_and_tokenizer() -> None:
    class Embedder:
        def encode(self, sentences: list[str], /, **kwargs: Any) -> np.ndarray:
            # "zero" embeds to the zero vector: cosine 0, never NaN.
            return np.array([[0.0, 0.0] if s == "zero" else [1.0, 1.0] for s in sentences])

    def tokenizer(texts: list[str], add_special_tokens: bool) -> dict[str, Any]:
        return {"input_ids": [list(t) for t in texts]}

    metrics = compute_metrics(
        ["zero", "one"], ["one", "two"], embedder=Embedder(), tokenizer=tokenizer
    )
    assert metrics["semantic_similarity"] == pytest.approx(0.5)
    assert metrics["answer_tokens_mean"] == 3.5
    assert all(np.isfinite(v) for v in metrics.values())

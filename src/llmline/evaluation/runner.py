"""Evaluate a model on a dataset split: generate, score, optionally judge.

:func:`evaluate` takes a loaded model and tokenizer (any object with the
Hugging Face interface) and rows of ``{"input_text", "output_text"}``;
:func:`load_rows` reads those rows from a dataset version.  The result is a
plain :class:`EvalResult` that :class:`~llmline.evaluation.store.EvalStore`
records in the metadata store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from llmline.errors import NotFoundError
from llmline.evaluation.errors import EvaluationError
from llmline.evaluation.generate import GenerationResult, generate
from llmline.evaluation.metrics import Embedder, compute_metrics
from llmline.storage.models import utcnow

if TYPE_CHECKING:
    from llmline.evaluation.judge import Judge, JudgeResult
    from llmline.workspace import Workspace

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_NEW_TOKENS",
    "EvalResult",
    "check_finite",
    "evaluate",
    "load_rows",
]

DEFAULT_MAX_NEW_TOKENS = 256
DEFAULT_BATCH_SIZE = 8
DEFAULT_SAMPLES = 5
# Samples are for eyeballing; a long answer must not bloat the metadata row.
_SAMPLE_CHARS = 2000


@dataclass
class EvalResult:
    """Scores of one model on one split of one dataset version."""

    model_ref: str
    dataset_ref: str
    split: str
    metrics: dict[str, float]
    config: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime = field(default_factory=utcnow)
    id: int | None = None

    @property
    def label(self) -> str:
        return f"#{self.id} {self.model_ref}" if self.id is not None else self.model_ref

    def to_dict(self, *, with_samples: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "model_ref": self.model_ref,
            "dataset_ref": self.dataset_ref,
            "split": self.split,
            "created_at": self.created_at.isoformat(),
            "metrics": dict(self.metrics),
            "config": dict(self.config),
        }
        if with_samples:
            out["samples"] = list(self.samples)
        return out


def evaluate(
    *,
    model: Any,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    model_ref: str,
    dataset_ref: str,
    split: str,
    judge: Judge | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    embedder: Embedder | None = None,
    semantic: bool = True,
    samples: int = DEFAULT_SAMPLES,
) -> EvalResult:
    """Greedy answers to every row's input, scored against its output.

    ``semantic=False`` skips the embedding model; ``judge`` adds LLM-as-judge
    scores (``judge_score`` and the counts of unparseable and failed verdicts).
    """
    inputs, references = _split_rows(rows)
    generation = generate(
        model, tokenizer, inputs, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    predictions = generation.texts
    metrics = compute_metrics(
        predictions, references, embedder=embedder, tokenizer=tokenizer, semantic=semantic
    )
    metrics |= generation.stats()
    metrics["rows"] = float(len(inputs))
    verdicts = None
    if judge is not None:
        judged = judge.grade_all(inputs, references, predictions)
        metrics |= judged.to_metrics()
        verdicts = judged
    return EvalResult(
        model_ref=model_ref,
        dataset_ref=dataset_ref,
        split=split,
        metrics=check_finite(metrics),
        config=_config(generation, judge, embedder, semantic),
        samples=_samples(inputs, references, predictions, verdicts, samples),
    )


def _split_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    if not rows:
        raise EvaluationError("no rows to evaluate")
    inputs, references = [], []
    for n, row in enumerate(rows, 1):
        question, answer = row.get("input_text"), row.get("output_text")
        if not isinstance(question, str) or not isinstance(answer, str):
            raise EvaluationError(f"row {n} needs string fields input_text and output_text")
        inputs.append(question)
        references.append(answer)
    return inputs, references


def check_finite(metrics: dict[str, float]) -> dict[str, float]:
    """JSON (and PostgreSQL) has no NaN: a non-finite metric is a bug upstream."""
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    if bad:
        raise EvaluationError(f"metric(s) {', '.join(bad)} are not finite numbers")
    return metrics


def _config(
    generation: GenerationResult, judge: Judge | None, embedder: Embedder | None, semantic: bool
) -> dict[str, Any]:
    embedder_name = "all-MiniLM-L6-v2" if embedder is None else type(embedder).__name__
    config: dict[str, Any] = {
        "max_new_tokens": generation.max_new_tokens,
        "batch_size": generation.batch_size,
        "decoding": "greedy",
        "embedder": embedder_name if semantic else None,
    }
    if judge is not None:
        config |= judge.config()
    return config


def _samples(
    inputs: list[str],
    references: list[str],
    predictions: list[str],
    judged: JudgeResult | None,
    count: int,
) -> list[dict[str, Any]]:
    out = []
    for i in range(min(count, len(inputs))):
        sample: dict[str, Any] = {
            "input": inputs[i][:_SAMPLE_CHARS],
            "reference": references[i][:_SAMPLE_CHARS],
            "prediction": predictions[i][:_SAMPLE_CHARS],
        }
        if judged is not None:
            verdict = judged.verdicts[i]
            reason = verdict.reason or verdict.error or ""
            sample["judge"] = {"status": verdict.status, "score": verdict.score, "reason": reason}
        out.append(sample)
    return out


def load_rows(
    workspace: Workspace, dataset_ref: str, split: str, *, limit: int | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The rows of one split of a dataset version, and the version's exact
    ``NAME@VERSION`` (so a result never records a moving ``@latest``)."""
    from llmline.data.catalog import get_version

    if limit is not None and limit < 1:
        raise EvaluationError("limit must be at least 1")
    info = get_version(workspace, dataset_ref)
    if split not in info.splits:
        raise NotFoundError(
            f"dataset {info.ref} has no split {split!r} (it has: {', '.join(info.splits)})"
        )
    store = workspace.artifacts
    relpath = info.uri.removeprefix(store.root + "/")
    rows: list[dict[str, Any]] = []
    with store.open(f"{relpath}/{split}.jsonl", "rb") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    if not rows:
        raise EvaluationError(
            f"split {split!r} of {info.ref} is empty: nothing to evaluate "
            "(give the split a larger fraction and rebuild the dataset)"
        )
    return info.ref, rows

"""Evaluation: reference metrics, batched generation, LLM-as-judge, stored results.

Importing this package is cheap: torch, transformers, sacrebleu, rouge-score,
sentence-transformers and openai (the ``tune`` extra) load on first use.
"""

from __future__ import annotations

from llmline.evaluation.errors import EvaluationError
from llmline.evaluation.generate import GenerationResult, RequestStats, generate
from llmline.evaluation.judge import Judge, JudgeResult, Verdict, parse_verdict
from llmline.evaluation.metrics import compute_metrics, default_embedder
from llmline.evaluation.runner import EvalResult, evaluate, load_rows
from llmline.evaluation.store import Comparison, EvalStore, MetricDelta

__all__ = [
    "Comparison",
    "EvalResult",
    "EvalStore",
    "EvaluationError",
    "GenerationResult",
    "Judge",
    "JudgeResult",
    "MetricDelta",
    "RequestStats",
    "Verdict",
    "compute_metrics",
    "default_embedder",
    "evaluate",
    "generate",
    "load_rows",
    "parse_verdict",
]

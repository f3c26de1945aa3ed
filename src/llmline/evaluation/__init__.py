"""Evaluation: reference metrics, batched generation, LLM-as-judge, stored
results, and promotion gates that read them.

Importing this package is cheap: torch, transformers, sacrebleu, rouge-score,
sentence-transformers and openai (the ``tune`` extra) load on first use.
"""

from __future__ import annotations

from llmline.evaluation.errors import EvaluationError
from llmline.evaluation.gates import evaluation_gate, promotion_gate
from llmline.evaluation.generate import GenerationResult, RequestStats, generate
from llmline.evaluation.judge import Judge, JudgeResult, Verdict, parse_verdict
from llmline.evaluation.metrics import compute_metrics, default_embedder
from llmline.evaluation.models import evaluate_model
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
    "evaluate_model",
    "evaluation_gate",
    "generate",
    "load_rows",
    "parse_verdict",
    "promotion_gate",
]

"""Fine-tuning or RAG, decided with data: the same questions answered by the
base model, the tuned model, and each of them grounded in a knowledge base.

Every variant answers the same labelled questions with the same generation
budget.  Answers are scored against the reference answers (ROUGE-L, token
F1) and against the chunks retrieved for the question (faithfulness: the
share of the answer's sentences they support, for every variant, so that
"does RAG make answers more grounded" is measured on the same evidence),
plus answer relevance and latency.  Without RAG a registry model gets the
prompt template it was tuned with, as the gateway would send it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmline.evaluation.rag import (
    LabeledQuestion,
    SupportScorer,
    claims_of,
    generate_answers,
    grounded_prompt,
    pin_target,
)
from llmline.rag import grounding as g

if TYPE_CHECKING:
    from rich.table import Table

    from llmline.rag.kb import Hit, KnowledgeBase
    from llmline.workspace import Workspace

__all__ = ["COLUMNS", "RagComparison", "Variant", "VariantResult", "compare_rag", "token_f1"]

#: (metric, column heading) of the report, in order.
COLUMNS = (
    ("rougeL", "ROUGE-L"),
    ("token_f1", "token F1"),
    ("faithfulness", "faithfulness"),
    ("answer_relevance", "answer relevance"),
    ("latency_p50_s", "latency p50 (s)"),
    ("answer_words", "words"),
)


@dataclass(frozen=True)
class Variant:
    label: str
    target: str
    rag: bool


@dataclass
class VariantResult:
    variant: Variant
    metrics: dict[str, float]
    answers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.variant.label,
            "target": self.variant.target,
            "rag": self.variant.rag,
            "metrics": self.metrics,
            "answers": self.answers,
        }


@dataclass
class RagComparison:
    knowledge_base: str
    questions: list[LabeledQuestion]
    k: int
    max_tokens: int
    results: list[VariantResult]
    max_context_tokens: int = 1500
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {
            "knowledge_base": self.knowledge_base,
            "questions": len(self.questions),
            "k": self.k,
            "max_tokens": self.max_tokens,
            "max_context_tokens": self.max_context_tokens,
            "created_at": self.created_at.isoformat(timespec="seconds"),
            "variants": [r.to_dict() for r in self.results],
        }

    def table(self) -> Table:
        from rich.table import Table

        table = Table("variant", *(title for _, title in COLUMNS), title=self._title())
        for result in self.results:
            table.add_row(result.variant.label, *_cells(result.metrics))
        return table

    def to_markdown(self) -> str:
        head = ["variant", *(title for _, title in COLUMNS)]
        lines = [
            f"# {self._title()}",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        for result in self.results:
            lines.append(f"| {result.variant.label} | " + " | ".join(_cells(result.metrics)) + " |")
        lines.append("")
        lines += [f"- {r.variant.label}: `{r.variant.target}`" for r in self.results]
        return "\n".join(lines) + "\n"

    def _title(self) -> str:
        return (
            f"{len(self.questions)} questions, knowledge base {self.knowledge_base}, "
            f"top {self.k} within {self.max_context_tokens} tokens, "
            f"at most {self.max_tokens} new tokens"
        )

    def save(self, path: Path) -> tuple[Path, Path]:
        """Write the report as ``path`` (Markdown) and its ``.json`` beside it, atomically."""
        json_path = path.with_suffix(".json")
        _write_atomic(path, self.to_markdown())
        _write_atomic(json_path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path, json_path


def _cells(metrics: dict[str, float]) -> list[str]:
    return [f"{metrics[name]:.3f}" if name in metrics else "-" for name, _ in COLUMNS]


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's token F1 of the normalised answer and reference."""
    from collections import Counter

    from llmline.evaluation.metrics import normalize_answer

    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def variants(base: str, tuned: str | None) -> list[Variant]:
    pairs = [("base", base)] + ([("tuned", tuned)] if tuned else [])
    return [Variant(label, t, False) for label, t in pairs] + [
        Variant(f"{label}+RAG", t, True) for label, t in pairs
    ]


def compare_rag(
    workspace: Workspace | None,
    kb: KnowledgeBase,
    questions: Sequence[LabeledQuestion],
    *,
    base: str,
    tuned: str | None = None,
    k: int = 5,
    max_context_tokens: int = 1500,
    max_tokens: int = 48,
    scorer: SupportScorer | None = None,
) -> RagComparison:
    """Answer ``questions`` with each variant and score them on the same footing."""
    scorer = scorer or SupportScorer()
    contexts = [g.select_context(kb.search(q.question, k), max_context_tokens) for q in questions]
    results = []
    for variant in variants(pin_target(workspace, base), tuned and pin_target(workspace, tuned)):
        if variant.rag:
            prompts = [
                grounded_prompt(None, q.question, ctx)
                for q, ctx in zip(questions, contexts, strict=True)
            ]
        else:
            plain = _plain_prompt(workspace, variant.target)
            prompts = [plain(q.question) for q in questions]
        answered = generate_answers(workspace, variant.target, prompts, max_tokens=max_tokens)
        answers = [text for text, _ in answered]
        metrics = _score(questions, contexts, answers, [s for _, s in answered], scorer)
        results.append(VariantResult(variant, metrics, answers))
    return RagComparison(kb.ref, list(questions), k, max_tokens, results, max_context_tokens)


def _score(
    questions: Sequence[LabeledQuestion],
    contexts: Sequence[Sequence[Hit]],
    answers: Sequence[str],
    seconds: Sequence[float],
    scorer: SupportScorer,
) -> dict[str, float]:
    from llmline.evaluation.metrics import rouge

    pairs = list(zip(questions, answers, strict=True))
    faithful = [
        scorer.supported_share(claims_of(a), [h.text for h in ctx])
        for a, ctx in zip(answers, contexts, strict=True)
    ]
    relevance = [scorer.cosine(q.question, a) for q, a in pairs if a]
    return {
        "rougeL": rouge(answers, [q.answer for q in questions])["rougeL"],
        "token_f1": float(np.mean([token_f1(a, q.answer) for q, a in pairs])),
        "faithfulness": float(np.mean([f for f in faithful if f is not None] or [0.0])),
        "answer_relevance": float(np.mean(relevance or [0.0])),
        "latency_p50_s": float(np.percentile(seconds, 50)),
        "latency_mean_s": float(np.mean(seconds)),
        "answer_words": float(np.mean([len(a.split()) for a in answers])),
    }


def _plain_prompt(workspace: Workspace | None, target: str) -> Callable[[str], str]:
    """The prompt without retrieval: the registry model's tuning template, if it has one."""
    from llmline.gateway.providers import split_target

    scheme, ref = split_target(target)
    if workspace is None or scheme != "embedded":
        return lambda question: question
    from llmline.models import ModelRegistry
    from llmline.prompts import PromptRegistry

    template_ref = ModelRegistry(workspace.metadata).get(ref).metadata.get("template")
    if not isinstance(template_ref, str):
        return lambda question: question
    template = PromptRegistry(workspace.metadata).get(template_ref).template
    if len(template.variables) != 1:
        return lambda question: question
    return lambda question: template.render({template.variables[0]: question})

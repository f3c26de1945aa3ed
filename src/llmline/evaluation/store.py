"""Evaluation results in the metadata store: save, look up, list, compare."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from llmline.errors import NotFoundError
from llmline.evaluation.runner import EvalResult, check_finite
from llmline.storage.eval_tables import Evaluation
from llmline.storage.lineage import ArtifactRef, add_edge

if TYPE_CHECKING:
    from llmline.storage.db import MetadataStore

__all__ = [
    "Comparison",
    "EvalStore",
    "MetricDelta",
    "comparison_table",
    "evaluations_table",
]

# Which way is better, for the metrics evaluate() writes.  Anything not
# listed (lengths, counts of rows or tokens) has no better direction.
HIGHER_IS_BETTER = frozenset(
    {
        "exact_match",
        "bleu",
        "chrf",
        "rouge1",
        "rouge2",
        "rougeL",
        "semantic_similarity",
        "judge_score",
        "tokens_per_s",
    }
)
LOWER_IS_BETTER = frozenset(
    {"latency_p50_s", "latency_p95_s", "generation_s", "judge_unparseable", "judge_errors"}
)
# Columns `eval list` shows when the results have them.
LIST_METRICS = ("exact_match", "rougeL", "chrf", "semantic_similarity", "judge_score")


@dataclass(frozen=True)
class MetricDelta:
    """``delta`` is b - a; ``better`` names the side that wins (None: no
    direction or a side lacks the metric)."""

    name: str
    a: float | None
    b: float | None
    delta: float | None
    better: Literal["a", "b", "same"] | None

    @classmethod
    def of(cls, name: str, a: float | None, b: float | None) -> MetricDelta:
        if a is None or b is None:
            return cls(name, a, b, None, None)
        delta = b - a
        better: Literal["a", "b", "same"] | None = None
        if delta == 0 and name in HIGHER_IS_BETTER | LOWER_IS_BETTER:
            better = "same"
        elif name in HIGHER_IS_BETTER:
            better = "b" if delta > 0 else "a"
        elif name in LOWER_IS_BETTER:
            better = "b" if delta < 0 else "a"
        return cls(name, a, b, delta, better)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "delta": self.delta, "better": self.better}


@dataclass(frozen=True)
class Comparison:
    a: EvalResult
    b: EvalResult
    metrics: tuple[MetricDelta, ...]

    @classmethod
    def of(cls, a: EvalResult, b: EvalResult) -> Comparison:
        names = [*a.metrics, *(name for name in b.metrics if name not in a.metrics)]
        deltas = tuple(MetricDelta.of(n, a.metrics.get(n), b.metrics.get(n)) for n in names)
        return cls(a, b, deltas)

    @property
    def same_data(self) -> bool:
        """Both scored on the same split of the same dataset version: only
        then are the numbers comparable."""
        return (self.a.dataset_ref, self.a.split) == (self.b.dataset_ref, self.b.split)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "same_data": self.same_data,
            "metrics": {m.name: m.to_dict() for m in self.metrics},
        }


class EvalStore:
    """Evaluation results in a :class:`~llmline.storage.db.MetadataStore`."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def save(self, result: EvalResult) -> EvalResult:
        """Insert the result (with lineage edges from its model and dataset);
        returns it with its new ``id``."""
        row = Evaluation(
            model_ref=result.model_ref,
            dataset_ref=result.dataset_ref,
            split=result.split,
            metrics=check_finite(dict(result.metrics)),
            config=dict(result.config),
            samples=list(result.samples),
            created_at=result.created_at,
        )
        with self.metadata.session() as session:
            session.add(row)
            session.flush()
            target = ArtifactRef("evaluation", str(row.id))
            model, dataset = (
                ArtifactRef("model", result.model_ref),
                ArtifactRef("dataset", result.dataset_ref),
            )
            add_edge(session, model, target, "evaluated_in")
            add_edge(session, dataset, target, "test_data_of", {"split": result.split})
        return _result(row)

    def get(self, model_ref: str, dataset_ref: str, split: str) -> EvalResult:
        """The newest evaluation of ``model_ref`` on that dataset split."""
        found = self._newest(model_ref, dataset_ref, split)
        if found is None:
            raise NotFoundError(f"no evaluation of {model_ref!r} on {dataset_ref} split {split!r}")
        return found

    def get_by_id(self, evaluation_id: int) -> EvalResult:
        with self.metadata.read_session() as session:
            row = session.get(Evaluation, evaluation_id)
            if row is None:
                raise NotFoundError(f"no evaluation #{evaluation_id}")
            return _result(row)

    def resolve(
        self, selector: str, *, dataset_ref: str | None = None, split: str | None = None
    ) -> EvalResult:
        """``#ID`` (or a bare number) is one evaluation; anything else is a
        model ref, meaning its newest evaluation (on ``dataset_ref``/``split``
        when given)."""
        number = selector.removeprefix("#")
        if number.isdigit():
            return self.get_by_id(int(number))
        found = self._newest(selector, dataset_ref, split)
        if found is None:
            where = "".join(
                f" {label} {value}"
                for label, value in (("on", dataset_ref), ("split", split))
                if value is not None
            )
            raise NotFoundError(f"no evaluation of {selector!r}{where}")
        return found

    def compare(
        self,
        a: EvalResult | str,
        b: EvalResult | str,
        *,
        dataset_ref: str | None = None,
        split: str | None = None,
    ) -> Comparison:
        """Metrics of ``a`` and ``b`` side by side.  A model ref for ``b`` is
        looked up on ``a``'s dataset and split, so the numbers compare."""
        if isinstance(a, str):
            a = self.resolve(a, dataset_ref=dataset_ref, split=split)
        if isinstance(b, str):
            b = self.resolve(b, dataset_ref=a.dataset_ref, split=a.split)
        return Comparison.of(a, b)

    def _newest(
        self, model_ref: str, dataset_ref: str | None, split: str | None
    ) -> EvalResult | None:
        query = select(Evaluation).where(Evaluation.model_ref == model_ref)
        if dataset_ref is not None:
            query = query.where(Evaluation.dataset_ref == dataset_ref)
        if split is not None:
            query = query.where(Evaluation.split == split)
        query = query.order_by(Evaluation.created_at.desc(), Evaluation.id.desc()).limit(1)
        with self.metadata.read_session() as session:
            row = session.scalar(query)
            return _result(row) if row is not None else None

    # Defined last: inside the class body the name shadows the builtin.
    def list(self, model_ref: str | None = None) -> list[EvalResult]:
        """Every evaluation (of one model, or of all), oldest first."""
        query = select(Evaluation).order_by(Evaluation.created_at, Evaluation.id)
        if model_ref is not None:
            query = query.where(Evaluation.model_ref == model_ref)
        with self.metadata.read_session() as session:
            return [_result(row) for row in session.scalars(query)]


def _result(row: Evaluation) -> EvalResult:
    return EvalResult(
        model_ref=row.model_ref,
        dataset_ref=row.dataset_ref,
        split=row.split,
        metrics=dict(row.metrics),
        config=dict(row.config),
        samples=list(row.samples),
        created_at=row.created_at,
        id=row.id,
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


_STYLE = {"a": "red", "b": "green", "same": "", None: ""}


def comparison_table(comparison: Comparison) -> Table:
    """Metrics side by side; a delta is green where B is better, red where worse."""
    a, b = comparison.a, comparison.b
    table = Table("metric", f"A {a.label}", f"B {b.label}", "delta (B-A)")
    if not comparison.same_data:
        table.caption = (
            f"warning: different data (A: {a.dataset_ref} {a.split}, "
            f"B: {b.dataset_ref} {b.split}); the numbers do not compare"
        )
    for m in comparison.metrics:
        delta = "-" if m.delta is None else f"{m.delta:+.4g}"
        table.add_row(m.name, _number(m.a), _number(m.b), Text(delta, style=_STYLE[m.better]))
    return table


def evaluations_table(results: Sequence[EvalResult]) -> Table:
    shown = [name for name in LIST_METRICS if any(name in r.metrics for r in results)]
    table = Table("id")
    # Refs are long and their tails (version, folder) are what tells them
    # apart: wrap them instead of cutting them short.
    table.add_column("model", overflow="fold")
    table.add_column("dataset", overflow="fold")
    for name in ("split", *shown, "created"):
        table.add_column(name)
    for r in results:
        values = [_number(r.metrics.get(name)) for name in shown]
        created = f"{r.created_at:%Y-%m-%d %H:%M}"
        table.add_row(str(r.id), r.model_ref, r.dataset_ref, r.split, *values, created)
    return table

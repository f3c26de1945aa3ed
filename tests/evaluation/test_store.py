"""Evaluation results in the metadata store (SQLite, and PostgreSQL when marked)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from rich.console import Console
from sqlalchemy import inspect, select

from llmline.errors import NotFoundError
from llmline.evaluation import EvalResult, EvalStore, EvaluationError
from llmline.evaluation.store import comparison_table, evaluations_table
from llmline.storage.db import MetadataStore, _alembic_config
from llmline.storage.eval_tables import Evaluation
from llmline.storage.models import Base, LineageEdge

DATA = "faq@v1"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metadata(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'meta.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = MetadataStore(url)
    yield store
    store.dispose()


@pytest.fixture
def evals(metadata: MetadataStore) -> EvalStore:
    return EvalStore(metadata)


def _result(model: str, dataset: str = DATA, split: str = "eval", **metrics: float) -> EvalResult:
    return EvalResult(
        model_ref=model,
        dataset_ref=dataset,
        split=split,
        metrics=metrics,
        config={"max_new_tokens": 32, "batch_size": 4},
        samples=[{"input": "q", "reference": "r", "prediction": "p"}],
    )


def test_migration_creates_the_table_as_the_model_declares(metadata: MetadataStore) -> None:
    script = ScriptDirectory.from_config(_alembic_config()).get_revision("0003_evaluations")
    assert script is not None and script.down_revision == "0002_models"
    indexes = inspect(metadata.engine).get_indexes("evaluations")
    assert [i["column_names"] for i in indexes] == [["model_ref"]]
    with metadata.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
    assert [d for d in diffs if "evaluations" in repr(d)] == []


def test_downgrade_drops_the_table(metadata: MetadataStore) -> None:
    with metadata.engine.begin() as conn:
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "0002_models")
    assert "evaluations" not in inspect(metadata.engine).get_table_names()
    metadata.upgrade()
    assert "evaluations" in inspect(metadata.engine).get_table_names()


def test_save_get_and_list(evals: EvalStore) -> None:
    first = evals.save(_result("base", exact_match=0.1, rougeL=0.2))
    second = evals.save(_result("tuned", exact_match=0.3, rougeL=0.25))
    again = evals.save(_result("base", exact_match=0.15, rougeL=0.2))
    evals.save(_result("base", split="train", exact_match=0.9))
    assert first.id is not None and first.created_at.tzinfo is not None
    got = evals.get("base", DATA, "eval")
    assert (got.id, got.metrics) == (again.id, {"exact_match": 0.15, "rougeL": 0.2})
    assert got.config == {"max_new_tokens": 32, "batch_size": 4}
    assert got.samples == [{"input": "q", "reference": "r", "prediction": "p"}]
    assert [r.id for r in evals.list()][:3] == [first.id, second.id, again.id]
    assert [r.split for r in evals.list("base")] == ["eval", "eval", "train"]
    assert evals.get_by_id(second.id or 0).model_ref == "tuned"
    json.dumps([r.to_dict(with_samples=True) for r in evals.list()])
    with pytest.raises(NotFoundError, match="no evaluation of 'tuned'"):
        evals.get("tuned", DATA, "train")
    with pytest.raises(NotFoundError, match="#999"):
        evals.get_by_id(999)


def test_save_records_lineage(evals: EvalStore) -> None:
    saved = evals.save(_result("base", exact_match=0.1))
    with evals.metadata.read_session() as session:
        edges = session.scalars(select(LineageEdge).order_by(LineageEdge.id)).all()
        rows = session.scalars(select(Evaluation)).all()
    assert [(e.src_kind, e.src_ref, e.dst_ref) for e in edges] == [
        ("model", "base", str(saved.id)),
        ("dataset", DATA, str(saved.id)),
    ]
    assert len(rows) == 1


def test_non_finite_metrics_are_refused(evals: EvalStore) -> None:
    with pytest.raises(EvaluationError, match="bleu"):
        evals.save(_result("base", bleu=float("nan")))
    assert evals.list() == []


def test_compare_shows_deltas_and_direction(evals: EvalStore) -> None:
    a = evals.save(_result("base", exact_match=0.1, latency_p50_s=2.0, answer_chars_mean=80.0))
    b = evals.save(_result("tuned", exact_match=0.3, latency_p50_s=2.5, judge_score=4.0))
    comparison = evals.compare("base", "tuned")
    deltas = {m.name: m for m in comparison.metrics}
    assert deltas["exact_match"].delta == pytest.approx(0.2)
    assert deltas["exact_match"].better == "b"
    assert deltas["latency_p50_s"].better == "a"  # lower latency wins
    assert deltas["answer_chars_mean"].better is None  # present on one side only
    assert (deltas["judge_score"].a, deltas["judge_score"].b) == (None, 4.0)
    assert comparison.same_data
    out = comparison.to_dict()
    assert out["a"]["id"] == a.id and out["b"]["id"] == b.id
    assert out["metrics"]["exact_match"]["better"] == "b"
    json.dumps(out)
    by_id = evals.compare(f"#{a.id}", str(b.id))
    assert [m.delta for m in by_id.metrics] == [m.delta for m in comparison.metrics]


def test_compare_looks_b_up_on_as_data(evals: EvalStore) -> None:
    evals.save(_result("base", exact_match=0.1))
    evals.save(_result("tuned", dataset="other@v2", exact_match=0.9))
    with pytest.raises(NotFoundError, match=r"'tuned' on faq@v1 split eval"):
        evals.compare("base", "tuned")
    mixed = evals.compare("base", evals.get("tuned", "other@v2", "eval"))
    assert not mixed.same_data
    text = _render(comparison_table(mixed))
    assert "different data" in text


def test_tables_render(evals: EvalStore) -> None:
    evals.save(_result("base", exact_match=0.1, rougeL=0.5))
    evals.save(_result("tuned", exact_match=0.3, rougeL=0.25))
    listing = _render(evaluations_table(evals.list()))
    assert "exact_match" in listing and "tuned" in listing
    assert "judge_score" not in listing  # no result has it
    comparison = _render(comparison_table(evals.compare("base", "tuned")))
    assert "+0.2" in comparison and "-0.25" in comparison


def _render(table: object) -> str:
    console = Console(file=io.StringIO(), width=200)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]

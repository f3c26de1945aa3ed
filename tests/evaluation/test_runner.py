"""evaluate() end to end, rows from a real dataset version, and ``llmline eval``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from llmline.cli import evaluate as eval_cli
from llmline.errors import NotFoundError
from llmline.evaluation import EvaluationError, Judge, evaluate, load_rows
from llmline.testing.workspace import synthetic_workspace
from llmline.workspace import Workspace

if TYPE_CHECKING:
    from conftest import JudgeServer

ROWS = [
    {"input_text": "How do I sort a dict by value?", "output_text": "Use sorted()."},
    {"input_text": "What is a decorator?", "output_text": "A function wrapping another."},
    {"input_text": "Why is my loop slow?", "output_text": "Vectorise it with numpy."},
]


class OnesEmbedder:
    def encode(self, sentences: list[str], /, **kwargs: Any) -> np.ndarray:
        return np.ones((len(sentences), 4))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace with one built version of the python-faq dataset."""
    from llmline.data import build

    ws = synthetic_workspace(tmp_path_factory.mktemp("eval") / "ws", 120)
    build("python-faq", workspace=ws)
    yield ws
    ws.close()


def test_evaluate_scores_generates_and_judges(
    tiny_model: tuple[Any, Any], judge_server: JudgeServer
) -> None:
    model, tokenizer = tiny_model
    with Judge(judge_server.url, "judge", max_retries=0) as judge:
        result = evaluate(
            model=model,
            tokenizer=tokenizer,
            rows=ROWS,
            model_ref="tiny",
            dataset_ref="faq@v1",
            split="eval",
            judge=judge,
            max_new_tokens=6,
            batch_size=2,
            embedder=OnesEmbedder(),
            samples=2,
        )
    m = result.metrics
    assert m["rows"] == 3 and m["semantic_similarity"] == pytest.approx(1.0)
    assert {"exact_match", "bleu", "chrf", "rougeL", "answer_tokens_p95"} <= set(m)
    assert m["latency_p50_s"] > 0 and m["tokens_per_s"] > 0
    assert (m["judge_score"], m["judge_scored"], m["judge_unparseable"]) == (3.0, 3.0, 0.0)
    assert result.config["max_new_tokens"] == 6 and result.config["batch_size"] == 2
    assert result.config["judge_url"] == judge_server.url
    assert "api_key" not in json.dumps(result.config)
    assert [s["input"] for s in result.samples] == [r["input_text"] for r in ROWS[:2]]
    assert result.samples[0]["judge"] == {
        "status": "scored",
        "score": 3.0,
        "reason": "default verdict",
    }


def test_evaluate_rejects_bad_rows(tiny_model: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_model
    common: dict[str, Any] = {"model_ref": "m", "dataset_ref": "d", "split": "eval"}
    with pytest.raises(EvaluationError, match="no rows"):
        evaluate(model=model, tokenizer=tokenizer, rows=[], **common)
    with pytest.raises(EvaluationError, match="row 2"):
        evaluate(model=model, tokenizer=tokenizer, rows=[ROWS[0], {"input_text": "q"}], **common)


def test_load_rows_pins_the_version(workspace: Workspace) -> None:
    ref, rows = load_rows(workspace, "python-faq@latest", "eval", limit=3)
    assert ref.startswith("python-faq@") and "latest" not in ref
    assert len(rows) == 3 and {"input_text", "output_text"} <= set(rows[0])
    with pytest.raises(NotFoundError, match="no split 'test'"):
        load_rows(workspace, "python-faq", "test")


def _cli(workspace: Workspace, *args: str) -> Any:
    """``llmline eval ...`` as app.py will mount it."""
    root = typer.Typer()

    @root.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = {"workspace": workspace.root}

    root.add_typer(eval_cli.app, name="eval")
    return CliRunner().invoke(root, ["eval", *args])


def test_cli_run_list_compare(
    workspace: Workspace, tiny_model_dir: Path, judge_server: JudgeServer
) -> None:
    common = ["--model-dir", str(tiny_model_dir), "--dataset", "python-faq", "--limit", "3"]
    common += ["--max-new-tokens", "4", "--no-semantic"]
    judged = _cli(
        workspace, "run", *common, "--judge-url", judge_server.url, "--judge-model", "j", "--json"
    )
    assert judged.exit_code == 0, judged.output
    first = json.loads(judged.stdout)
    assert first["metrics"]["judge_scored"] == 3.0 and len(first["samples"]) == 3
    plain = _cli(workspace, "run", *common, "--batch-size", "1")
    assert plain.exit_code == 0, plain.output
    assert "saved evaluation #2" in plain.stdout and "exact_match" in plain.stdout

    listed = _cli(workspace, "list", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [1, 2]
    compared = json.loads(_cli(workspace, "compare", "#1", "#2", "--json").stdout)
    assert compared["same_data"] and compared["metrics"]["judge_score"]["b"] is None
    table = _cli(workspace, "compare", "1", str(tiny_model_dir.resolve()))
    assert table.exit_code == 0 and "delta (B-A)" in table.stdout


def test_cli_user_errors(workspace: Workspace, tiny_model_dir: Path) -> None:
    half_judge = _cli(
        workspace, "run", "--model-dir", str(tiny_model_dir), "--dataset", "python-faq",
        "--judge-url", "http://127.0.0.1:1/v1",
    )  # fmt: skip
    assert half_judge.exit_code == 1
    assert "both --judge-url and --judge-model" in str(half_judge.exception)
    missing = _cli(workspace, "compare", "#41", "#42")
    assert isinstance(missing.exception, NotFoundError)

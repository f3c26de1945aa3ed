"""Every bad input the data stage names: a clear error, and nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmline import data
from llmline.data.spec import DatasetSpec
from llmline.errors import (
    EmptyResultError,
    IntegrityError,
    MissingColumnsError,
    NotFoundError,
    SQLError,
    TemplateError,
)
from llmline.prompts import PromptRegistry
from llmline.testing.synthetic import generate_stackoverflow
from llmline.workspace import Workspace


def _spec(sql: str, **extra: object) -> DatasetSpec:
    return DatasetSpec.model_validate({"sql": sql, "dialect": "duckdb", **extra})


def _nothing_recorded(workspace: Workspace) -> None:
    assert data.list(workspace=workspace) == []
    datasets = Path(workspace.settings.artifact_root) / "datasets"
    assert not datasets.exists() or not any(datasets.rglob("manifest.json"))


def test_sql_syntax_error_shows_engine_message(workspace: Workspace) -> None:
    spec = _spec("SELECT id, title AS question FROM posts_questions WHERE (id > 1")
    with pytest.raises(SQLError, match=r"(?i)syntax|expect"):
        data.build("bad", spec, workspace=workspace)
    _nothing_recorded(workspace)


def test_engine_error_is_passed_through(workspace: Workspace) -> None:
    spec = _spec("SELECT id, title AS question, body AS answer FROM no_such_table")
    with pytest.raises(SQLError, match="no_such_table"):
        data.build("bad", spec, workspace=workspace)
    _nothing_recorded(workspace)


def test_missing_columns_are_named(workspace: Workspace) -> None:
    spec = _spec("SELECT id, title FROM posts_questions")
    with pytest.raises(MissingColumnsError) as info:
        data.build("bad", spec, workspace=workspace)
    assert info.value.missing == ["question", "answer"]
    assert "question, answer" in str(info.value) and "id, title" in str(info.value)
    _nothing_recorded(workspace)


def test_zero_rows(workspace: Workspace) -> None:
    spec = _spec("SELECT id, title AS question, body AS answer FROM posts_questions WHERE id < 0")
    with pytest.raises(EmptyResultError, match="query returned 0 rows"):
        data.build("bad", spec, workspace=workspace)
    _nothing_recorded(workspace)


def test_everything_filtered_out(workspace: Workspace) -> None:
    spec = _spec(
        "SELECT id, title AS question, body AS answer FROM posts_questions",
        cleaning={"min_chars": 100000, "max_chars": 200000},
    )
    with pytest.raises(EmptyResultError, match="no rows left after cleaning"):
        data.build("bad", spec, workspace=workspace)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("Answer {question.title}", "plain name"),
        ("Answer {question:>10}", "format spec"),
        ("Answer {", "braces"),
        ("No variables at all", "no {variable}"),
        ("   ", "empty"),
    ],
)
def test_bad_template_text(workspace: Workspace, text: str, problem: str) -> None:
    with pytest.raises(TemplateError, match=problem):
        PromptRegistry(workspace.metadata).create("bad", text)


def test_template_variable_that_is_not_a_column(workspace: Workspace) -> None:
    registry = PromptRegistry(workspace.metadata)
    registry.create("needs-context", "Context: {context}\nQuestion: {question}")
    spec = _spec(
        "SELECT id, title AS question, body AS answer FROM posts_questions",
        template="needs-context",
    )
    with pytest.raises(MissingColumnsError, match="context"):
        data.build("bad", spec, workspace=workspace)


def test_unknown_template_alias(workspace: Workspace) -> None:
    spec = DatasetSpec(template="stackoverflow-python@staging")
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        data.build("bad", spec, workspace=workspace)
    with pytest.raises(NotFoundError, match="no prompt template named 'nope'"):
        data.build("bad", DatasetSpec(template="nope@production"), workspace=workspace)


def test_unknown_dataset_name(workspace: Workspace) -> None:
    with pytest.raises(NotFoundError, match=r"no dataset 'nope' in llmline\.yaml"):
        data.build("nope", workspace=workspace)


def test_tampered_file_fails_verify_naming_it(workspace: Workspace) -> None:
    result = data.build("python-faq", workspace=workspace)
    assert set(data.verify(result.ref, workspace=workspace)) == {
        "train.jsonl",
        "eval.jsonl",
        "train.parquet",
        "eval.parquet",
    }
    target = Path(result.uri) / "eval.jsonl"
    target.write_text(target.read_text() + '{"input_text":"x","output_text":"y"}\n')
    with pytest.raises(IntegrityError, match=r"eval\.jsonl was modified"):
        data.verify(result.ref, workspace=workspace)
    target.unlink()
    with pytest.raises(IntegrityError, match=r"eval\.jsonl is missing"):
        data.verify(result.ref, workspace=workspace)


def test_sigkill_during_build_leaves_no_version(workspace: Workspace) -> None:
    """Kill the build once it is writing output files: nothing becomes visible,
    its scratch folders are swept, and the next build succeeds."""
    generate_stackoverflow(workspace.settings.warehouse_url.removeprefix("duckdb:///"), 20000)
    staging = Path(workspace.settings.artifact_root) / ".staging"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmline.cli.app",
            "--workspace",
            str(workspace.root),
            "data",
            "build",
            "python-faq",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(staging.glob("*/train.jsonl")):
            assert proc.poll() is None, "the build finished before it could be killed"
            assert time.monotonic() < deadline, "the build never started writing"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert any(staging.iterdir())  # the killed process left its scratch behind
    _nothing_recorded(workspace)

    result = data.build("python-faq", workspace=workspace)
    assert result.status == "created"
    assert [v.version for v in data.list(workspace=workspace)] == [result.version]
    assert not any(staging.iterdir())
    assert not any((workspace.state_dir / "tmp").iterdir())
    manifest = json.loads((Path(result.uri) / "manifest.json").read_text())
    assert manifest["report"]["rows_read"] == 15000

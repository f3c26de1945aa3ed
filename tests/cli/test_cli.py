"""The CLI over a real workspace: every list/show has stable --json output,
and bad input gives one line on stderr with exit code 1."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmline.testing.workspace import synthetic_workspace

from .conftest import CLI, run_console_script


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    synthetic_workspace(tmp_path / "ws", 200).close()
    return tmp_path / "ws"


def test_data_build_list_show_lineage_json(cli: CLI, ws: Path) -> None:
    built = cli("data", "build", "python-faq", "--json")
    assert built.code == 0, built.err
    result = built.json()
    assert set(result) == {"dataset", "version", "ref", "status", "content_hash", "uri", "report"}
    assert result["status"] == "created"
    assert set(result["report"]) >= {"rows_read", "exact_duplicates", "pii_redactions", "splits"}

    listed = cli("data", "list", "--json").json()
    assert [v["ref"] for v in listed] == [result["ref"]]
    assert set(listed[0]) == {
        "dataset", "version", "ref", "content_hash", "uri", "created_at", "splits", "rows",
    }  # fmt: skip

    shown = cli("data", "show", "python-faq@latest", "--verify", "--json")
    assert shown.code == 0, shown.err
    doc = shown.json()
    assert doc["verified"] is True
    assert doc["manifest"]["files"]["train.jsonl"]["rows"] == doc["splits"]["train"]

    graph = cli("lineage", "python-faq", "--json").json()
    assert graph["artifact"] == f"dataset:{result['ref']}"
    assert {e["relation"] for e in graph["upstream"]} == {"extracted_into", "templated"}
    prompt_graph = cli("lineage", "prompt:stackoverflow-python@1", "--json").json()
    assert [e["to"] for e in prompt_graph["downstream"]] == [f"dataset:{result['ref']}"]

    again = cli("data", "build", "python-faq")
    assert again.code == 0 and "unchanged" in again.out
    text = cli("lineage", "python-faq").out
    assert "prompt:stackoverflow-python@1" in text


def test_tampered_dataset_fails_verify(cli: CLI, ws: Path) -> None:
    uri = cli("data", "build", "python-faq", "--json").json()["uri"]
    with open(Path(uri) / "train.jsonl", "a") as fh:
        fh.write("{}\n")
    shown = cli("data", "show", "python-faq", "--verify")
    assert shown.code == 1
    assert "train.jsonl was modified" in shown.err
    assert "Traceback" not in shown.err


def test_warehouse_tables_query_and_dialects(cli: CLI, ws: Path) -> None:
    tables = cli("warehouse", "tables", "--json").json()
    assert {t["name"]: t["rows"] for t in tables} == {"posts_answers": 200, "posts_questions": 200}
    assert (
        "accepted_answer_id" in next(t for t in tables if t["name"] == "posts_questions")["columns"]
    )

    bigquery_sql = (
        "SELECT id, CONCAT('#', CAST(id AS STRING)) AS tag "
        "FROM `bigquery-public-data.stackoverflow.posts_questions` "
        "WHERE REGEXP_CONTAINS(tags, r'pandas') ORDER BY id LIMIT 3"
    )
    rows = cli("warehouse", "query", bigquery_sql, "--json").json()
    # Post 8 copies post 2 (a synthetic duplicate), tags included.
    assert rows == [{"id": 2, "tag": "#2"}, {"id": 6, "tag": "#6"}, {"id": 8, "tag": "#8"}]
    duck = cli(
        "warehouse", "query", "SELECT count(*) AS n FROM posts_answers", "--dialect", "duckdb",
        "--json",
    )  # fmt: skip
    assert duck.json() == [{"n": 200}]
    limited = cli("warehouse", "query", "SELECT id FROM posts_answers", "--limit", "5", "--json")
    assert len(limited.json()) == 5

    bad = cli("warehouse", "query", "SELEC id FROM posts_answers")
    assert bad.code == 1 and bad.err.startswith("error: SQL syntax error")
    assert len(bad.err.strip().splitlines()) == 1
    unknown = cli("warehouse", "query", "SELECT 1", "--dialect", "oracle")
    assert unknown.code == 1 and "unknown dialect" in unknown.err


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_warehouse_load_formats(cli: CLI, ws: Path, tmp_path: Path, fmt: str) -> None:
    table = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
    path = tmp_path / f"people.{fmt}"
    if fmt == "csv":
        path.write_text("id,name\n1,a\n2,b\n3,c\n")
    elif fmt == "parquet":
        pq.write_table(table, path)
    else:
        path.write_text(
            "".join(f'{{"id": {i}, "name": "{n}"}}\n' for i, n in [(1, "a"), (2, "b"), (3, "c")])
        )
    assert cli("warehouse", "load", "people", str(path)).code == 0
    assert cli("warehouse", "load", "people", str(path)).code == 0
    count = cli("warehouse", "query", "SELECT count(*) AS n FROM people", "--json").json()
    assert count == [{"n": 6}]
    assert cli("warehouse", "load", "people", str(path), "--replace").code == 0
    assert cli("warehouse", "query", "SELECT count(*) AS n FROM people", "--json").json() == [
        {"n": 3}
    ]


def test_warehouse_load_bad_file_loads_nothing(cli: CLI, ws: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"id": 1}\n{"id": \n')
    result = cli("warehouse", "load", "things", str(bad))
    assert result.code == 1 and "broken.jsonl" in result.err
    tables = [t["name"] for t in cli("warehouse", "tables", "--json").json()]
    assert "things" not in tables
    wrong = cli("warehouse", "load", "things", str(tmp_path / "x.xlsx"))
    assert wrong.code == 1 and "unsupported file type" in wrong.err


def test_import_faq_and_bad_encoding(cli: CLI, ws: Path, tmp_path: Path) -> None:
    faq = tmp_path / "tool.rst"
    faq.write_text(
        "Tool FAQ\n========\n\nUsing it\n--------\n\n"
        "How do I start?\n^^^^^^^^^^^^^^^\n\nRun ``tool start``.\n\n"
        "How do I stop?\n^^^^^^^^^^^^^^\n\nPress *Ctrl-C*.\n"
    )
    result = cli("warehouse", "import-faq", str(faq), "--tag", "tool", "--json")
    assert result.code == 0, result.err
    assert result.json()["questions"] == 2
    rows = cli(
        "warehouse", "query",
        "SELECT title, tags FROM posts_questions WHERE tags LIKE 'tool%' ORDER BY title",
        "--dialect", "duckdb", "--json",
    ).json()  # fmt: skip
    assert rows == [
        {"title": "How do I start?", "tags": "tool|tool-tool"},
        {"title": "How do I stop?", "tags": "tool|tool-tool"},
    ]
    latin = tmp_path / "latin.rst"
    latin.write_bytes("Q\n=\n\nA?\n--\n\ncaf\xe9\n".encode("latin-1"))
    bad = cli("warehouse", "import-faq", str(faq), str(latin))
    assert bad.code == 1
    assert "latin.rst:7" in bad.err and "UTF-8" in bad.err


def test_prompts_commands(cli: CLI, ws: Path, tmp_path: Path) -> None:
    created = cli("prompts", "create", "short", "--template", "Q: {question}", "--json")
    assert created.code == 0 and created.json()["ref"] == "short@1"
    file = tmp_path / "p.txt"
    file.write_text("Question: {question}")
    assert cli("prompts", "create", "short", "--file", str(file)).code == 0
    assert cli("prompts", "alias", "short@2", "production").code == 0
    shown = cli("prompts", "show", "short@production", "--json").json()
    assert (shown["version"], shown["aliases"]) == (2, ["production"])
    names = [p["name"] for p in cli("prompts", "list", "--json").json()]
    assert names == ["short", "stackoverflow-python"]
    both = cli("prompts", "create", "x", "--template", "{q}", "--file", str(file))
    assert both.code == 1 and "exactly one" in both.err
    missing = cli("prompts", "show", "short@staging")
    assert missing.code == 1 and "no alias 'staging'" in missing.err


def test_spec_file_with_bad_sql(cli: CLI, ws: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: broken\ndialect: duckdb\nsql: SELECT id, title AS question FROM\n")
    result = cli("data", "build", str(spec))
    assert result.code == 1 and "SQL syntax error" in result.err
    assert cli("data", "list", "--json").json() == []
    spec.write_text("name: broken\nsplit: {fractions: {train: 2}}\n")
    result = cli("data", "build", str(spec))
    assert result.code == 1 and "must sum to 1" in result.err


def test_console_script_exit_codes(tmp_path: Path) -> None:
    env_free = tmp_path / "empty"
    env_free.mkdir()
    os.environ.pop("LLMLINE_WORKSPACE", None)
    no_ws = run_console_script("data", "list", cwd=env_free)
    assert no_ws.returncode == 1
    assert no_ws.stderr.strip().startswith("error: no llmline.yaml")
    assert "Traceback" not in no_ws.stderr
    usage = run_console_script("data", "frobnicate", cwd=env_free)
    assert usage.returncode == 1 and "Traceback" not in usage.stderr
    init = run_console_script("init", "proj", "--no-sample-data", cwd=env_free)
    assert init.returncode == 0, init.stderr
    empty = run_console_script("data", "build", cwd=env_free / "proj")
    assert empty.returncode == 1
    assert empty.stderr.strip() == "error: query returned 0 rows"
    version = run_console_script("--version", cwd=env_free)
    assert version.returncode == 0 and version.stdout.startswith("llmline ")

"""The data build end to end on a real DuckDB warehouse and SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llmline import data
from llmline.data.spec import DatasetSpec
from llmline.storage.artifacts import sha256_file
from llmline.testing.workspace import synthetic_workspace
from llmline.workspace import Workspace


def _folder(uri: str) -> Path:
    return Path(uri)


def _lines(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_build_writes_jsonl_parquet_and_manifest(workspace: Workspace) -> None:
    result = data.build("python-faq", workspace=workspace)

    assert result.status == "created"
    folder = _folder(result.uri)
    assert folder.name == result.version
    assert result.version.endswith(result.content_hash[:8])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {"train.jsonl", "eval.jsonl", "train.parquet", "eval.parquet"}
    for split in ("train", "eval"):
        rows = _lines(folder / f"{split}.jsonl")
        assert rows, split
        assert all(list(row) == ["input_text", "output_text"] for row in rows)
        assert len(rows) == manifest["splits"][split] == manifest["files"][f"{split}.jsonl"]["rows"]
        table = pq.read_table(folder / f"{split}.parquet")
        assert table.column_names == ["input_text", "output_text"]
        assert table.to_pylist() == rows
    for name, meta in manifest["files"].items():
        assert sha256_file(folder / name) == meta["sha256"]
    assert manifest["template"]["resolved"] == "stackoverflow-python@1"
    assert manifest["seed"] == 42
    assert set(manifest["sources"]) == {"posts_questions", "posts_answers"}
    assert "REGEXP_MATCHES" in manifest["sql"]["executed"]


def test_rows_are_cleaned_templated_and_scrubbed(workspace: Workspace) -> None:
    result = data.build("python-faq", workspace=workspace)
    rows = _lines(_folder(result.uri) / "train.jsonl")
    first = rows[0]
    assert first["input_text"].startswith(
        "Please answer the following Stackoverflow question on Python."
    )
    assert "Stackoverflow question:\nHow do I" in first["input_text"]
    everything = "\n".join(r["input_text"] + r["output_text"] for r in rows)
    assert "<p>" not in everything and "</code>" not in everything
    assert "@example.com" not in everything
    assert "[EMAIL]" in everything
    assert "    return sorted(data)" in everything  # code indentation survives
    assert result.report.pii_redactions["email"] > 0


def test_duplicates_are_removed(workspace: Workspace) -> None:
    report = data.build("python-faq", workspace=workspace).report
    # The synthetic warehouse copies every 50th post verbatim and every 100th
    # with one word changed (see llmline.testing.synthetic).
    assert report.exact_duplicates > 0
    assert report.near_duplicates > 0
    assert (
        report.rows_written == report.rows_read - report.exact_duplicates - report.near_duplicates
    )


def test_rebuild_is_unchanged_and_byte_identical(workspace: Workspace, tmp_path: Path) -> None:
    first = data.build("python-faq", workspace=workspace)
    again = data.build("python-faq", workspace=workspace)
    assert again.status == "unchanged"
    assert again.version == first.version
    assert len(data.list(workspace=workspace)) == 1

    # Same inputs in another workspace: the very same bytes and content hash.
    other = synthetic_workspace(tmp_path / "other", 300)
    twin = data.build("python-faq", workspace=other)
    other.close()
    assert twin.content_hash == first.content_hash
    for name in ("train.jsonl", "eval.jsonl", "train.parquet", "eval.parquet"):
        assert (Path(twin.uri) / name).read_bytes() == (Path(first.uri) / name).read_bytes()


def test_split_is_stable_when_rows_are_added(tmp_path: Path) -> None:
    small = synthetic_workspace(tmp_path / "small", 200)
    large = synthetic_workspace(tmp_path / "large", 400)  # the same 200 posts and 200 more
    splits = []
    for ws in (small, large):
        result = data.build("python-faq", workspace=ws)
        split_of = {}
        for split in ("train", "eval"):
            for row in _lines(Path(result.uri) / f"{split}.jsonl"):
                split_of[row["input_text"], row["output_text"]] = split
        splits.append(split_of)
        ws.close()
    shared = splits[0].keys() & splits[1].keys()
    assert len(shared) > 100
    assert all(splits[0][k] == splits[1][k] for k in shared)


def test_three_way_split_and_custom_spec(workspace: Workspace) -> None:
    spec = DatasetSpec.model_validate(
        {
            "sql": "SELECT id, title AS question, body AS answer FROM posts_questions",
            "dialect": "duckdb",
            "split": {"fractions": {"train": 0.7, "validation": 0.15, "test": 0.15}, "seed": 7},
            "cleaning": {"dedup_near": False},
        }
    )
    result = data.build("titles", spec, workspace=workspace)
    assert set(result.report.splits) == {"train", "validation", "test"}
    assert sum(result.report.splits.values()) == result.report.rows_written
    assert result.report.near_duplicates == 0
    assert result.report.splits["train"] > result.report.splits["test"]


def test_lineage_links_sources_template_and_version(workspace: Workspace) -> None:
    from llmline.storage.lineage import ArtifactRef, walk

    result = data.build("python-faq", workspace=workspace)
    with workspace.metadata.session() as session:
        graph = walk(session, ArtifactRef("dataset", result.ref))
    upstream = {str(e.src) for e in graph.upstream}
    assert "prompt:stackoverflow-python@1" in upstream
    assert any(ref.startswith("table:posts_questions@") for ref in upstream)
    assert any(ref.startswith("table:posts_answers@") for ref in upstream)


@pytest.mark.parametrize("near", [True, False])
def test_streams_many_batches(workspace: Workspace, near: bool) -> None:
    """More rows than one Arrow batch: every batch is processed and staged."""
    from llmline.testing.synthetic import generate_stackoverflow

    generate_stackoverflow(workspace.settings.warehouse_url.removeprefix("duckdb:///"), 12000)
    spec = DatasetSpec.model_validate(
        {
            "cleaning": {"dedup_near": near, "dedup_exact": False},
            "sql": _ALL_ROWS,
            "dialect": "duckdb",
        }
    )
    result = data.build("big", spec, workspace=workspace)
    assert result.report.rows_read == 12000
    assert result.report.rows_written == 12000 - result.report.near_duplicates


_ALL_ROWS = (
    "SELECT q.id, q.title || ' ' || q.body AS question, a.body AS answer "
    "FROM posts_questions q JOIN posts_answers a ON a.id = q.accepted_answer_id"
)


def test_filters_shape_the_default_sql(workspace: Workspace) -> None:
    spec = DatasetSpec.model_validate(
        {"filters": {"tag": "pandas", "since": "2010-01-10", "limit": 20}}
    )
    result = data.build("pandas", spec, workspace=workspace)
    executed = result.manifest["sql"]["executed"]
    assert "'pandas'" in executed and "2010-01-10" in executed and "LIMIT 20" in executed
    assert result.manifest["sql"]["dialect"] == "bigquery"
    assert 0 < result.report.rows_read <= 20


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"sql": "SELECT 1", "filters": {"tag": "x"}}, "filters shape the default SQL"),
        ({"filters": {"tag": "it's"}}, "without quotes"),
        ({"filters": {"limit": 0}}, "greater than 0"),
        ({"split": {"fractions": {"Train": 1.0}}}, "lower-case words"),
        ({"cleaning": {"min_chars": 50, "max_chars": 10}}, "smaller than max_chars"),
    ],
)
def test_invalid_specs(fields: dict[str, object], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        DatasetSpec.model_validate(fields)

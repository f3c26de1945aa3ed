"""``llmline rag``: ingest, list, show and query with --json, and bad input
exiting 1 with one line on stderr."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmline.workspace import init_workspace

from ..rag.conftest import write_corpus
from .conftest import CLI


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    init_workspace(tmp_path / "ws", load_sample_data=False).close()
    return tmp_path / "ws"


def test_ingest_list_show_query_json(cli: CLI, ws: Path, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    (docs / "data.bin").write_bytes(bytes(range(200)))
    ingested = cli("rag", "ingest", "notes", str(docs), "--chunk-size", "64", "--overlap", "8",
                   "--json")  # fmt: skip
    assert ingested.code == 0, ingested.err
    result = ingested.json()
    assert result["status"] == "created" and result["documents"] == 5
    assert result["embedded"] == result["chunks"] and result["reused"] == 0
    assert [Path(s["path"]).name for s in result["skipped"]] == ["data.bin"]
    assert result["skipped"][0]["reason"].startswith("unsupported file type")

    listed = cli("rag", "list", "--json").json()
    assert [v["ref"] for v in listed] == [result["ref"]]
    assert listed[0]["embedding"] == {"model": "sentence-transformers/all-MiniLM-L6-v2", "dim": 384}
    assert listed[0]["chunking"] == {"chunk_size": 64, "overlap": 8}

    shown = cli("rag", "show", "notes", "--json").json()
    assert shown["version"] == result["version"]
    assert len(shown["manifest"]["sources"]) == 5

    found = cli("rag", "query", "notes", "how do bees make honey", "--k", "2", "--json")
    assert found.code == 0, found.err
    doc = found.json()
    assert doc["knowledge_base"] == result["ref"] and doc["mode"] == "hybrid"
    assert [h["rank"] for h in doc["hits"]] == [1, 2]
    top = doc["hits"][0]
    assert top["title"] == "Honey bees" and top["source"].endswith("bees.html")
    assert set(top) >= {"chunk_id", "score", "span", "text", "metadata", "scores"}

    only_pdf = cli("rag", "query", "notes", "bees", "--filter", "type=pdf", "--mode", "dense",
                   "--mmr", "--json").json()  # fmt: skip
    assert only_pdf["hits"] and {h["metadata"]["type"] for h in only_pdf["hits"]} == {"pdf"}

    again = cli("rag", "ingest", "notes", str(docs), "--chunk-size", "64", "--overlap", "8")
    assert again.code == 0 and "unchanged" in again.out and "embedded 0, reused" in again.out
    assert "skipped" in again.out and "data.bin" in again.out


def test_text_output_and_long_query_warning(cli: CLI, ws: Path, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    assert cli("rag", "ingest", "notes", str(docs)).code == 0
    listed = cli("rag", "list")
    assert "notes" in listed.out and "flat-ip" in listed.out
    shown = cli("rag", "show", "notes")
    assert "all-MiniLM-L6-v2 (384 dims)" in shown.out and "bees.html" in shown.out
    long_query = "volcano " * 300
    found = cli("rag", "query", "notes", long_query, "--rerank")
    assert found.code == 0, found.err
    assert "1." in found.out and "Volcanoes" in found.out
    assert found.err.startswith("warning: query is") and "256-piece window" in found.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rag", "query", "nope", "bees"], "no knowledge base named 'nope'"),
        (["rag", "show", "nope"], "no knowledge base named 'nope'"),
        (["rag", "list", "nope"], "no knowledge base named 'nope'"),
        (["rag", "ingest", "notes"], "nothing to ingest"),
        (["rag", "ingest", "notes", "{missing}"], "no such file or folder"),
        (["rag", "ingest", "notes", "--builtin", "wiki"], "no built-in corpus 'wiki'"),
        (["rag", "ingest", "notes", "{junk}"], "nothing to ingest: 1 file(s) skipped"),
        (["rag", "ingest", "notes", "{junk}", "--chunk-size", "4"], "chunk size must be"),
        (["rag", "ingest", "bad/name", "{junk}"], "bad knowledge base name"),
    ],
)
def test_bad_input_exits_1_with_one_line(
    cli: CLI, ws: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.bin").write_bytes(b"\x00\x01")
    filled = [a.format(missing=tmp_path / "missing", junk=junk) for a in args]
    result = cli(*filled)
    assert result.code == 1
    assert message in result.err
    assert result.err.startswith("error: ") and result.err.count("\n") == 1
    assert "Traceback" not in result.err


def test_bad_query_options_exit_1(cli: CLI, ws: Path, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    assert cli("rag", "ingest", "notes", str(docs)).code == 0
    for args, message in [
        (["--mode", "fuzzy"], "unknown search mode"),
        (["--filter", "typepdf"], "--filter must look like FIELD=VALUE"),
        (["--filter", "colour=red"], "unknown filter field"),
        (["--k", "0"], "k must be at least 1"),
    ]:
        result = cli("rag", "query", "notes", "bees", *args)
        assert result.code == 1 and message in result.err, (args, result.err)
        assert "Traceback" not in result.err

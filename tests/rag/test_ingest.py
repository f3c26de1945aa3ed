"""Ingest: versions, files, lineage, embedding reuse, bad input, atomicity
and the embedding-model check, with the real MiniLM model on tiny corpora."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmline.errors import ConfigError, UserError
from llmline.rag import kb as kb_module
from llmline.rag.catalog import get_version, kb_ref, list_versions
from llmline.rag.chunking import ChunkingOptions
from llmline.rag.encoder import MiniLMEncoder
from llmline.rag.ingestion import ingest_knowledge_base
from llmline.rag.kb import open_version
from llmline.storage.artifacts import sha256_file
from llmline.storage.lineage import walk
from llmline.workspace import Workspace

from .conftest import CountingEncoder, Truncated128Encoder, write_corpus

SMALL = ChunkingOptions(64, 16)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_ingest_records_version_files_and_lineage(
    workspace: Workspace, tmp_path: Path, encoder: MiniLMEncoder
) -> None:
    folder = write_corpus(tmp_path / "docs")
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really")
    result = ingest_knowledge_base(workspace, "notes", [folder], options=SMALL, encoder=encoder)
    assert result.status == "created"
    assert (result.documents, result.embedded, result.reused) == (5, result.chunks, 0)
    assert {Path(s.path).name for s in result.skipped} == {"logo.png", "broken.pdf"}

    info = get_version(workspace, "notes")
    assert info.version == result.version and info.chunks == result.chunks
    m = info.manifest
    assert m["embedding"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert m["embedding"]["dim"] == 384 and info.embedding_dim == 384
    assert (m["chunking"]["chunk_size"], m["chunking"]["overlap"]) == (64, 16)
    assert m["index"]["dense"]["type"] == "flat-ip"
    assert {s["uri"]: s["sha256"] for s in m["sources"]} == {
        p.resolve().as_uri(): sha256_file(p) for p in folder.iterdir() if p.suffix != ".png"
        and p.name != "broken.pdf"
    }  # fmt: skip

    root = Path(info.uri)
    for name, meta in m["files"].items():
        assert sha256_file(root / name) == meta["sha256"], name
    assert {"dense.faiss", "embedding.json", "chunks.jsonl", "vectors.npy"} <= set(m["files"])
    assert json.loads((root / "embedding.json").read_text())["dim"] == 384
    vectors = np.load(root / "vectors.npy")
    assert vectors.shape == (result.chunks, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    docs = _jsonl(root / "documents.jsonl")
    for chunk in _jsonl(root / "chunks.jsonl"):
        doc = docs[chunk["doc"]]
        assert doc["text"][chunk["start"] : chunk["end"]] == chunk["text"]

    with workspace.metadata.read_session() as session:
        graph = walk(session, kb_ref("notes", result.version))
    assert [e.relation for e in graph.upstream].count("chunked_into") == 5
    indexed = [e for e in graph.upstream if e.relation == "indexed_into"]
    assert len(indexed) == 1 and indexed[0].src.kind == "chunks"
    assert indexed[0].attributes["chunks"] == result.chunks
    sources = {e.src.ref for e in graph.upstream if e.relation == "chunked_into"}
    assert (folder / "tides.md").resolve().as_uri() + "@" + sha256_file(
        folder / "tides.md"
    ) in sources


def test_reingest_reuses_the_version_and_unchanged_embeddings(
    workspace: Workspace, tmp_path: Path, encoder: MiniLMEncoder
) -> None:
    folder = write_corpus(tmp_path / "docs")
    counting = CountingEncoder(encoder)
    first = ingest_knowledge_base(workspace, "notes", [folder], options=SMALL, encoder=counting)
    embedded_first = counting.embedded
    assert embedded_first >= first.chunks

    files = sorted(folder.iterdir(), reverse=True)  # named one by one, in another order
    again = ingest_knowledge_base(workspace, "notes", files, options=SMALL, encoder=counting)
    assert (again.status, again.version) == ("unchanged", first.version)
    assert (again.embedded, again.reused) == (0, first.chunks)
    assert counting.embedded == embedded_first  # nothing was embedded
    assert len(list_versions(workspace, "notes")) == 1

    with open(folder / "chess.txt", "a", encoding="utf-8") as fh:
        fh.write("\nA pawn that reaches the last rank is promoted, usually to a queen.\n")
    changed = ingest_knowledge_base(workspace, "notes", [folder], options=SMALL, encoder=counting)
    assert changed.status == "created" and changed.version != first.version
    root = Path(get_version(workspace, changed.ref).uri)
    chunks = _jsonl(root / "chunks.jsonl")
    chess = [c for c in chunks if c["metadata"]["source"].endswith("chess.txt")]
    assert changed.embedded == len(chess) and changed.reused == len(chunks) - len(chess) > 0
    assert counting.embedded - embedded_first == sum(c["w1"] - c["w0"] for c in chess)
    # A reused vector is the earlier version's vector for the same chunk text.
    old_root = Path(get_version(workspace, first.ref).uri)
    old = {c["key"]: i for i, c in enumerate(_jsonl(old_root / "chunks.jsonl"))}
    old_vectors, new_vectors = np.load(old_root / "vectors.npy"), np.load(root / "vectors.npy")
    reused = [(old[c["key"]], i) for i, c in enumerate(chunks) if c["key"] in old]
    assert len(reused) == changed.reused
    assert all(np.array_equal(old_vectors[a], new_vectors[b]) for a, b in reused)

    other = ingest_knowledge_base(
        workspace, "notes", [folder], options=ChunkingOptions(48, 8), encoder=counting
    )
    assert other.status == "created"  # chunking is part of a version's identity


def test_nothing_to_ingest(workspace: Workspace, tmp_path: Path, encoder: MiniLMEncoder) -> None:
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.bin").write_bytes(os.urandom(128))
    (folder / "b.pdf").write_bytes(b"%PDF-1.4 truncated")
    with pytest.raises(UserError, match=r"nothing to ingest: 2 file\(s\) skipped .*a\.bin"):
        ingest_knowledge_base(workspace, "junk", [folder], encoder=encoder)
    with pytest.raises(UserError, match="nothing to ingest"):
        ingest_knowledge_base(workspace, "junk", [], encoder=encoder)
    with pytest.raises(UserError, match="bad knowledge base name"):
        ingest_knowledge_base(workspace, "../escape", [folder], encoder=encoder)
    assert list_versions(workspace) == []


_KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
from typing import Any
from llmline.rag.chunking import ChunkingOptions
from llmline.rag.ingestion import ingest_knowledge_base
from llmline.workspace import Workspace

def progress(stage, done, total):
    if stage == "write" and done == 2:  # vectors and chunks written; no index, no manifest
        os.kill(os.getpid(), signal.SIGKILL)

ingest_knowledge_base(
    Workspace(Path(sys.argv[1])), "notes", [sys.argv[2]],
    options=ChunkingOptions(64, 16), on_progress=progress,
)
"""


def test_killed_ingest_leaves_no_version(
    workspace: Workspace, tmp_path: Path, encoder: MiniLMEncoder
) -> None:
    folder = write_corpus(tmp_path / "docs")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, str(workspace.root), str(folder)],
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    artifacts = Path(workspace.artifacts.root)
    staging = artifacts / ".staging"
    leftovers = list(staging.iterdir())
    assert leftovers and any((d / "vectors.npy").exists() for d in leftovers)  # half-written
    assert list_versions(workspace) == []
    assert not (artifacts / "knowledge-bases").exists()

    result = ingest_knowledge_base(workspace, "notes", [folder], options=SMALL, encoder=encoder)
    assert result.status == "created"
    assert not any(d.exists() for d in leftovers)  # the dead process's staging was swept


def test_other_embedding_model_or_dimension_is_refused(
    workspace: Workspace, tmp_path: Path, encoder: MiniLMEncoder
) -> None:
    folder = write_corpus(tmp_path / "docs")
    result = ingest_knowledge_base(workspace, "notes", [folder], options=SMALL, encoder=encoder)
    with pytest.raises(ConfigError, match=r"\(384 dims\).*\(128 dims\)"):
        open_version(workspace, "notes", Truncated128Encoder(encoder))

    small = ingest_knowledge_base(
        workspace, "small", [folder], options=SMALL, encoder=Truncated128Encoder(encoder)
    )
    with open_version(workspace, small.ref, Truncated128Encoder(encoder)) as kb:
        assert kb.search("volcano lava", k=1)[0].title == "Volcanoes"
    with pytest.raises(ConfigError, match="128 dims"):
        open_version(workspace, small.ref, encoder)

    embedding = Path(get_version(workspace, result.ref).uri) / "embedding.json"
    stored = json.loads(embedding.read_text())
    embedding.write_text(json.dumps({**stored, "model": "BAAI/bge-small-en-v1.5"}))
    with pytest.raises(ConfigError) as caught:
        open_version(workspace, "notes", encoder)
    assert "BAAI/bge-small-en-v1.5" in str(caught.value)
    assert "sentence-transformers/all-MiniLM-L6-v2" in str(caught.value)


def test_approximate_index_above_the_threshold_matches_exact_search(
    workspace: Workspace, tmp_path: Path, encoder: MiniLMEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_corpus(tmp_path / "docs")
    flat = ingest_knowledge_base(workspace, "flat", [folder], options=SMALL, encoder=encoder)
    hnsw = ingest_knowledge_base(
        workspace, "graph", [folder], options=SMALL, encoder=encoder, approx_threshold=1
    )
    assert (flat.index, hnsw.index) == ("flat-ip", "ivf-flat")
    with (
        open_version(workspace, "flat", encoder) as a,
        open_version(workspace, "graph", encoder) as b,
    ):
        for query in ("tides and the moon", "how bees make honey", "knight moves"):
            exact = [(h.chunk_id, round(h.score, 4)) for h in a.search(query, k=3, mode="dense")]
            approx = [(h.chunk_id, round(h.score, 4)) for h in b.search(query, k=3, mode="dense")]
            assert approx == exact
        expected = a.search("volcano", k=3, mode="dense", filters={"type": "pdf"})
        # Make the filtered search go through FAISS's ID selector, not the exact scan.
        monkeypatch.setattr(kb_module, "EXACT_FILTER_ROWS", 0)
        filtered = b.search("volcano", k=3, mode="dense", filters={"type": "pdf"})
        assert filtered and {h.metadata["type"] for h in filtered} == {"pdf"}
        assert [h.chunk_id for h in filtered] == [h.chunk_id for h in expected]

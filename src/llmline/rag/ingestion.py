"""``rag ingest``: files and built-in corpora → a versioned knowledge base.

1. read every source (skipping unusable files with their reasons);
2. chunk each document on its structure, counting MiniLM word pieces;
3. hash the result: sources, chunks, chunking, embedding model and index
   type.  A version with that hash already recorded is the answer: nothing
   is embedded or written again;
4. embed each chunk as windows of the model's 256-piece input (a chunk
   longer than that gets several, averaged into its index vector), each
   prefixed with its document title and section, reusing the vectors of
   any earlier version's chunk with the same text and prefix;
5. write the vectors, FAISS and BM25 indexes, chunks and documents into a
   staging folder, publish it atomically and record the version with its
   lineage in one metadata transaction (the commit point).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from llmline.errors import UserError
from llmline.rag.catalog import (
    KnowledgeBaseInfo,
    check_name,
    find_by_hash,
    list_versions,
    local_folder,
    record_version,
)
from llmline.rag.chunking import Chunk, ChunkingOptions, TokenIndex, chunk_document
from llmline.rag.config import RagSettings
from llmline.rag.encoder import Encoder, MiniLMEncoder, Vectors
from llmline.rag.index import APPROX_THRESHOLD, build_bm25
from llmline.rag.sources import SkippedFile, SourceDocument, collect_sources
from llmline.rag.stores import build_dense_index, dense_index_spec, placed_spec
from llmline.storage.artifacts import sha256_file
from llmline.workspace import Workspace

__all__ = [
    "EMBEDDING_SCHEME",
    "FORMAT",
    "IngestResult",
    "ProgressCallback",
    "ingest_knowledge_base",
]

ProgressCallback = Callable[[str, int, int], None]  # stage, done, total
FORMAT = "llmline-kb/1"
EMBEDDING_SCHEME = "title-section-prefixed mean of window embeddings/1"
HEADER_TOKENS = 32
EMBED_BATCH = 128
MANIFEST = "manifest.json"


@dataclass
class IngestResult:
    knowledge_base: str
    version: str
    status: Literal["created", "unchanged"]
    content_hash: str
    uri: str
    documents: int
    chunks: int
    embedded: int  # chunks whose vectors were computed in this run
    reused: int  # chunks whose vectors came from an earlier version
    index: str
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.knowledge_base}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "knowledge_base": self.knowledge_base,
            "version": self.version,
            "ref": self.ref,
            "status": self.status,
            "content_hash": self.content_hash,
            "uri": self.uri,
            "documents": self.documents,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "reused": self.reused,
            "index": self.index,
            "skipped": [s.to_dict() for s in self.skipped],
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class _Planned:
    """One chunk, ready to embed."""

    doc: int
    ordinal: int
    chunk: Chunk
    text: str
    header: str
    windows: tuple[str, ...]
    sha256: str  # of the chunk text
    key: str  # of what is embedded (header + text + window size): the cache key


def ingest_knowledge_base(
    workspace: Workspace,
    name: str,
    paths: Sequence[str | Path] = (),
    *,
    builtins: Sequence[str] = (),
    options: ChunkingOptions | None = None,
    encoder: Encoder | None = None,
    approx_threshold: int = APPROX_THRESHOLD,
    description: str = "",
    on_progress: ProgressCallback | None = None,
) -> IngestResult:
    """Ingest ``paths`` (files and folders) and ``builtins`` into knowledge base ``name``."""
    check_name(name)
    options = options or ChunkingOptions()
    encoder = encoder or MiniLMEncoder()
    progress = on_progress or (lambda _stage, _done, _total: None)
    clock = _Clock()
    docs, skipped = collect_sources(paths, builtins)
    if not docs:
        raise UserError(_nothing_to_ingest(paths, builtins, skipped))
    clock.lap("read")
    planned = _plan(docs, encoder, options, progress)
    if not planned:
        raise UserError("nothing to ingest: the documents hold no text the model can read")
    clock.lap("chunk")
    embedding = _embedding_block(encoder)
    rag = workspace.settings.rag
    spec = dense_index_spec(rag, len(planned), approx_threshold)
    content_hash = _content_hash(docs, planned, options, embedding, spec)
    spec = placed_spec(spec, name, content_hash)
    existing = find_by_hash(workspace, name, content_hash)
    if existing is not None:
        return _result(
            existing,
            "unchanged",
            embedded=0,
            reused=len(planned),
            skipped=skipped,
            seconds=clock.done(),
        )
    workspace.artifacts.remove_stale_staging()
    with workspace.artifacts.stage() as out:
        windows, embedded = _embed(
            workspace, name, planned, encoder=encoder, embedding=embedding, progress=progress
        )
        clock.lap("embed")
        _write_data(out, docs, planned, cache=windows, spec=spec, rag=rag, progress=progress)
        clock.lap("index")
        manifest = _manifest(
            name,
            docs,
            planned,
            options=options,
            embedding=embedding,
            spec=spec,
            content_hash=content_hash,
        )
        manifest["report"] = {
            "embedded": embedded,
            "reused": len(planned) - embedded,
            "skipped": [s.to_dict() for s in skipped],
        }
        info, created = _publish(workspace, name, out, manifest, description)
    if not created:  # another process recorded the same content first
        return _result(
            info,
            "unchanged",
            embedded=0,
            reused=len(planned),
            skipped=skipped,
            seconds=clock.done(),
        )
    return _result(
        info,
        "created",
        embedded=embedded,
        reused=len(planned) - embedded,
        skipped=skipped,
        seconds=clock.done(),
    )


def _nothing_to_ingest(
    paths: Sequence[str | Path], builtins: Sequence[str], skipped: list[SkippedFile]
) -> str:
    if not paths and not builtins:
        return "nothing to ingest: name files or folders, or a built-in corpus"
    if not skipped:
        return "nothing to ingest: the folders hold no files"
    reasons = "; ".join(f"{Path(s.path).name}: {s.reason}" for s in skipped[:5])
    more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return f"nothing to ingest: {len(skipped)} file(s) skipped ({reasons}{more})"


class _Clock:
    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(now - self.last, 3)
        self.last = now

    def done(self) -> dict[str, float]:
        return {**self.laps, "total": round(time.perf_counter() - self.start, 3)}


# -- chunk and hash ---------------------------------------------------------------------
def _plan(
    docs: list[SourceDocument],
    encoder: Encoder,
    options: ChunkingOptions,
    progress: ProgressCallback,
) -> list[_Planned]:
    planned: list[_Planned] = []
    for i, doc in enumerate(docs):
        tokens = TokenIndex(encoder.token_spans(doc.text))
        chunks = chunk_document(doc.text, doc.kind, tokens, options, page_starts=doc.page_starts)
        ordinal = 0
        for chunk in chunks:
            if chunk.tokens == 0:  # only characters the tokenizer drops: nothing to find
                continue
            planned.append(_planned(i, ordinal, doc, chunk, tokens=tokens, encoder=encoder))
            ordinal += 1
        progress("chunk", i + 1, len(docs))
    return planned


def _header(doc: SourceDocument, chunk: Chunk, encoder: Encoder) -> tuple[str, int]:
    """``title — section``, capped at HEADER_TOKENS word pieces; and its length."""
    title = " ".join(doc.title.split())
    section = " ".join(chunk.section.split())
    header = title if not section or section == title else f"{title} — {section}"
    spans = encoder.token_spans(header)
    if len(spans) > HEADER_TOKENS:
        header, spans = header[: spans[HEADER_TOKENS - 1][1]], spans[:HEADER_TOKENS]
    return header, len(spans)


def _planned(
    i: int, ordinal: int, doc: SourceDocument, chunk: Chunk, *, tokens: TokenIndex, encoder: Encoder
) -> _Planned:
    header, header_tokens = _header(doc, chunk, encoder)
    # Two special tokens ([CLS], [SEP]) and the header share the model's window.
    budget = encoder.max_tokens - 2 - header_tokens
    spans = tokens.spans
    windows = tuple(
        f"{header}\n{doc.text[spans[a][0] : spans[min(a + budget, chunk.token_end) - 1][1]]}"
        for a in range(chunk.token_start, chunk.token_end, budget)
    )
    text = doc.text[chunk.start : chunk.end]
    key = hashlib.sha256(f"{budget}\x00{header}\x00{text}".encode()).hexdigest()
    return _Planned(
        i, ordinal, chunk, text, header, windows, hashlib.sha256(text.encode()).hexdigest(), key
    )


def _embedding_block(encoder: Encoder) -> dict[str, Any]:
    return {
        "model": encoder.name,
        "dim": encoder.dim,
        "max_tokens": encoder.max_tokens,
        "normalized": True,
        "metric": "inner_product",
        "scheme": EMBEDDING_SCHEME,
        "header_tokens": HEADER_TOKENS,
    }


def _chunk_set_hash(docs: list[SourceDocument], planned: list[_Planned]) -> str:
    digest = hashlib.sha256()
    for p in planned:
        digest.update(
            f"{docs[p.doc].sha256}\t{p.chunk.start}\t{p.chunk.end}\t{p.sha256}\n".encode()
        )
    return digest.hexdigest()


def _content_hash(
    docs: list[SourceDocument],
    planned: list[_Planned],
    options: ChunkingOptions,
    embedding: dict[str, Any],
    spec: dict[str, Any],
) -> str:
    """Identity of a version: what it holds and how it was indexed, not its
    files' bytes (an approximate index built on several threads can differ run to run)."""
    from llmline.rag.index import BM25_TOKENIZER

    document = {
        "format": FORMAT,
        "sources": [[d.uri, d.sha256, d.kind, d.title] for d in docs],
        "chunks": _chunk_set_hash(docs, planned),
        "keys": hashlib.sha256("".join(p.key for p in planned).encode()).hexdigest(),
        "chunking": [options.chunk_size, options.overlap],
        "embedding": embedding,
        "dense": spec,
        "bm25": BM25_TOKENIZER,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


# -- embed --------------------------------------------------------------------------------
def _embed(
    workspace: Workspace,
    name: str,
    planned: list[_Planned],
    *,
    encoder: Encoder,
    embedding: dict[str, Any],
    progress: ProgressCallback,
) -> tuple[dict[str, Vectors], int]:
    """Window vectors per cache key, and how many chunks needed embedding."""
    wanted = {p.key: p for p in planned}
    cache = _cached_windows(workspace, name, embedding, set(wanted))
    todo = [p for key, p in wanted.items() if key not in cache]
    texts = [w for p in todo for w in p.windows]
    flat = _embed_sorted(texts, encoder, progress)
    pos = 0
    for p in todo:
        cache[p.key] = flat[pos : pos + len(p.windows)]
        pos += len(p.windows)
    todo_keys = {p.key for p in todo}
    embedded = sum(1 for p in planned if p.key in todo_keys)
    return cache, embedded


def _embed_sorted(texts: list[str], encoder: Encoder, progress: ProgressCallback) -> Vectors:
    """Embed in batches of similar length (a batch is padded to its longest
    text, so mixing a short tail window with full ones wastes compute)."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    flat = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    for start in range(0, len(order), EMBED_BATCH):
        rows = order[start : start + EMBED_BATCH]
        vectors = encoder.embed([texts[i] for i in rows])
        if vectors.shape != (len(rows), encoder.dim):
            raise UserError(
                f"embedder {encoder.name} returned vectors of shape {vectors.shape}, "
                f"expected ({len(rows)}, {encoder.dim})"
            )
        flat[rows] = vectors
        progress("embed", start + len(rows), len(texts))
    return flat


def _cached_windows(
    workspace: Workspace, name: str, embedding: dict[str, Any], keys: set[str]
) -> dict[str, Vectors]:
    """Window vectors of earlier versions' chunks, by cache key, newest first."""
    found: dict[str, Vectors] = {}
    try:
        versions = list_versions(workspace, name)
    except UserError:  # a new knowledge base: nothing to reuse
        return found
    for info in reversed(versions):
        if info.manifest.get("embedding") != embedding or len(found) == len(keys):
            continue
        if not workspace.artifacts.is_local:
            break  # reuse reads local, memory-mapped files
        folder = local_folder(workspace, info)
        windows = np.load(folder / "windows.npy", mmap_mode="r")
        for row in _read_jsonl(folder / "chunks.jsonl"):
            if row["key"] in keys and row["key"] not in found:
                found[row["key"]] = np.array(windows[row["w0"] : row["w1"]], dtype=np.float32)
    return found


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# -- write and publish --------------------------------------------------------------------
def _write_data(
    out: Path,
    docs: list[SourceDocument],
    planned: list[_Planned],
    *,
    cache: dict[str, Vectors],
    spec: dict[str, Any],
    rag: RagSettings,
    progress: ProgressCallback,
) -> None:
    steps = 5
    progress("write", 0, steps)
    window_rows = [cache[p.key] for p in planned]
    windows = np.concatenate(window_rows).astype(np.float32)
    pooled = np.stack([w.mean(axis=0) for w in window_rows]).astype(np.float32)
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    np.save(out / "windows.npy", windows)
    np.save(out / "vectors.npy", pooled)
    progress("write", 1, steps)
    _write_jsonl(out / "documents.jsonl", [d.to_dict() for d in docs])
    _write_jsonl(out / "chunks.jsonl", _chunk_rows(docs, planned, [len(w) for w in window_rows]))
    progress("write", 2, steps)
    build_dense_index(pooled, out, spec, rag)
    progress("write", 3, steps)
    (out / "bm25").mkdir()
    build_bm25([f"{p.header}\n{p.text}" for p in planned], out / "bm25")
    progress("write", 4, steps)


def _chunk_rows(
    docs: list[SourceDocument], planned: list[_Planned], window_counts: list[int]
) -> list[dict[str, Any]]:
    import bisect

    rows, w0 = [], 0
    for p, n in zip(planned, window_counts, strict=True):
        doc = docs[p.doc]
        meta: dict[str, Any] = {"source": doc.uri, "type": doc.kind, "title": doc.title}
        meta["section"] = p.chunk.section
        if doc.page_starts:
            meta["page"] = bisect.bisect_right(doc.page_starts, p.chunk.start)
        rows.append(
            {
                "id": f"{doc.sha256[:12]}-{p.ordinal}",
                "doc": p.doc,
                "start": p.chunk.start,
                "end": p.chunk.end,
                "tokens": p.chunk.tokens,
                "sha256": p.sha256,
                "key": p.key,
                "w0": w0,
                "w1": w0 + n,
                "text": p.text,
                "metadata": meta,
            }
        )
        w0 += n
    return rows


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _manifest(
    name: str,
    docs: list[SourceDocument],
    planned: list[_Planned],
    *,
    options: ChunkingOptions,
    embedding: dict[str, Any],
    spec: dict[str, Any],
    content_hash: str,
) -> dict[str, Any]:
    from llmline import __version__
    from llmline.rag.index import BM25_TOKENIZER

    per_doc = [0] * len(docs)
    for p in planned:
        per_doc[p.doc] += 1
    return {
        "format": FORMAT,
        "knowledge_base": name,
        "content_hash": content_hash,
        "chunk_set_hash": _chunk_set_hash(docs, planned),
        "embedding": embedding,
        "chunking": {
            "chunk_size": options.chunk_size,
            "overlap": options.overlap,
            "unit": f"word pieces of the {embedding['model']} tokenizer",
        },
        "index": {"dense": spec, "bm25": {"type": "bm25s", "tokenizer": BM25_TOKENIZER}},
        "counts": {
            "documents": len(docs),
            "chunks": len(planned),
            "windows": sum(len(p.windows) for p in planned),
            "tokens": sum(p.chunk.tokens for p in planned),
        },
        "sources": [
            {"uri": d.uri, "title": d.title, "type": d.kind, "sha256": d.sha256}
            | {"bytes": d.size, "chunks": n}
            for d, n in zip(docs, per_doc, strict=True)
        ],
        "report": {},
        "llmline_version": __version__,
    }


def _publish(
    workspace: Workspace, name: str, out: Path, manifest: dict[str, Any], description: str
) -> tuple[KnowledgeBaseInfo, bool]:
    """Publish the staged folder and record it; True if this call recorded it."""
    created = datetime.now(UTC).replace(microsecond=0)
    version = f"{created:%Y%m%dT%H%M%SZ}-{manifest['content_hash'][:8]}"
    # The model name and dimension sit next to the index: opening checks them.
    (out / "embedding.json").write_text(json.dumps(manifest["embedding"], indent=2) + "\n")
    files = sorted(p for p in out.rglob("*") if p.is_file())
    manifest = {
        "version": version,
        "created_at": created.isoformat(),
        **manifest,
        "files": {
            str(p.relative_to(out)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in files
        },
    }
    # Written last: a folder with a manifest is complete (object stores get it last too).
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    relpath = f"knowledge-bases/{name}/{version}"
    if not workspace.artifacts.publish(out, relpath):
        raise UserError(f"artifact folder {relpath} already exists; retry in a second")
    info = KnowledgeBaseInfo(
        name=name,
        version=version,
        content_hash=manifest["content_hash"],
        uri=workspace.artifacts.uri(relpath),
        created_at=created,
        embedding_model=manifest["embedding"]["model"],
        embedding_dim=manifest["embedding"]["dim"],
        chunks=manifest["counts"]["chunks"],
        manifest=manifest,
    )
    earlier = record_version(workspace, info, description=description)
    return (info, True) if earlier is None else (earlier, False)


def _result(
    info: KnowledgeBaseInfo,
    status: Literal["created", "unchanged"],
    *,
    embedded: int,
    reused: int,
    skipped: list[SkippedFile],
    seconds: dict[str, float],
) -> IngestResult:
    return IngestResult(
        knowledge_base=info.name,
        version=info.version,
        status=status,
        content_hash=info.content_hash,
        uri=info.uri,
        documents=info.documents,
        chunks=info.chunks,
        embedded=embedded,
        reused=reused,
        index=info.index_type,
        skipped=skipped,
        seconds=seconds,
    )

"""Where a knowledge base's dense index lives: a FAISS file or a pgvector table.

Ingest picks by the ``rag.vector_store`` setting and records the choice in
the manifest's ``index.dense`` block; opening a version follows the manifest,
so a knowledge base keeps working after the setting changes as long as its
store is still reachable.  Everything else of a version (chunks, vectors.npy
for exact filtered search and MMR, BM25) stays in the artifact store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmline.errors import ConfigError
from llmline.rag.config import RagSettings, is_pgvector
from llmline.rag.encoder import Vectors
from llmline.rag.index import FaissIndex, VectorIndex, build_dense, dense_spec

__all__ = [
    "FAISS_FILE",
    "build_dense_index",
    "dense_index_spec",
    "open_dense_index",
    "placed_spec",
]

FAISS_FILE = "dense.faiss"


def dense_index_spec(settings: RagSettings, count: int, approx_threshold: int) -> dict[str, Any]:
    """The dense index ingest builds for ``count`` vectors under ``settings``."""
    if is_pgvector(settings.vector_store):
        from llmline.rag.pgvector import connect, pgvector_spec

        # Fail before anything is embedded: an unreachable server, or one
        # without the extension, is a one-line ConfigError now, not after minutes.
        connect(settings.vector_store).close()
        return pgvector_spec(settings)
    return dense_spec(count, approx_threshold)


def placed_spec(spec: dict[str, Any], kb_name: str, content_hash: str) -> dict[str, Any]:
    """``spec`` with the pgvector table it is written to (named after the content,
    known only once the content hash is: the hash covers ``spec`` itself)."""
    from llmline.rag.pgvector import PGVECTOR, table_name

    if spec["type"] != PGVECTOR:
        return spec
    return {**spec, "table": table_name(kb_name, content_hash)}


def build_dense_index(
    vectors: Vectors, folder: Path, spec: dict[str, Any], settings: RagSettings
) -> None:
    from llmline.rag.pgvector import PGVECTOR, PgVectorIndex

    if spec["type"] == PGVECTOR:
        PgVectorIndex.populate(settings.vector_store, spec["table"], vectors, spec)
    else:
        build_dense(vectors, folder / FAISS_FILE, spec)


def open_dense_index(
    folder: Path, spec: dict[str, Any], settings: RagSettings, ref: str
) -> VectorIndex:
    from llmline.rag.pgvector import PGVECTOR, PgVectorIndex

    if spec["type"] != PGVECTOR:
        return FaissIndex.load(folder / FAISS_FILE, spec)
    if not is_pgvector(settings.vector_store):
        raise ConfigError(
            f"knowledge base {ref} keeps its vectors in PostgreSQL ({spec['server']}, "
            f"table {spec['table']}): set rag.vector_store to that server's URL"
        )
    return PgVectorIndex.open(
        settings.vector_store, spec["table"], ef_search=int(spec["ef_search"])
    )

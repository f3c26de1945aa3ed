"""The ``rag:`` section of ``llmline.yaml``: where knowledge bases keep their vectors.

``vector_store: faiss`` (the default) writes a FAISS index file next to each
knowledge base version and reads it memory-mapped.  A ``postgresql://`` URL
puts the dense index in PostgreSQL with the pgvector extension instead (an
HNSW index with cosine distance), for teams that already run one::

    rag:
      vector_store: postgresql://llmline@db.internal:5432/vectors

The URL can also come from ``$LLMLINE_RAG__VECTOR_STORE``, which keeps a
password out of the file.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["FAISS", "PG_SCHEMES", "RagSettings", "is_pgvector", "redact_url"]

FAISS = "faiss"
PG_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")


def is_pgvector(vector_store: str) -> bool:
    """True if ``vector_store`` names a PostgreSQL (pgvector) server."""
    return vector_store.startswith(PG_SCHEMES)


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for manifests and messages)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, has_password, _password = credentials.partition(":")
    return f"{scheme}://{user}{':***' if has_password else ''}@{host}"


class RagSettings(BaseModel):
    """Knowledge-base settings."""

    model_config = ConfigDict(extra="forbid")

    vector_store: str = Field(
        default=FAISS,
        description="faiss (embedded, the default) or a postgresql:// URL of a server "
        "with the pgvector extension",
    )
    pgvector_m: int = Field(default=16, ge=2, le=100, description="pgvector HNSW m")
    pgvector_ef_construction: int = Field(
        default=64, ge=4, le=1000, description="pgvector HNSW ef_construction"
    )
    pgvector_ef_search: int = Field(
        default=100, ge=1, le=1000, description="pgvector hnsw.ef_search at query time"
    )

    @field_validator("vector_store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if value != FAISS and not is_pgvector(value):
            raise ValueError(
                f"unknown vector_store {redact_url(value)!r}: use 'faiss' or a "
                "postgresql://USER@HOST:PORT/DATABASE URL (pgvector)"
            )
        return value

"""The pgvector scale path: settings, the SQL it runs, and its errors against a
real PostgreSQL server.  The server here has no pgvector extension (Debian's
``postgresql-NN-pgvector`` is not available on this machine), so loading and
searching vectors in PostgreSQL is not covered; see docs/rag-scale.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
from pydantic import ValidationError

from llmline.errors import ConfigError, UserError
from llmline.rag.catalog import list_versions
from llmline.rag.chunking import ChunkingOptions
from llmline.rag.config import RagSettings, is_pgvector, redact_url
from llmline.rag.encoder import MiniLMEncoder
from llmline.rag.index import FaissIndex, VectorIndex, build_dense, dense_spec
from llmline.rag.ingestion import ingest_knowledge_base
from llmline.rag.pgvector import (
    PGVECTOR,
    PgVectorIndex,
    create_index_sql,
    create_table_sql,
    pgvector_spec,
    search_sql,
    table_name,
)
from llmline.rag.stores import dense_index_spec, open_dense_index, placed_spec
from llmline.settings import Settings
from llmline.testing import free_port
from llmline.workspace import Workspace

from .conftest import CountingEncoder

NOT_INSTALLED = "the pgvector extension is not installed on this server"


def test_settings_accept_faiss_and_postgres_urls_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().rag.vector_store == "faiss"
    url = "postgresql://kb:secret@db.internal:5432/vectors"
    assert RagSettings(vector_store=url).vector_store == url
    with pytest.raises(ValidationError, match=r"unknown vector_store 'sqlite:///x\.db'"):
        RagSettings(vector_store="sqlite:///x.db")
    monkeypatch.setenv("LLMLINE_RAG__VECTOR_STORE", url)
    assert Settings().rag.vector_store == url
    assert is_pgvector(url) and not is_pgvector("faiss")


def test_urls_are_redacted_in_manifests_and_messages() -> None:
    assert redact_url("postgresql://kb:secret@db:5432/v") == "postgresql://kb:***@db:5432/v"
    assert redact_url("postgresql://kb@db/v") == "postgresql://kb@db/v"
    assert redact_url("faiss") == "faiss"
    spec = pgvector_spec(RagSettings(vector_store="postgresql://kb:pw@db/v", pgvector_m=24))
    assert spec == {
        "type": PGVECTOR,
        "metric": "cosine",
        "server": "postgresql://kb:***@db/v",
        "M": 24,
        "ef_construction": 64,
        "ef_search": 100,
    }


def test_table_names_fit_postgres_identifiers() -> None:
    digest = "0123456789abcdef" * 4
    assert table_name("python-docs", digest) == "llmline_kb_python_docs_0123456789abcdef"
    long = table_name("x" * 200, digest)
    assert len(long) == 63 and long.endswith("_0123456789abcdef")
    placed = placed_spec(pgvector_spec(RagSettings(vector_store="postgresql://h/d")), "kb", digest)
    assert placed["table"] == "llmline_kb_kb_0123456789abcdef"
    flat = dense_spec(10)
    assert placed_spec(flat, "kb", digest) is flat  # FAISS files need no table


def test_generated_sql() -> None:
    table = "llmline_kb_docs_0123"
    assert create_table_sql(table, 384).as_string() == (
        'CREATE TABLE IF NOT EXISTS "llmline_kb_docs_0123" '
        "(row bigint PRIMARY KEY, embedding vector(384) NOT NULL)"
    )
    assert create_index_sql(table, 16, 64).as_string() == (
        'CREATE INDEX IF NOT EXISTS "llmline_kb_docs_0123_hnsw" ON "llmline_kb_docs_0123" '
        "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
    )
    assert search_sql(table, filtered=False).as_string() == (
        'SELECT row, 1 - (embedding <=> %s) AS score FROM "llmline_kb_docs_0123" '
        "ORDER BY embedding <=> %s LIMIT %s"
    )
    assert " WHERE row = ANY(%s) ORDER BY" in search_sql(table, filtered=True).as_string()
    # A hostile knowledge-base name cannot leave the identifier.
    assert '"a""b"' in create_table_sql('a"b', 3).as_string()


def test_faiss_index_is_a_vector_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((50, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    spec = dense_spec(len(vectors))
    build_dense(vectors, tmp_path / "dense.faiss", spec)
    index = open_dense_index(tmp_path, spec, RagSettings(), "kb@1")
    assert isinstance(index, FaissIndex) and isinstance(index, VectorIndex)
    assert (index.dim, index.ntotal) == (8, 50)
    best = index.search(vectors[7:8], 3)
    assert best[0][0] == 7 and best[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [row for row, _ in index.search(vectors[7:8], 3, np.array([1, 2], np.int64))] in (
        [1, 2],
        [2, 1],
    )


def test_pgvector_knowledge_base_needs_a_postgres_setting(tmp_path: Path) -> None:
    spec = {**pgvector_spec(RagSettings(vector_store="postgresql://kb@db/v")), "table": "t1"}
    with pytest.raises(ConfigError, match=r"keeps its vectors in PostgreSQL .*table t1"):
        open_dense_index(tmp_path, spec, RagSettings(), "docs@1")


def test_unreachable_server_is_one_line_error() -> None:
    url = f"postgresql://kb:secret@127.0.0.1:{free_port()}/vectors"
    with pytest.raises(ConfigError, match="cannot connect to vector store") as caught:
        PgVectorIndex.open(url, "t")
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.postgres
def test_server_without_extension_is_refused(postgres_url: str) -> None:
    with pytest.raises(ConfigError, match=NOT_INSTALLED) as caught:
        PgVectorIndex.open(postgres_url, "llmline_kb_docs_0123")
    assert "apt-get install postgresql-" in str(caught.value)
    with pytest.raises(ConfigError, match=NOT_INSTALLED):
        dense_index_spec(RagSettings(vector_store=postgres_url), 10, 20_000)
    with psycopg.connect(postgres_url) as conn:  # nothing was created on the server
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'llmline_kb_%'"
        ).fetchone()
        assert tables == (0,)


@pytest.mark.postgres
def test_ingest_into_server_without_extension_fails_before_embedding(
    workspace: Workspace, tmp_path: Path, encoder: MiniLMEncoder, postgres_url: str
) -> None:
    (tmp_path / "tides.md").write_text("# Tides\n\nThe moon pulls on the oceans.\n", "utf-8")
    settings = workspace.settings.model_copy(update={"rag": RagSettings(vector_store=postgres_url)})
    pg_workspace = Workspace(workspace.root, settings)
    counting = CountingEncoder(encoder)
    with pytest.raises(ConfigError, match=NOT_INSTALLED):
        ingest_knowledge_base(
            pg_workspace,
            "tides",
            [tmp_path / "tides.md"],
            options=ChunkingOptions(64, 16),
            encoder=counting,
        )
    assert counting.embedded == 0
    with pytest.raises(UserError):
        list_versions(pg_workspace, "tides")
    pg_workspace.close()

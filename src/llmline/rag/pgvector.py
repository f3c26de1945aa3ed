"""The dense index of a knowledge base in PostgreSQL, with the pgvector extension.

One table per knowledge-base content (``row bigint primary key, embedding
vector(dim)``) and an HNSW index over it with ``vector_cosine_ops``: the
vectors are normalised, so ``1 - (embedding <=> query)`` is the same cosine
the FAISS index scores.  Rows are loaded with a binary ``COPY`` (the pgvector
package's psycopg adapters) and the HNSW graph is built once, after the
load, which is several times faster than maintaining it row by row.

The server needs the extension's files (Debian: ``postgresql-NN-pgvector``);
without them every entry point fails with a one-line :class:`ConfigError`
that says so, before anything is written.
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from llmline.errors import ConfigError, IntegrityError
from llmline.rag.config import RagSettings, redact_url
from llmline.rag.encoder import Vectors
from llmline.rag.index import Ranked

__all__ = [
    "PGVECTOR",
    "PgVectorIndex",
    "create_index_sql",
    "create_table_sql",
    "pgvector_spec",
    "search_sql",
    "table_name",
]

PGVECTOR = "pgvector-hnsw"
TABLE_PREFIX = "llmline_kb_"
_MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1
_VECTOR_TYPE = re.compile(r"^vector\((\d+)\)$")


def pgvector_spec(settings: RagSettings) -> dict[str, Any]:
    """The ``index.dense`` block of a manifest whose vectors live in PostgreSQL."""
    return {
        "type": PGVECTOR,
        "metric": "cosine",
        "server": redact_url(settings.vector_store),
        "M": settings.pgvector_m,
        "ef_construction": settings.pgvector_ef_construction,
        "ef_search": settings.pgvector_ef_search,
    }


def table_name(kb_name: str, content_hash: str) -> str:
    """``llmline_kb_<name>_<hash16>``: one table per knowledge-base content,
    within PostgreSQL's 63-byte identifier limit."""
    safe = re.sub(r"[^a-z0-9_]", "_", kb_name.lower())
    suffix = f"_{content_hash[:16]}"
    return TABLE_PREFIX + safe[: _MAX_IDENTIFIER - len(TABLE_PREFIX) - len(suffix)] + suffix


def create_table_sql(table: str, dim: int) -> sql.Composed:
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (row bigint PRIMARY KEY, embedding vector({}) NOT NULL)"
    ).format(sql.Identifier(table), sql.Literal(int(dim)))


def create_index_sql(table: str, m: int, ef_construction: int) -> sql.Composed:
    return sql.SQL(
        "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops) "
        "WITH (m = {}, ef_construction = {})"
    ).format(
        sql.Identifier(f"{table[: _MAX_IDENTIFIER - 5]}_hnsw"),
        sql.Identifier(table),
        sql.Literal(int(m)),
        sql.Literal(int(ef_construction)),
    )


def search_sql(table: str, *, filtered: bool) -> sql.Composed:
    """Nearest rows by cosine distance; parameters: query, [allowed rows,] query, limit."""
    where = sql.SQL(" WHERE row = ANY(%s)") if filtered else sql.SQL("")
    return sql.SQL(
        "SELECT row, 1 - (embedding <=> %s) AS score FROM {}{} ORDER BY embedding <=> %s LIMIT %s"
    ).format(sql.Identifier(table), where)


class PgVectorIndex:
    """A :class:`~llmline.rag.index.VectorIndex` over one pgvector table; thread-safe
    (one connection, used under a lock)."""

    def __init__(self, conn: psycopg.Connection[Any], table: str, *, ef_search: int = 100):
        self.url = redact_url(conn.info.dsn)
        self.table = table
        self._lock = threading.Lock()
        self._conn = conn
        with self._conn.cursor() as cur:
            # A session setting (autocommit): how wide the HNSW walk is per query.
            cur.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(int(ef_search))))
        self._dim = self._column_dim()

    @classmethod
    def open(cls, url: str, table: str, *, ef_search: int = 100) -> PgVectorIndex:
        """The existing table ``table`` on ``url``; IntegrityError if it is missing."""
        conn = connect(url)
        try:
            return cls(conn, table, ef_search=ef_search)
        except BaseException:
            conn.close()
            raise

    @classmethod
    def populate(cls, url: str, table: str, vectors: Vectors, spec: dict[str, Any]) -> None:
        """Load ``vectors`` as rows 0..n-1 of ``table`` and build its HNSW graph.

        The table is named after the knowledge base's content, so a table that
        already holds every row (an earlier, interrupted ingest of the same
        content, or a concurrent one) is kept as it is.
        """
        with connect(url) as conn:
            # A session lock, released when the connection closes.
            conn.execute("SELECT pg_advisory_lock(%s)", [content_lock_key(table)])
            conn.execute(create_table_sql(table, int(vectors.shape[1])))
            index = cls(conn, table, ef_search=int(spec["ef_search"]))
            if index.ntotal != len(vectors):
                conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))
                index.add(vectors)
            index.build_graph(int(spec["M"]), int(spec["ef_construction"]))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PgVectorIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def ntotal(self) -> int:
        with self._lock, self._conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.table)))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def add(self, vectors: Vectors) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of {self.dim} dimensions, got {vectors.shape}")
        start = self.ntotal
        copy_sql = sql.SQL("COPY {} (row, embedding) FROM STDIN WITH (FORMAT BINARY)").format(
            sql.Identifier(self.table)
        )
        with (
            self._lock,
            self._conn.transaction(),
            self._conn.cursor() as cur,
            cur.copy(copy_sql) as copy,
        ):
            copy.set_types(["bigint", "vector"])
            for offset, vector in enumerate(vectors):
                copy.write_row((start + offset, vector))

    def build_graph(self, m: int, ef_construction: int) -> None:
        """Build the HNSW index (once, after the rows are in)."""
        with self._lock:
            self._conn.execute(create_index_sql(self.table, m, ef_construction))

    def drop(self) -> None:
        with self._lock:
            self._conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.table))
            )

    def search(
        self, query: Vectors, n: int, allowed: npt.NDArray[np.int64] | None = None
    ) -> Ranked:
        if n <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        params: list[Any] = [q] if allowed is None else [q, [int(r) for r in allowed]]
        with self._lock, self._conn.cursor() as cur:
            cur.execute(search_sql(self.table, filtered=allowed is not None), [*params, q, n])
            return [(int(row), float(score)) for row, score in cur.fetchall()]

    def _column_dim(self) -> int:
        with self._lock, self._conn.cursor() as cur:
            cur.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = to_regclass(%s) AND attname = 'embedding'",
                [sql.Identifier(self.table).as_string(self._conn)],
            )
            row = cur.fetchone()
        if row is None:
            raise IntegrityError(
                f"vector table {self.table} does not exist on {redact_url(self.url)}: "
                "re-ingest the knowledge base, or point rag.vector_store at the server "
                "it was ingested into"
            )
        match = _VECTOR_TYPE.match(str(row[0]))
        if match is None:
            raise IntegrityError(f"{self.table}.embedding is {row[0]}, not a pgvector column")
        return int(match.group(1))


def connect(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection to ``url`` with pgvector's types registered;
    ConfigError when the server is unreachable or lacks the extension."""
    from pgvector.psycopg import register_vector

    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot connect to vector store {redact_url(url)}: {first}") from None
    try:
        ensure_extension(conn, url)
        register_vector(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def ensure_extension(conn: psycopg.Connection[Any], url: str) -> None:
    """Enable pgvector in the database when the server has it; ConfigError if not."""
    installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    if installed:
        return
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    if not available:
        version = conn.info.server_version // 10000
        raise ConfigError(
            f"the pgvector extension is not installed on this server ({redact_url(url)}): "
            f"install it there (Debian: apt-get install postgresql-{version}-pgvector) "
            "or use rag.vector_store: faiss"
        )
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.InsufficientPrivilege:
        raise ConfigError(
            f"the pgvector extension is installed on {redact_url(url)} but not enabled in "
            f"database {conn.info.dbname}, and user {conn.info.user} may not enable it: "
            "run CREATE EXTENSION vector there as its owner"
        ) from None


def content_lock_key(table: str) -> int:
    """A 63-bit advisory-lock key for ``table``: two ingests of the same content
    into one server take turns instead of interleaving their COPYs."""
    return int.from_bytes(hashlib.sha256(table.encode()).digest()[:8], "big") >> 1

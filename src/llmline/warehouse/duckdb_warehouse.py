"""The embedded default warehouse: a DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from llmline.errors import ImportFileError, NotFoundError, SQLError
from llmline.warehouse.base import DEFAULT_BATCH_ROWS, LoadMode, TableInfo, Warehouse
from llmline.warehouse.schema import TABLES, create_table_sql

__all__ = ["DuckDBWarehouse"]

_READERS = {
    ".csv": "read_csv_auto",
    ".tsv": "read_csv_auto",
    ".parquet": "read_parquet",
    ".pq": "read_parquet",
    ".jsonl": "read_json_auto",
    ".ndjson": "read_json_auto",
    ".json": "read_json_auto",
}


def _engine_message(exc: duckdb.Error) -> str:
    return " ".join(str(exc).split())


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self.url = url
        # duckdb:///relative/file, duckdb:////absolute/file, duckdb:// (in memory)
        prefix = "duckdb:///" if url.startswith("duckdb:///") else "duckdb://"
        self.path = url.removeprefix(prefix)
        if self.path and self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(self.path or ":memory:", read_only=read_only)
        except duckdb.Error as exc:
            raise SQLError(f"cannot open warehouse {self.path}: {_engine_message(exc)}") from None

    # -- queries ---------------------------------------------------------------
    def iter_batches(
        self, sql: str, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        # A cursor of its own, so a caller may run other queries while streaming.
        cursor = self.con.cursor()
        try:
            reader = cursor.sql(sql).to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            cursor.close()
            raise SQLError(_engine_message(exc)) from None
        try:
            yield from reader
        finally:
            cursor.close()

    def result_columns(self, sql: str) -> list[str]:
        try:
            return list(self.con.sql(sql).columns)
        except duckdb.Error as exc:
            raise SQLError(_engine_message(exc)) from None

    def tables(self) -> list[TableInfo]:
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' ORDER BY table_name"
        ).fetchall()
        out = []
        for (name,) in rows:
            cols = self.con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
                [name],
            ).fetchall()
            count = self.con.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            out.append(TableInfo(name, int(count[0]) if count else 0, dict(cols)))
        return out

    def _exists(self, table: str) -> bool:
        return any(t.name == table for t in self.tables())

    # -- writes ----------------------------------------------------------------
    def ensure_schema(self) -> None:
        for name in TABLES:
            self.con.execute(create_table_sql(name))

    def load_table(self, table: str, path: Path, mode: LoadMode = "append") -> int:
        reader = _READERS.get(path.suffix.lower())
        if reader is None:
            raise ImportFileError(
                str(path), None, "unsupported file type (use CSV, Parquet or JSONL)"
            )
        if not path.is_file():
            raise ImportFileError(str(path), None, "no such file")
        source = f"{reader}(?)"
        exists = self._exists(table)
        self.con.execute("BEGIN TRANSACTION")
        try:
            if exists and mode == "replace":
                self.con.execute(f'DELETE FROM "{table}"')
            if exists:
                self.con.execute(
                    f'INSERT INTO "{table}" BY NAME SELECT * FROM {source}', [str(path)]
                )
            else:
                self.con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM {source}', [str(path)])
            count = self.con.execute(f"SELECT count(*) FROM {source}", [str(path)]).fetchone()
            self.con.execute("COMMIT")
        except duckdb.Error as exc:
            self.con.execute("ROLLBACK")
            raise ImportFileError(str(path), None, _engine_message(exc)) from None
        return int(count[0]) if count else 0

    def upsert(self, tables: dict[str, pa.Table], key: str = "id") -> int:
        for table in tables:
            if not self._exists(table):
                raise NotFoundError(f"warehouse has no table {table!r}")
        self.con.execute("BEGIN TRANSACTION")
        try:
            for table, data in tables.items():
                self.con.register("llmline_incoming", data)
                self.con.execute(
                    f'DELETE FROM "{table}" WHERE "{key}" IN (SELECT "{key}" FROM llmline_incoming)'
                )
                self.con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM llmline_incoming')
                self.con.unregister("llmline_incoming")
            self.con.execute("COMMIT")
        except duckdb.Error as exc:
            self.con.execute("ROLLBACK")
            raise SQLError(_engine_message(exc)) from None
        return sum(t.num_rows for t in tables.values())

    def fingerprint(self, table: str) -> str:
        if not self._exists(table):
            raise NotFoundError(f"warehouse has no table {table!r}")
        row = self.con.execute(f'SELECT count(*), bit_xor(hash(t)) FROM "{table}" AS t').fetchone()
        count, digest = row if row else (0, 0)
        return f"{count}:{(digest or 0):016x}"

    def close(self) -> None:
        self.con.close()

"""The warehouse interface every connector implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa

__all__ = ["DEFAULT_BATCH_ROWS", "LoadMode", "TableInfo", "Warehouse"]

DEFAULT_BATCH_ROWS = 8192
LoadMode = Literal["append", "replace"]


@dataclass(frozen=True)
class TableInfo:
    name: str
    rows: int
    columns: dict[str, str]

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "rows": self.rows, "columns": self.columns}


class Warehouse(ABC):
    """A SQL engine that holds the source tables.

    Queries run inside the engine; results stream back as Arrow record
    batches, so memory stays flat however large the result is.
    """

    #: sqlglot dialect the engine speaks
    dialect: str
    url: str

    @abstractmethod
    def iter_batches(
        self, sql: str, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """Run ``sql`` (already in the engine's dialect) and stream its rows."""

    @abstractmethod
    def result_columns(self, sql: str) -> list[str]:
        """Column names ``sql`` returns, without running it over the data."""

    @abstractmethod
    def tables(self) -> list[TableInfo]: ...

    @abstractmethod
    def load_table(self, table: str, path: Path, mode: LoadMode = "append") -> int:
        """Load a CSV, Parquet or JSONL file into ``table``; return rows loaded."""

    @abstractmethod
    def upsert(self, tables: dict[str, pa.Table], key: str = "id") -> int:
        """For each table, replace rows whose ``key`` is in the data and insert the
        rest; all tables in one transaction (all or nothing). Returns rows written."""

    @abstractmethod
    def fingerprint(self, table: str) -> str:
        """A short hash of a table's content (row order does not matter)."""

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create the Stack-Overflow-shaped tables if they are missing."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

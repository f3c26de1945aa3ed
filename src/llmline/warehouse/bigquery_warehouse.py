"""A BigQuery warehouse, through the optional ``llmline[bigquery]`` extra.

URL: ``bigquery://PROJECT[/DATASET][?location=LOCATION]``.  PROJECT runs (and
pays for) the queries.  DATASET, ``name`` in PROJECT or ``other-project.name``,
is the default dataset: unqualified table names in queries resolve there, and
it is where :meth:`~BigQueryWarehouse.tables`, ``ensure_schema``,
``load_table`` and ``upsert`` work.  ``bigquery://my-project/
bigquery-public-data.stackoverflow`` reads the public Stack Overflow tables
under the local names ``posts_questions`` / ``posts_answers``.

``google-cloud-bigquery`` is imported when the first request needs it, so
this module imports, and :meth:`BigQueryWarehouse.prepare` writes SQL,
without it.  Pass ``client=`` to use a client you configured yourself.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from llmline.errors import ConfigError, ImportFileError, NotFoundError, SQLError
from llmline.warehouse.base import DEFAULT_BATCH_ROWS, LoadMode, TableInfo, Warehouse
from llmline.warehouse.dialects import generate, parse_statement, rename_tables
from llmline.warehouse.schema import TABLES

__all__ = ["BigQueryClient", "BigQueryWarehouse"]

INSTALL_HINT = "BigQuery support is not installed: pip install 'llmline[bigquery]'"
URL_FORM = "bigquery://PROJECT[/DATASET][?location=LOCATION]"
_NOT_FOUND = 404
# File suffix -> (BigQuery source format, extra load options).
_SOURCE_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("CSV", {"skip_leading_rows": 1}),
    ".tsv": ("CSV", {"skip_leading_rows": 1, "field_delimiter": "\t"}),
    ".parquet": ("PARQUET", {}),
    ".pq": ("PARQUET", {}),
    # BigQuery reads only newline-delimited JSON, not one JSON array.
    ".jsonl": ("NEWLINE_DELIMITED_JSON", {}),
    ".ndjson": ("NEWLINE_DELIMITED_JSON", {}),
    ".json": ("NEWLINE_DELIMITED_JSON", {}),
}
# The local tables' naive TIMESTAMP columns hold UTC, as BigQuery's TIMESTAMP does.
_COLUMN_TYPES = {pa.int64(): "INT64", pa.string(): "STRING", pa.timestamp("us"): "TIMESTAMP"}


class BigQueryClient(Protocol):
    """The part of ``google.cloud.bigquery.Client`` this warehouse uses."""

    def query(self, query: str, *, job_config: Any = ...) -> Any: ...
    def list_tables(self, dataset: str) -> Any: ...
    def get_table(self, table: str) -> Any: ...
    def create_table(self, table: Any, *, exists_ok: bool = ...) -> Any: ...
    def delete_table(self, table: str, *, not_found_ok: bool = ...) -> Any: ...
    def load_table_from_file(self, file_obj: Any, destination: str, *, job_config: Any) -> Any: ...
    def close(self) -> None: ...


class BigQueryWarehouse(Warehouse):
    dialect = "bigquery"

    def __init__(self, url: str, *, client: BigQueryClient | None = None) -> None:
        self.url = url
        self.project, self.dataset, self.location = _parse_url(url)
        self._client = client
        self._owns_client = client is None

    @property
    def client(self) -> BigQueryClient:
        """The BigQuery client, created on first use."""
        if self._client is None:
            bigquery = _bigquery()
            options = {"location": self.location} if self.location else {}
            try:
                self._client = bigquery.Client(project=self.project, **options)
            except _google_errors(auth=True) as exc:
                raise ConfigError(f"cannot connect to BigQuery: {_message(exc)}") from None
        return self._client

    # -- SQL -------------------------------------------------------------------
    @staticmethod
    def prepare(sql: str, dialect: str, table_map: Mapping[str, str]) -> str:
        """BigQuery SQL for ``sql`` written in ``dialect`` over LOCAL table names.

        ``table_map`` is the workspace's (BigQuery path -> local name); it is
        inverted, so ``posts_questions`` becomes the backtick-quoted path
        ``bigquery-public-data.stackoverflow.posts_questions``.  SQL from
        DuckDB or PostgreSQL has its ``TIMESTAMP`` values (naive, holding UTC
        in the local tables) written as BigQuery ``TIMESTAMP``, not
        ``DATETIME``, to match the columns they are compared with.
        """
        inverse: dict[str, str] = {}
        for public, local in table_map.items():
            other = inverse.setdefault(local.lower(), public)
            if other != public:
                raise ConfigError(f"table_map maps both {other!r} and {public!r} to {local!r}")
        tree = parse_statement(sql, read=dialect)
        tree = rename_tables(tree, inverse, dialect="bigquery")
        if dialect != "bigquery":
            tree = tree.transform(_naive_timestamp_as_timestamp)
        return generate(tree, write="bigquery")

    # -- queries ---------------------------------------------------------------
    def iter_batches(
        self, sql: str, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        config = self._query_config()
        try:
            job = self.client.query(sql, job_config=config)
            # Without a BigQuery Storage client the rows come page by page
            # over the REST API, one record batch per page of batch_rows.
            rows = job.result(page_size=batch_rows)
            yield from rows.to_arrow_iterable()
        except _google_errors() as exc:
            raise SQLError(_message(exc)) from None

    def result_columns(self, sql: str) -> list[str]:
        # A dry run validates the query and reports its schema without
        # reading (or billing) any data.
        config = self._query_config(dry_run=True, use_query_cache=False)
        try:
            job = self.client.query(sql, job_config=config)
        except _google_errors() as exc:
            raise SQLError(_message(exc)) from None
        return [str(field.name) for field in job.schema or []]

    def tables(self) -> list[TableInfo]:
        """Tables of the default dataset (none without one)."""
        infos = []
        for name in self._table_names():
            table = self._get_table(name)
            columns = {str(f.name): _column_type(f) for f in table.schema or []}
            infos.append(TableInfo(name, int(table.num_rows or 0), columns))
        return infos

    def fingerprint(self, table: str) -> str:
        """Row count and a hash of the last-modified time, from table metadata.

        BigQuery has no cheap content hash: hashing the rows would be a full,
        billed scan of the table.  Any change to the table (a load, DML, a
        schema change) moves its modified time, so the fingerprint changes
        whenever the content may have; rows still in the streaming buffer and
        the data behind views are not covered.
        """
        meta = self._get_table(table)
        modified = meta.modified.isoformat() if meta.modified is not None else ""
        ident = f"{self._table_ref(table)}\0{meta.num_rows}\0{modified}"
        digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
        return f"{int(meta.num_rows or 0)}:{digest}"

    # -- writes ----------------------------------------------------------------
    def ensure_schema(self) -> None:
        dataset = self._require_dataset("create the Stack Overflow tables")
        bigquery = _bigquery()
        # Only missing tables are created: creating one that exists is still
        # a write request, which read-only datasets (the public ones) refuse.
        existing = set(self._table_names())
        for name, schema in TABLES.items():
            if name in existing:
                continue
            fields = [bigquery.SchemaField(f.name, _COLUMN_TYPES[f.type]) for f in schema]
            try:
                self.client.create_table(
                    bigquery.Table(f"{dataset}.{name}", schema=fields), exists_ok=True
                )
            except _google_errors() as exc:
                raise SQLError(f"cannot create {dataset}.{name}: {_message(exc)}") from None

    def load_table(self, table: str, path: Path, mode: LoadMode = "append") -> int:
        """Load a file with a BigQuery load job.

        Unlike the DuckDB warehouse, CSV columns of an existing table are
        matched by position, not by header name (BigQuery's CSV loading).
        """
        fmt = _SOURCE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ImportFileError(
                str(path), None, "unsupported file type (use CSV, Parquet or JSONL)"
            )
        if not path.is_file():
            raise ImportFileError(str(path), None, "no such file")
        self._require_dataset("load files")
        source_format, options = fmt
        # A new table takes its schema from the file; an existing one keeps its own.
        autodetect = table not in self._table_names()
        try:
            with path.open("rb") as source:
                job = self._load(
                    table, source, source_format, mode=mode, autodetect=autodetect, options=options
                )
        except _google_errors() as exc:
            raise ImportFileError(str(path), None, _message(exc)) from None
        return int(job.output_rows or 0)

    def upsert(self, tables: dict[str, pa.Table], key: str = "id") -> int:
        """Replace rows by ``key`` and insert the rest, all tables in one transaction.

        Each table's rows are first loaded into a staging table; one
        multi-statement transaction then deletes the rows being replaced and
        inserts the staged rows (the DuckDB warehouse's semantics, which a
        MERGE would not give for rows whose key repeats).
        """
        dataset = self._require_dataset("upsert rows")
        if not tables:
            return 0
        missing = sorted(set(tables) - set(self._table_names()))
        if missing:
            raise NotFoundError(f"warehouse has no table {missing[0]!r}")
        staged: dict[str, str] = {}
        try:
            for name, data in tables.items():
                staged[name] = f"_llmline_upsert_{name}_{uuid.uuid4().hex[:12]}"
                self._load(staged[name], _parquet(data), "PARQUET", mode="replace", autodetect=True)
            statements = [
                _replace_rows_sql(f"{dataset}.{name}", f"{dataset}.{staged[name]}", data, key)
                for name, data in tables.items()
            ]
            script = "\n".join(["BEGIN TRANSACTION;", *statements, "COMMIT TRANSACTION;"])
            self.client.query(script, job_config=self._query_config()).result()
        except _google_errors() as exc:
            raise SQLError(_message(exc)) from None
        finally:
            # A failed clean-up must not hide why the upsert failed.
            with contextlib.suppress(*_google_errors()):
                for ref in staged.values():
                    self.client.delete_table(f"{dataset}.{ref}", not_found_ok=True)
        return sum(t.num_rows for t in tables.values())

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    # -- helpers ---------------------------------------------------------------
    def _query_config(self, **options: Any) -> Any:
        if self.dataset:
            options["default_dataset"] = self.dataset
        return _bigquery().QueryJobConfig(**options)

    def _require_dataset(self, action: str) -> str:
        if not self.dataset:
            raise ConfigError(
                f"cannot {action}: the warehouse URL {self.url!r} names no dataset ({URL_FORM})"
            )
        return self.dataset

    def _table_ref(self, table: str) -> str:
        """``project.dataset.table`` for a name in the default dataset or a full path."""
        if table.count(".") == 2:
            return table
        if table.count(".") == 1:
            return f"{self.project}.{table}"
        return f"{self._require_dataset(f'find table {table!r}')}.{table}"

    def _table_names(self) -> list[str]:
        if not self.dataset:
            return []
        try:
            return sorted(str(item.table_id) for item in self.client.list_tables(self.dataset))
        except _google_errors() as exc:
            raise SQLError(f"cannot list tables of {self.dataset}: {_message(exc)}") from None

    def _get_table(self, table: str) -> Any:
        ref = self._table_ref(table)
        try:
            return self.client.get_table(ref)
        except _google_errors() as exc:
            if getattr(exc, "code", None) == _NOT_FOUND:
                raise NotFoundError(f"warehouse has no table {table!r}") from None
            raise SQLError(_message(exc)) from None

    def _load(
        self,
        table: str,
        source: Any,
        source_format: str,
        *,
        mode: LoadMode,
        autodetect: bool,
        options: dict[str, Any] | None = None,
    ) -> Any:
        bigquery = _bigquery()
        disposition = "WRITE_TRUNCATE" if mode == "replace" else "WRITE_APPEND"
        config = bigquery.LoadJobConfig(
            source_format=getattr(bigquery.SourceFormat, source_format),
            write_disposition=getattr(bigquery.WriteDisposition, disposition),
            autodetect=autodetect,
            **(options or {}),
        )
        job = self.client.load_table_from_file(source, self._table_ref(table), job_config=config)
        job.result()
        return job


def _parse_url(url: str) -> tuple[str, str | None, str | None]:
    """(project, ``project.dataset`` or None, location or None) of a bigquery:// URL."""
    parts = urlsplit(url)
    project = parts.netloc
    path = parts.path.strip("/")
    if parts.scheme != "bigquery" or not project or "/" in path or "`" in url:
        raise ConfigError(f"invalid BigQuery URL {url!r} (use {URL_FORM})")
    dataset = None
    if path:
        dataset = path if "." in path else f"{project}.{path}"
        if dataset.count(".") != 1:
            raise ConfigError(f"invalid dataset {path!r} in {url!r} (use NAME or PROJECT.NAME)")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"location"})
    if unknown:
        raise ConfigError(f"unknown BigQuery URL option {unknown[0]!r} (known: location)")
    location = query["location"][-1] if "location" in query else None
    return project, dataset, location


def _bigquery() -> ModuleType:
    try:
        return importlib.import_module("google.cloud.bigquery")
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None


def _google_errors(*, auth: bool = False) -> tuple[type[BaseException], ...]:
    """Google's API exception classes (none when the package is absent).

    Looked up at call time: the package is optional, and an ``except`` over
    an empty tuple catches nothing.
    """
    names = ["google.api_core.exceptions.GoogleAPIError"]
    if auth:
        names.append("google.auth.exceptions.DefaultCredentialsError")
    found: list[type[BaseException]] = []
    for name in names:
        module, _, attr = name.rpartition(".")
        try:
            found.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _message(exc: BaseException) -> str:
    # GoogleAPICallError.message is the service's own words, without the
    # status prefix and job id that str() adds.
    text = getattr(exc, "message", None) or str(exc)
    return " ".join(str(text).split())


def _column_type(field: Any) -> str:
    kind = str(field.field_type)
    return f"ARRAY<{kind}>" if field.mode == "REPEATED" else kind


def _naive_timestamp_as_timestamp(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.DataType) and node.is_type("timestamp", "timestampntz"):
        return exp.DataType.build("timestamptz")  # BigQuery's TIMESTAMP
    return node


def _parquet(data: pa.Table) -> io.BytesIO:
    """``data`` as Parquet, naive timestamps marked as UTC.

    A Parquet timestamp without a zone is a local time, which BigQuery may
    load as DATETIME; the target columns are TIMESTAMP (UTC), as the local
    naive values are.
    """
    columns = [
        column.cast(pa.timestamp(column.type.unit, tz="UTC"))
        if pa.types.is_timestamp(column.type) and column.type.tz is None
        else column
        for column in data.columns
    ]
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns, names=data.column_names), buffer)
    buffer.seek(0)
    return buffer


def _replace_rows_sql(target: str, staging: str, data: pa.Table, key: str) -> str:
    """DELETE the rows whose ``key`` is staged, then INSERT the staged rows."""
    names = [_quote(name) for name in data.column_names]
    columns = ", ".join(names)
    return (
        f"DELETE FROM {_quote(target)} WHERE {_quote(key)} IN "
        f"(SELECT {_quote(key)} FROM {_quote(staging)});\n"
        f"INSERT INTO {_quote(target)} ({columns}) SELECT {columns} FROM {_quote(staging)};"
    )


def _quote(name: str) -> str:
    if "`" in name or "\\" in name:
        raise SQLError(f"invalid BigQuery name {name!r}")
    return f"`{name}`"

"""A PostgreSQL warehouse, through psycopg 3.

Queries stream through a server-side cursor on a connection of their own, so
memory stays flat and the caller may run other statements while streaming.
Files and upserts go in with ``COPY ... FROM STDIN (FORMAT csv)``: pyarrow
reads the file and writes CSV, the server parses it.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from psycopg import sql
from psycopg.types.string import TextLoader

from llmline.errors import ConfigError, ImportFileError, NotFoundError, SQLError
from llmline.warehouse.base import DEFAULT_BATCH_ROWS, LoadMode, TableInfo, Warehouse
from llmline.warehouse.schema import TABLES, create_table_sql

__all__ = ["PostgresWarehouse"]

Connection = psycopg.Connection[tuple[Any, ...]]

_CSV_SUFFIXES = {".csv", ".tsv"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
_JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}
COPY_CHUNK_ROWS = 50_000

# Result column types by PostgreSQL type OID; anything else arrives as text.
_ARROW_BY_OID: dict[int, pa.DataType] = {
    16: pa.bool_(),
    17: pa.binary(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    26: pa.int64(),
    700: pa.float32(),
    701: pa.float64(),
    1082: pa.date32(),
    1083: pa.time64("us"),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    1186: pa.duration("us"),
}
NUMERIC_OID = 1700
# Types psycopg would parse into Python objects but that we hand on as text.
_TEXT_TYPES = ("json", "jsonb", "uuid", "xml", "money", "inet", "cidr", "macaddr")
_ROW_RE = re.compile(r"\bline (\d+)")


def _engine_message(exc: psycopg.Error) -> str:
    """PostgreSQL's own words on one line (without psycopg's LINE/caret excerpt)."""
    diag = exc.diag
    parts = [diag.message_primary or str(exc), diag.message_detail, diag.message_hint]
    return " ".join(" ".join(p for p in parts if p).split())


def _conninfo(url: str) -> str:
    # psycopg understands postgresql:// and postgres://; SQLAlchemy-style
    # driver suffixes (postgresql+psycopg://) are ours to strip.
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise ConfigError(f"not a PostgreSQL URL: {_safe_url(url)}")
    return f"postgresql://{rest}"


def _safe_url(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


class PostgresWarehouse(Warehouse):
    dialect = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url
        self._conninfo = _conninfo(url)
        # Autocommit: every write method opens its own explicit transaction.
        self.conn = self._connect(autocommit=True)

    def _connect(self, *, autocommit: bool) -> Connection:
        try:
            conn = psycopg.connect(self._conninfo, autocommit=autocommit)
        except psycopg.Error as exc:
            message = " ".join(str(exc).split())
            raise SQLError(f"cannot open warehouse {_safe_url(self.url)}: {message}") from None
        for name in _TEXT_TYPES:
            conn.adapters.register_loader(name, TextLoader)
        return conn

    # -- queries ---------------------------------------------------------------
    def iter_batches(
        self, sql: str, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        # A connection of its own: a named cursor lives in a transaction, and
        # the caller may use this warehouse for other work while it streams.
        conn = self._connect(autocommit=False)
        try:
            with conn.cursor(name="llmline_stream") as cursor:
                try:
                    cursor.execute(sql)
                    converters = _converters(cursor)
                    names = [column.name for column in cursor.description or []]
                    # fetchmany on a named cursor is one FETCH FORWARD n round trip.
                    while rows := cursor.fetchmany(batch_rows):
                        yield _record_batch(rows, names, converters)
                except psycopg.Error as exc:
                    raise SQLError(_engine_message(exc)) from None
        finally:
            conn.close()  # rolls back: a stream never changes anything

    def result_columns(self, sql: str) -> list[str]:
        # DECLARE plans the query without running it; the portal's description
        # names the columns.
        try:
            with (
                self.conn.transaction(force_rollback=True),
                self.conn.cursor(name="llmline_describe") as cursor,
            ):
                cursor.execute(sql)
                return [column.name for column in cursor.description or []]
        except psycopg.Error as exc:
            raise SQLError(_engine_message(exc)) from None

    def tables(self) -> list[TableInfo]:
        rows = self.conn.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
            "AND NOT a.attisdropped "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "ORDER BY c.relname, a.attnum"
        ).fetchall()
        columns: dict[str, dict[str, str]] = {}
        for table, column, type_name in rows:
            cols = columns.setdefault(table, {})
            if column is not None:
                cols[column] = type_name
        return [TableInfo(name, self._count(name), cols) for name, cols in columns.items()]

    def _count(self, table: str) -> int:
        row = self.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_table(table))).fetchone()
        return int(row[0]) if row else 0

    def _exists(self, table: str) -> bool:
        row = self.conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", [_table(table).as_string(None)]
        ).fetchone()
        return bool(row and row[0])

    # -- writes ----------------------------------------------------------------
    def ensure_schema(self) -> None:
        with self.conn.transaction():
            for name in TABLES:
                self.conn.execute(create_table_sql(name))

    def load_table(self, table: str, path: Path, mode: LoadMode = "append") -> int:
        data = _read_file(path)
        target = _table(table)
        try:
            with self.conn.transaction():
                if not self._exists(table):
                    self.conn.execute(_create_table_from_arrow(table, data.schema))
                elif mode == "replace":
                    # DELETE, not TRUNCATE: readers keep seeing the old rows until commit.
                    self.conn.execute(sql.SQL("DELETE FROM {}").format(target))
                _copy_in(self.conn, target, data)
        except psycopg.Error as exc:
            raise ImportFileError(str(path), None, _copy_problem(exc)) from None
        except (pa.ArrowException, ValueError) as exc:
            raise ImportFileError(str(path), None, " ".join(str(exc).split())) from None
        return int(data.num_rows)

    def upsert(self, tables: dict[str, pa.Table], key: str = "id") -> int:
        for table, data in tables.items():
            if not self._exists(table):
                raise NotFoundError(f"warehouse has no table {table!r}")
            if key not in data.column_names:
                raise SQLError(f"upsert into {table!r}: the data has no key column {key!r}")
        try:
            with self.conn.transaction():
                for index, (table, data) in enumerate(tables.items()):
                    self._upsert_one(table, data, key, f"llmline_incoming_{index}")
        except psycopg.Error as exc:
            raise SQLError(_engine_message(exc)) from None
        except (pa.ArrowException, ValueError) as exc:
            raise SQLError(" ".join(str(exc).split())) from None
        return sum(int(t.num_rows) for t in tables.values())

    def _upsert_one(self, table: str, data: pa.Table, key: str, staging: str) -> None:
        # Stage the rows in a temp table shaped like the target, so the server
        # converts types once and the swap is two set-based statements.
        target, temp, key_id = _table(table), sql.Identifier(staging), sql.Identifier(key)
        columns = sql.SQL(", ").join(sql.Identifier(name) for name in data.column_names)
        self.conn.execute(
            sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
                temp, target
            )
        )
        _copy_in(self.conn, temp, data)
        self.conn.execute(
            sql.SQL("DELETE FROM {t} USING {s} WHERE {t}.{k} = {s}.{k}").format(
                t=target, s=temp, k=key_id
            )
        )
        self.conn.execute(
            sql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM {s}").format(t=target, s=temp, c=columns)
        )

    def fingerprint(self, table: str) -> str:
        if not self._exists(table):
            raise NotFoundError(f"warehouse has no table {table!r}")
        # A sum of per-row md5 prefixes: independent of row order, and unlike
        # XOR a duplicated row still changes it.  The row's text form depends
        # on session settings, so they are pinned for this transaction.
        with self.conn.transaction(force_rollback=True):
            for setting in (
                "TimeZone = 'UTC'", "DateStyle = 'ISO, YMD'",
                "IntervalStyle = 'postgres'", "extra_float_digits = 1",
            ):  # fmt: skip
                self.conn.execute(f"SET LOCAL {setting}")
            row = self.conn.execute(
                sql.SQL(
                    "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)"
                    "::bigint::numeric), 0) FROM {} AS t"
                ).format(_table(table))
            ).fetchone()
        count, total = (int(row[0]), int(row[1])) if row else (0, 0)
        return f"{count}:{total % (1 << 64):016x}"

    def close(self) -> None:
        self.conn.close()


def _table(name: str) -> sql.Identifier:
    # tables() lists the public schema, so every statement names it too
    # rather than trusting the session's search_path.
    return sql.Identifier("public", name)


# -- results to Arrow -------------------------------------------------------------
def _converters(cursor: psycopg.Cursor[Any]) -> list[tuple[pa.DataType, Callable[[Any], Any]]]:
    out: list[tuple[pa.DataType, Callable[[Any], Any]]] = []
    for column in cursor.description or []:
        if column.type_code in _ARROW_BY_OID:
            out.append((_ARROW_BY_OID[column.type_code], _identity))
        elif column.type_code == NUMERIC_OID and column.precision and column.precision <= 38:
            out.append((pa.decimal128(column.precision, column.scale or 0), _identity))
        elif column.type_code == NUMERIC_OID:
            # Unconstrained numeric (avg(), sum(bigint)): a double, as other engines give.
            out.append((pa.float64(), _to_float))
        else:
            out.append((pa.string(), _to_text))
    return out


def _identity(value: Any) -> Any:
    return value


def _to_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _to_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def _record_batch(
    rows: list[tuple[Any, ...]],
    names: list[str],
    converters: list[tuple[pa.DataType, Callable[[Any], Any]]],
) -> pa.RecordBatch:
    arrays = []
    for index, (arrow_type, convert) in enumerate(converters):
        values = [row[index] for row in rows]
        if convert is not _identity:
            values = [convert(value) for value in values]
        arrays.append(pa.array(values, type=arrow_type))
    return pa.RecordBatch.from_arrays(arrays, names=names)


# -- files and Arrow tables in ------------------------------------------------------
def _read_file(path: Path) -> pa.Table:
    suffix = path.suffix.lower()
    if suffix not in _CSV_SUFFIXES | _PARQUET_SUFFIXES | _JSON_SUFFIXES:
        raise ImportFileError(str(path), None, "unsupported file type (use CSV, Parquet or JSONL)")
    if not path.is_file():
        raise ImportFileError(str(path), None, "no such file")
    try:
        if suffix in _PARQUET_SUFFIXES:
            return pq.read_table(path)
        if suffix in _JSON_SUFFIXES:
            return pa_json.read_json(path)
        delimiter = "\t" if suffix == ".tsv" else ","
        # An empty field is NULL, a quoted "" an empty string (as COPY reads CSV).
        convert = pa_csv.ConvertOptions(strings_can_be_null=True, quoted_strings_can_be_null=False)
        parse = pa_csv.ParseOptions(delimiter=delimiter)
        return pa_csv.read_csv(path, parse_options=parse, convert_options=convert)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ImportFileError(str(path), None, " ".join(str(exc).split())) from None


def _copy_in(conn: Connection, target: sql.Identifier, data: pa.Table) -> None:
    """Stream ``data`` into ``target`` as CSV, matching columns by name."""
    columns = sql.SQL(", ").join(sql.Identifier(name) for name in data.column_names)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, columns)
    # pyarrow quotes every string (so "" is an empty string) and leaves nulls
    # bare (so the server reads NULL): COPY's CSV rules exactly.
    options = pa_csv.WriteOptions(include_header=False)
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for batch in _csv_ready(data).to_batches(max_chunksize=COPY_CHUNK_ROWS):
            buffer = io.BytesIO()
            pa_csv.write_csv(batch, buffer, write_options=options)
            copy.write(buffer.getvalue())


def _csv_ready(data: pa.Table) -> pa.Table:
    """Columns the CSV writer cannot render, turned into text PostgreSQL parses."""
    return pa.Table.from_arrays(
        [_csv_column(column) for column in data.columns], names=data.column_names
    )


def _csv_column(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_nested(kind):
        return pa.array([_json_text(v) for v in column.to_pylist()], type=pa.string())
    if pa.types.is_duration(kind):
        micros = column.cast(pa.duration("us"), safe=False).cast(pa.int64()).to_pylist()
        return pa.array([None if v is None else f"{v} microseconds" for v in micros], pa.string())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        # bytea's hex input format
        return pa.array([None if v is None else "\\x" + v.hex() for v in column.to_pylist()])
    return column


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def _copy_problem(exc: psycopg.Error) -> str:
    """The server's message, naming the data row COPY choked on (1-based)."""
    message = _engine_message(exc)
    match = _ROW_RE.search(exc.diag.context or "")
    return f"row {match.group(1)}: {message}" if match else message


def _create_table_from_arrow(table: str, schema: pa.Schema) -> sql.Composed:
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(field.name), sql.SQL(_pg_type(field.type)))
        for field in schema
    )
    return sql.SQL("CREATE TABLE {} ({})").format(_table(table), columns)


_PG_TYPES: dict[pa.DataType, str] = {
    pa.bool_(): "BOOLEAN",
    pa.int8(): "SMALLINT",
    pa.uint8(): "SMALLINT",
    pa.int16(): "SMALLINT",
    pa.uint16(): "INTEGER",
    pa.int32(): "INTEGER",
    pa.uint32(): "BIGINT",
    pa.int64(): "BIGINT",
    pa.uint64(): "NUMERIC(20)",
    pa.float16(): "REAL",
    pa.float32(): "REAL",
    pa.float64(): "DOUBLE PRECISION",
    pa.binary(): "BYTEA",
    pa.large_binary(): "BYTEA",
    pa.date32(): "DATE",
    pa.date64(): "DATE",
}


def _pg_type(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        return _pg_type(kind.value_type)
    if kind in _PG_TYPES:
        return _PG_TYPES[kind]
    if pa.types.is_timestamp(kind):
        return "TIMESTAMPTZ" if kind.tz else "TIMESTAMP"
    if pa.types.is_decimal(kind):
        return f"NUMERIC({kind.precision}, {kind.scale})"
    if pa.types.is_time(kind):
        return "TIME"
    if pa.types.is_duration(kind):
        return "INTERVAL"
    if pa.types.is_nested(kind):
        return "JSONB"
    return "TEXT"  # strings, and all-null columns (Arrow's null type)

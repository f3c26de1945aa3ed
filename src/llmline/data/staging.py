"""Out-of-core staging for a build, with bounded memory however large the
extraction is.

Transformed batches are streamed into one Parquet file next to a private
DuckDB database.  The heavy columns (texts, MinHash signatures) stay in that
file and are read from it only where needed; DuckDB keeps a narrow ``rows``
table (row number in the file, id, split, hash) for de-duplication, split
counts and the sorted export.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from llmline.data.dedup import U64, similar_to_earlier

__all__ = ["Staging"]

# Rows equal after lower-casing and collapsing whitespace are exact duplicates.
_NORMALISED = "lower(regexp_replace({col}, '\\s+', ' ', 'g'))"
# Every ordering is by content, never by arrival order: the warehouse may
# return rows in any order and the output must still be byte-identical.
_CONTENT_ORDER = "key, input_text, output_text"
_BATCH_ROWS = 65_536


def _squeezed(col: str) -> str:
    """SQL for a cheap stand-in of _NORMALISED, for hashing: lower-cased with
    every whitespace character dropped (RE2's \\s is [\\t\\n\\f\\r ]; \\v
    goes too, which only coarsens it), plain ``replace`` calls instead of a
    regex.  It is a function of the normalised text, so equal normalised texts
    always hash alike; rows sharing a hash are then compared on _NORMALISED."""
    sql = f"lower({col})"
    for code in (9, 10, 11, 12, 13, 32):
        sql = f"replace({sql}, chr({code}), '')"
    return sql


def _signatures(column: pa.Array) -> U64:
    """Fixed-width signature blobs → an (n, num_perm) uint64 matrix."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[
        column.offset : column.offset + len(column) + 1
    ]
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data.view(np.uint64).reshape(len(column), -1)


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class Staging:
    def __init__(self, path: Path, *, memory_limit: str = "512MB", threads: int = 2) -> None:
        self.con = duckdb.connect(str(path))
        self.con.execute(f"SET memory_limit = '{memory_limit}'")
        self.con.execute(f"SET threads = {threads}")
        self.con.execute(f"SET temp_directory = {_quote(path.parent / 'spill')}")
        self.con.execute("SET preserve_insertion_order = true")
        self._file = path.with_name(f"{path.stem}.rows.parquet")
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._appended = 0
        self._numbered = False

    # -- staging ---------------------------------------------------------------------------
    def append(self, table: pa.Table) -> None:
        if self._numbered:
            raise RuntimeError("rows cannot be appended once they are numbered")
        if self._schema is None:
            self._schema = table.schema
        elif table.schema != self._schema:
            table = table.cast(self._schema)
        if self._writer is None:
            # Uncompressed, no dictionaries: the file lives only as long as the
            # build, and is written and read a few times from the page cache.
            self._writer = pq.ParquetWriter(
                self._file, self._schema, compression="none", use_dictionary=["split"]
            )
        self._writer.write_table(table)
        self._appended += table.num_rows

    @property
    def _staged(self) -> str:
        """The staged rows, with ``rid`` (their row number in the file)."""
        return (
            f"(SELECT * EXCLUDE (file_row_number), file_row_number AS rid "
            f"FROM read_parquet({_quote(self._file)}, file_row_number = true))"
        )

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def count(self) -> int:
        if not self._numbered:
            return self._appended
        # fetchall, not fetchone: a half-read result would block the connection.
        ((n,),) = self.con.execute("SELECT count(*) FROM rows").fetchall()
        return int(n)

    # -- de-duplication ----------------------------------------------------------------------
    def number_rows(self, *, drop_exact_duplicates: bool) -> int:
        """Give rows ids in content order (``key, input_text, output_text``),
        keeping only the first row of each normalised text pair when asked;
        return how many rows were dropped.

        Only narrow columns are sorted: rows whose normalised texts share a
        hash with another row, and rows whose key is not unique, are the only
        ones whose texts are compared, and they are few."""
        self._close_writer()
        if self._appended == 0:
            self.con.execute(
                "CREATE TABLE rows (rid BIGINT, id BIGINT, split VARCHAR, split_hash UBIGINT)"
            )
            self._numbered = True
            return 0
        staged = self._staged
        pair_hash = (
            f"hash({_squeezed('input_text')}, {_squeezed('output_text')})"
            if drop_exact_duplicates
            else "NULL::UBIGINT"
        )
        self.con.execute(
            f"CREATE TEMP TABLE narrow AS "
            f"SELECT rid, key, split, split_hash, {pair_hash} AS pair_hash FROM {staged}"
        )
        if drop_exact_duplicates:
            # Equal normalised texts have equal hashes; only rows sharing a hash
            # are compared on the normalised texts themselves.
            self.con.execute(
                f"""
                CREATE TEMP TABLE dropped AS
                SELECT rid FROM (
                  SELECT rid, row_number() OVER (
                    PARTITION BY {_NORMALISED.format(col="input_text")},
                                 {_NORMALISED.format(col="output_text")}
                    ORDER BY {_CONTENT_ORDER}) AS rn
                  FROM {staged}
                  WHERE rid IN (
                    SELECT rid FROM narrow WHERE pair_hash IN (
                      SELECT pair_hash FROM narrow GROUP BY pair_hash HAVING count(*) > 1)))
                WHERE rn > 1
                """
            )
            self.con.execute("DELETE FROM narrow WHERE rid IN (SELECT rid FROM dropped)")
            self.con.execute("DROP TABLE dropped")
        # Order by key; rows sharing a key are ranked by their texts.
        self.con.execute(
            "CREATE TEMP TABLE shared_keys AS SELECT rid FROM ("
            "  SELECT rid, count(*) OVER (PARTITION BY key) AS n FROM narrow) WHERE n > 1"
        )
        self.con.execute(
            f"""
            CREATE TEMP TABLE ties AS
            SELECT rid, row_number() OVER (PARTITION BY key ORDER BY input_text, output_text) AS tie
            FROM {staged} WHERE rid IN (SELECT rid FROM shared_keys)
            """
        )
        self.con.execute(
            """
            CREATE TABLE rows AS
            SELECT n.rid, row_number() OVER (ORDER BY n.key, coalesce(t.tie, 0)) AS id,
                   n.split, n.split_hash
            FROM narrow AS n LEFT JOIN ties AS t ON n.rid = t.rid
            """
        )
        for table in ("narrow", "shared_keys", "ties"):
            self.con.execute(f"DROP TABLE {table}")
        self._numbered = True
        return self._appended - self.count()

    def drop_near_duplicates(self, threshold: float) -> int:
        """Drop every row whose estimated Jaccard similarity to a row with a
        smaller id reaches ``threshold``; candidates are rows that share an LSH
        band, confirmed on their full signatures (``similar_to_earlier``)."""
        if self.count() == 0:
            return 0
        staged = self._staged
        table = self.con.sql(
            f"SELECT r.id, s.bands FROM rows AS r "
            f"JOIN (SELECT rid, bands FROM {staged}) AS s ON r.rid = s.rid"
        ).to_arrow_table()
        n = table.num_rows
        if n == 0:
            return 0
        ids = table.column("id").to_numpy()
        bands = pc.list_flatten(table.column("bands")).to_numpy().reshape(n, -1)
        del table
        by_id = np.argsort(ids, kind="stable")
        ids, bands = ids[by_id], bands[by_id]

        def signatures(rows: npt.NDArray[np.intp]) -> U64:
            wanted = ids[rows]  # ascending
            self.con.register("near_ids", pa.table({"id": wanted}))
            try:
                reader = self.con.sql(
                    f"SELECT r.id, s.sig FROM rows AS r "
                    f"JOIN (SELECT rid, sig FROM {staged}) AS s ON r.rid = s.rid "
                    f"WHERE r.id IN (SELECT id FROM near_ids)"
                ).to_arrow_reader(_BATCH_ROWS)
                out: U64 | None = None
                for batch in reader:
                    part = _signatures(batch.column("sig"))
                    if out is None:
                        out = np.empty((len(wanted), part.shape[1]), dtype=np.uint64)
                    out[np.searchsorted(wanted, batch.column("id").to_numpy())] = part
            finally:
                self.con.unregister("near_ids")
            assert out is not None
            return out

        doomed = ids[similar_to_earlier(bands, signatures, threshold)]
        if len(doomed):
            self.con.register("doomed", pa.table({"id": doomed}))
            self.con.execute("DELETE FROM rows WHERE id IN (SELECT id FROM doomed)")
            self.con.unregister("doomed")
        return len(doomed)

    # -- export ----------------------------------------------------------------------------
    def split_counts(self) -> dict[str, int]:
        rows = self.con.execute("SELECT split, count(*) FROM rows GROUP BY split").fetchall()
        return {str(name): int(n) for name, n in rows}

    def export(self, split: str, folder: Path) -> Iterator[Path]:
        """Write ``<split>.jsonl`` and ``<split>.parquet``; yield their paths."""
        query = (
            f"SELECT s.input_text, s.output_text "
            f"FROM (SELECT rid, input_text, output_text FROM {self._staged}) AS s "
            f"JOIN rows AS r ON r.rid = s.rid "
            f"WHERE r.split = '{split.replace(chr(39), '')}' ORDER BY r.split_hash, r.id"
        )
        jsonl = folder / f"{split}.jsonl"
        parquet = folder / f"{split}.parquet"
        # One thread: a parallel sorted COPY buffers out-of-order batches and
        # overruns the memory limit at a million rows; the bytes are the same.
        self.con.execute("SET threads = 1")
        # Sort once: the JSON lines are read back, in file order, from the Parquet file.
        self.con.execute(
            f"COPY ({query}) TO {_quote(parquet)} "
            "(FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE 100000)"
        )
        self.con.execute(
            f"COPY (SELECT input_text, output_text FROM read_parquet({_quote(parquet)})) "
            f"TO {_quote(jsonl)} (FORMAT JSON)"
        )
        yield jsonl
        yield parquet

    def close(self) -> None:
        self._close_writer()
        self.con.close()
        self._file.unlink(missing_ok=True)

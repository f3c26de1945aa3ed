"""Out-of-core staging for a build: a private DuckDB file holds every cleaned
row, so de-duplication and the sorted export run with bounded memory however
large the extraction is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from llmline.data.dedup import U64, estimate_jaccard

__all__ = ["Staging"]

# Rows equal after lower-casing and collapsing whitespace are exact duplicates.
_NORMALISED = "lower(regexp_replace({col}, '\\s+', ' ', 'g'))"
# Every ordering is by content, never by arrival order: the warehouse may
# return rows in any order and the output must still be byte-identical.
_CONTENT_ORDER = "key, input_text, output_text"
_PAIR_CHUNK = 65_536


def _signatures(column: pa.Array) -> U64:
    """Fixed-width signature blobs → an (n, num_perm) uint64 matrix."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[
        column.offset : column.offset + len(column) + 1
    ]
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data.view(np.uint64).reshape(len(column), -1)


class Staging:
    def __init__(self, path: Path, *, memory_limit: str = "512MB", threads: int = 2) -> None:
        self.con = duckdb.connect(str(path))
        self.con.execute(f"SET memory_limit = '{memory_limit}'")
        self.con.execute(f"SET threads = {threads}")
        self.con.execute(f"SET temp_directory = '{path.parent / 'spill'}'")
        self.con.execute("SET preserve_insertion_order = true")
        self._created = False

    def append(self, table: pa.Table) -> None:
        self.con.register("incoming", table)
        if self._created:
            self.con.execute("INSERT INTO rows SELECT * FROM incoming")
        else:
            self.con.execute("CREATE TABLE rows AS SELECT * FROM incoming")
            self._created = True
        self.con.unregister("incoming")

    def count(self) -> int:
        if not self._created:
            return 0
        row = self.con.execute("SELECT count(*) FROM rows").fetchone()
        return int(row[0]) if row else 0

    def number_rows(self, *, drop_exact_duplicates: bool) -> int:
        """Give rows ids in content order, keeping only the first row of each
        normalised text pair when asked; return how many rows were dropped."""
        before = self.count()
        source = "(SELECT * FROM rows)"
        if drop_exact_duplicates:
            source = f"""(
              SELECT * EXCLUDE (rn) FROM (
                SELECT *, row_number() OVER (
                  PARTITION BY {_NORMALISED.format(col="input_text")},
                               {_NORMALISED.format(col="output_text")}
                  ORDER BY {_CONTENT_ORDER}) AS rn
                FROM rows)
              WHERE rn = 1)"""
        self.con.execute(
            "CREATE TABLE numbered AS "
            f"SELECT *, row_number() OVER (ORDER BY {_CONTENT_ORDER}) AS id FROM {source}"
        )
        self.con.execute("DROP TABLE rows")
        self.con.execute("ALTER TABLE numbered RENAME TO rows")
        return before - self.count()

    def drop_near_duplicates(self, threshold: float) -> int:
        """Drop every row whose estimated Jaccard similarity to a row with a
        smaller id reaches ``threshold``; candidates come from shared LSH bands
        and are confirmed on their full signatures, a chunk of pairs at a time."""
        self.con.execute(
            """
            CREATE TEMP TABLE candidates AS
            WITH b AS (
              SELECT id, unnest(bands) AS h, generate_subscripts(bands, 1) AS band FROM rows)
            SELECT DISTINCT x.id AS lo, y.id AS hi
            FROM b AS x JOIN b AS y ON x.band = y.band AND x.h = y.h AND x.id < y.id
            WHERE x.h <> 0
            """
        )
        reader = self.con.sql(
            """
            SELECT c.hi, a.sig AS sig_lo, b.sig AS sig_hi
            FROM candidates AS c JOIN rows AS a ON a.id = c.lo JOIN rows AS b ON b.id = c.hi
            """
        ).to_arrow_reader(_PAIR_CHUNK)
        doomed: set[int] = set()
        for chunk in reader:
            similarity = estimate_jaccard(
                _signatures(chunk.column("sig_lo")), _signatures(chunk.column("sig_hi"))
            )
            similar = similarity >= threshold
            doomed.update(chunk.column("hi").to_numpy()[similar].tolist())
        self.con.execute("DROP TABLE candidates")
        if doomed:
            ids = pa.table({"id": pa.array(sorted(doomed), type=pa.int64())})
            self.con.register("doomed", ids)
            self.con.execute("DELETE FROM rows WHERE id IN (SELECT id FROM doomed)")
            self.con.unregister("doomed")
        return len(doomed)

    def split_counts(self) -> dict[str, int]:
        rows = self.con.execute("SELECT split, count(*) FROM rows GROUP BY split").fetchall()
        return {str(name): int(n) for name, n in rows}

    def export(self, split: str, folder: Path) -> Iterator[Path]:
        """Write ``<split>.jsonl`` and ``<split>.parquet``; yield their paths."""
        query = (
            "SELECT input_text, output_text FROM rows "
            f"WHERE split = '{split.replace(chr(39), '')}' ORDER BY split_hash, id"
        )
        jsonl = folder / f"{split}.jsonl"
        parquet = folder / f"{split}.parquet"
        self.con.execute(f"COPY ({query}) TO '{jsonl}' (FORMAT JSON)")
        yield jsonl
        self.con.execute(
            f"COPY ({query}) TO '{parquet}' "
            "(FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE 100000)"
        )
        yield parquet

    def close(self) -> None:
        self.con.close()

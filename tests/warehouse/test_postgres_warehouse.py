"""PostgresWarehouse against a real PostgreSQL server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmline.errors import ConfigError, ImportFileError, NotFoundError, SQLError
from llmline.warehouse import connect
from llmline.warehouse.postgres_warehouse import PostgresWarehouse
from llmline.warehouse.schema import ANSWERS, QUESTIONS

pytestmark = pytest.mark.postgres


@pytest.fixture
def wh(postgres_url: str) -> Iterator[PostgresWarehouse]:
    warehouse = PostgresWarehouse(postgres_url)
    yield warehouse
    warehouse.close()


def _rows(wh: PostgresWarehouse, sql: str) -> list[dict[str, object]]:
    return [row for batch in wh.iter_batches(sql) for row in batch.to_pylist()]


def _questions(ids: list[int], title: str = "t") -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "id": ids,
            "title": [f"{title}{i}" for i in ids],
            "body": ["<p>b</p>"] * n,
            "tags": ["python|sql"] * n,
            "creation_date": [datetime(2024, 1, 2, 3, 4, 5)] * n,
            "accepted_answer_id": [None] * n,
            "score": [1] * n,
            "view_count": [10] * n,
        },
        schema=QUESTIONS,
    )


# -- connecting -----------------------------------------------------------------------
def test_connect_accepts_every_postgres_scheme(postgres_url: str) -> None:
    rest = postgres_url.removeprefix("postgresql://")
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        with connect(f"{scheme}://{rest}") as warehouse:
            assert isinstance(warehouse, PostgresWarehouse)
            assert warehouse.dialect == "postgres"
            assert _rows(warehouse, "SELECT 1 AS one") == [{"one": 1}]


def test_bad_urls() -> None:
    with pytest.raises(ConfigError):
        PostgresWarehouse("mysql://x@127.0.0.1/db")
    with pytest.raises(SQLError, match=r"cannot open warehouse postgresql://u:\*\*\*@"):
        PostgresWarehouse("postgresql://u:secret@127.0.0.1:1/db")


# -- schema, tables --------------------------------------------------------------------
def test_ensure_schema_and_tables(wh: PostgresWarehouse) -> None:
    wh.ensure_schema()
    wh.ensure_schema()  # idempotent
    tables = {t.name: t for t in wh.tables()}
    assert set(tables) == {"posts_questions", "posts_answers"}
    assert list(tables["posts_questions"].columns) == QUESTIONS.names
    assert list(tables["posts_answers"].columns) == ANSWERS.names
    assert tables["posts_questions"].columns["creation_date"] == "timestamp without time zone"
    assert tables["posts_questions"].rows == 0
    wh.upsert({"posts_questions": _questions([1, 2, 3])})
    assert {t.name: t.rows for t in wh.tables()}["posts_questions"] == 3
    assert tables["posts_answers"].to_dict()["rows"] == 0


# -- queries ---------------------------------------------------------------------------
def test_iter_batches_streams_in_batches(wh: PostgresWarehouse) -> None:
    batches = list(
        wh.iter_batches("SELECT g AS n, 'row ' || g AS label FROM generate_series(1, 2500) g", 1000)
    )
    assert [b.num_rows for b in batches] == [1000, 1000, 500]
    assert batches[0].schema.names == ["n", "label"]
    assert batches[0].schema.field("n").type == pa.int32()
    assert batches[-1].column("label")[-1].as_py() == "row 2500"
    assert list(wh.iter_batches("SELECT 1 AS a WHERE false")) == []


def test_iter_batches_uses_a_server_side_cursor(wh: PostgresWarehouse, postgres_url: str) -> None:
    stream = wh.iter_batches("SELECT g FROM generate_series(1, 100000) g", 10)
    first = next(stream)
    assert first.num_rows == 10
    # The rest of the result waits in the server: a named cursor is open...
    with psycopg.connect(postgres_url, autocommit=True) as other:
        cursors = other.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'FETCH FORWARD 10 %%'"
        ).fetchone()
        assert cursors == (1,)
        # ...and the warehouse still answers other queries meanwhile.
        assert wh.result_columns("SELECT 1 AS x") == ["x"]
    stream.close()  # abandoning the stream releases its connection


def test_iter_batches_memory_stays_flat(wh: PostgresWarehouse) -> None:
    psutil = pytest.importorskip("psutil")
    process = psutil.Process()
    list(wh.iter_batches("SELECT 1"))  # warm up imports and pools
    baseline = peak = process.memory_info().rss
    rows = 0
    sql = "SELECT g, repeat('x', 500) AS s FROM generate_series(1, 300000) g"  # ~150 MB
    for batch in wh.iter_batches(sql, 5000):
        rows += batch.num_rows
        peak = max(peak, process.memory_info().rss)
    assert rows == 300_000
    assert peak - baseline < 75_000_000  # a fraction of the result, not all of it


def test_result_types_are_stable_arrow_types(wh: PostgresWarehouse) -> None:
    sql = (
        "SELECT true AS b, 1::bigint AS i, 1.5::float8 AS f, 2.25::numeric(6,2) AS dec, "
        "avg(x) AS mean, 'é'::text AS s, DATE '2024-01-02' AS d, "
        "TIMESTAMP '2024-01-02 03:04:05' AS ts, '{\"a\": [1]}'::jsonb AS j, "
        "ARRAY['x','y'] AS arr, NULL::int AS nothing FROM (VALUES (1), (2)) v(x)"
    )
    [batch] = wh.iter_batches(sql)
    types = {f.name: f.type for f in batch.schema}
    assert types == {
        "b": pa.bool_(),
        "i": pa.int64(),
        "f": pa.float64(),
        "dec": pa.decimal128(6, 2),
        "mean": pa.float64(),
        "s": pa.string(),
        "d": pa.date32(),
        "ts": pa.timestamp("us"),
        "j": pa.string(),
        "arr": pa.string(),
        "nothing": pa.int32(),
    }
    row = batch.to_pylist()[0]
    assert (row["mean"], row["s"], row["ts"]) == (1.5, "é", datetime(2024, 1, 2, 3, 4, 5))
    assert json.loads(str(row["j"])) == {"a": [1]}
    assert json.loads(str(row["arr"])) == ["x", "y"]


def test_sql_errors_carry_postgres_message(wh: PostgresWarehouse) -> None:
    with pytest.raises(SQLError, match='relation "nope" does not exist') as info:
        list(wh.iter_batches("SELECT * FROM nope"))
    assert "\n" not in str(info.value)
    assert "DECLARE" not in str(info.value)  # our cursor plumbing is not the user's SQL
    with pytest.raises(SQLError, match="division by zero"):
        list(wh.iter_batches("SELECT 1 / (g - 3) FROM generate_series(1, 5) g", 1))
    with pytest.raises(SQLError, match="syntax error"):
        wh.result_columns("SELEC 1")
    # The failures left nothing behind on the shared connection.
    assert wh.result_columns("SELECT 1 AS a, 2 AS b") == ["a", "b"]


def test_result_columns_does_not_run_the_query(wh: PostgresWarehouse) -> None:
    # pg_sleep would take 60 s if the query ran.
    assert wh.result_columns("SELECT pg_sleep(60) AS slept, 1 AS x") == ["slept", "x"]


# -- loading files ---------------------------------------------------------------------
def _write_files(tmp_path: Path) -> dict[str, Path]:
    csv = tmp_path / "q.csv"
    csv.write_text('id,title,score\n1,"Hello, ""world""",3\n2,,5\n3,"",\n')
    parquet = tmp_path / "q.parquet"
    pq.write_table(pa.table({"id": [4, 5], "title": ["p4", "p5"], "score": [1, 2]}), parquet)
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"id": 6, "title": "j6", "score": 7}\n{"id": 7, "title": "j7"}\n')
    return {"csv": csv, "parquet": parquet, "jsonl": jsonl}


def test_load_table_creates_appends_and_replaces(wh: PostgresWarehouse, tmp_path: Path) -> None:
    files = _write_files(tmp_path)
    assert wh.load_table("q", files["csv"]) == 3
    assert _rows(wh, "SELECT id, title, score FROM q ORDER BY id") == [
        {"id": 1, "title": 'Hello, "world"', "score": 3},
        {"id": 2, "title": None, "score": 5},  # empty CSV field: NULL
        {"id": 3, "title": "", "score": None},  # quoted empty string stays a string
    ]
    assert wh.load_table("q", files["parquet"], mode="append") == 2
    assert wh.load_table("q", files["jsonl"], mode="append") == 2
    assert [r["id"] for r in _rows(wh, "SELECT id FROM q ORDER BY id")] == list(range(1, 8))
    assert wh.load_table("q", files["parquet"], mode="replace") == 2
    assert _rows(wh, "SELECT id, title FROM q ORDER BY id") == [
        {"id": 4, "title": "p4"},
        {"id": 5, "title": "p5"},
    ]
    columns = {t.name: t.columns for t in wh.tables()}["q"]
    assert columns == {"id": "bigint", "title": "text", "score": "bigint"}


def test_load_table_into_the_stack_overflow_schema(wh: PostgresWarehouse, tmp_path: Path) -> None:
    wh.ensure_schema()
    path = tmp_path / "questions.parquet"
    pq.write_table(_questions([1, 2]), path)
    assert wh.load_table("posts_questions", path) == 2
    rows = _rows(wh, "SELECT id, creation_date, accepted_answer_id FROM posts_questions")
    assert rows[0]["creation_date"] == datetime(2024, 1, 2, 3, 4, 5)
    assert rows[0]["accepted_answer_id"] is None


def test_load_table_bad_files_load_nothing(wh: PostgresWarehouse, tmp_path: Path) -> None:
    files = _write_files(tmp_path)
    wh.load_table("q", files["csv"])
    bad_type = tmp_path / "bad.csv"
    bad_type.write_text("id,title\n10,a\n11,b\nnot-a-number,c\n")
    with pytest.raises(ImportFileError, match=r"bad\.csv: row 3: invalid input syntax"):
        wh.load_table("q", bad_type, mode="replace")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("id,title\n1,a,extra\n")
    with pytest.raises(ImportFileError, match=r"ragged\.csv"):
        wh.load_table("q", ragged, mode="replace")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": 1}\n{"id": \n')
    with pytest.raises(ImportFileError, match=r"broken\.jsonl"):
        wh.load_table("fresh", broken)
    with pytest.raises(ImportFileError, match="unsupported file type"):
        wh.load_table("q", tmp_path / "q.xlsx")
    with pytest.raises(ImportFileError, match="no such file"):
        wh.load_table("q", tmp_path / "missing.csv")
    # The replace was rolled back with the failed COPY; no table was created.
    assert [r["id"] for r in _rows(wh, "SELECT id FROM q ORDER BY id")] == [1, 2, 3]
    assert "fresh" not in {t.name for t in wh.tables()}


def test_load_table_failure_does_not_leave_a_new_table(
    wh: PostgresWarehouse, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.jsonl"
    # pyarrow reads it (nested values), the server rejects a NUL byte in text.
    path.write_text('{"id": 1, "meta": {"a": 1}, "s": "ok"}\n{"id": 2, "s": "nul \\u0000"}\n')
    with pytest.raises(ImportFileError, match=r"mixed\.jsonl"):
        wh.load_table("mixed", path)
    assert wh.tables() == []


# -- upsert, fingerprint -----------------------------------------------------------------
def test_upsert_replaces_by_key_across_tables(wh: PostgresWarehouse) -> None:
    wh.ensure_schema()
    answers = pa.table(
        {"id": [10], "parent_id": [1], "body": ["a"], "creation_date": [None], "score": [2]},
        schema=ANSWERS,
    )
    assert wh.upsert({"posts_questions": _questions([1, 2]), "posts_answers": answers}) == 3
    assert wh.upsert({"posts_questions": _questions([2, 3], title="new")}) == 2
    assert _rows(wh, "SELECT id, title FROM posts_questions ORDER BY id") == [
        {"id": 1, "title": "t1"},
        {"id": 2, "title": "new2"},
        {"id": 3, "title": "new3"},
    ]
    assert _rows(wh, "SELECT id, body FROM posts_answers") == [{"id": 10, "body": "a"}]


def test_upsert_is_all_or_nothing(wh: PostgresWarehouse) -> None:
    wh.ensure_schema()
    wh.upsert({"posts_questions": _questions([1])})
    before = wh.fingerprint("posts_questions")
    bad_answers = pa.table({"id": [10], "parent_id": ["not a number"]})
    with pytest.raises(SQLError, match="invalid input syntax for type bigint"):
        wh.upsert({"posts_questions": _questions([1, 2], "x"), "posts_answers": bad_answers})
    assert wh.fingerprint("posts_questions") == before
    assert _rows(wh, "SELECT count(*) AS n FROM posts_answers") == [{"n": 0}]
    with pytest.raises(NotFoundError):
        wh.upsert({"posts_questions": _questions([5]), "nope": _questions([6])})
    with pytest.raises(SQLError, match="no key column"):
        wh.upsert({"posts_questions": _questions([5]).drop_columns(["id"])})
    assert wh.fingerprint("posts_questions") == before


def test_fingerprint_ignores_order_and_tracks_content(wh: PostgresWarehouse) -> None:
    wh.ensure_schema()
    with pytest.raises(NotFoundError):
        wh.fingerprint("nope")
    empty = wh.fingerprint("posts_questions")
    assert empty == "0:0000000000000000"
    wh.upsert({"posts_questions": _questions([1, 2, 3])})
    first = wh.fingerprint("posts_questions")
    # Same rows written in another physical order: same fingerprint.
    wh.conn.execute("DELETE FROM posts_questions")
    wh.upsert({"posts_questions": _questions([3, 1, 2])})
    assert wh.fingerprint("posts_questions") == first
    assert first.startswith("3:")
    wh.upsert({"posts_questions": _questions([2], title="changed")})
    assert wh.fingerprint("posts_questions") not in (first, empty)

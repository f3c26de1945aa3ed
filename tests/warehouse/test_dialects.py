"""BigQuery-dialect SQL, transpiled, against real warehouses.

Each BigQuery query runs on a real DuckDB warehouse after ``transpile`` and
must return exactly what a hand-written DuckDB query over the local tables
returns.  The PostgreSQL tests run the transpiled SQL on a real server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from llmline.data.spec import DEFAULT_SQL
from llmline.errors import ConfigError, SQLError
from llmline.settings import DEFAULT_TABLE_MAP
from llmline.warehouse.base import Warehouse
from llmline.warehouse.dialects import parse_statement, rename_tables, transpile
from llmline.warehouse.duckdb_warehouse import DuckDBWarehouse
from llmline.warehouse.schema import ANSWERS, QUESTIONS

QUESTIONS_ROWS: list[dict[str, Any]] = [
    # id, title, body, tags, creation_date, accepted_answer_id, score, view_count
    {"id": 1, "title": "How do I sort a dict?", "body": "<p>By value</p>", "tags": "python|dict",
     "creation_date": datetime(2009, 3, 1, 8, 0), "accepted_answer_id": 11, "score": 50,
     "view_count": 900},
    {"id": 2, "title": "42", "body": "<p>Why 42?</p>", "tags": "java",
     "creation_date": datetime(2012, 7, 4, 23, 59), "accepted_answer_id": 12, "score": 3,
     "view_count": 10},
    {"id": 3, "title": "Pandas merge", "body": "<p>How?</p>", "tags": "python-3.x|pandas",
     "creation_date": datetime(2015, 1, 1, 0, 0), "accepted_answer_id": 13, "score": 7,
     "view_count": 70},
    {"id": 4, "title": "Untagged", "body": "<p>No tags</p>", "tags": None,
     "creation_date": datetime(2015, 6, 30, 12, 0), "accepted_answer_id": None, "score": 0,
     "view_count": 1},
    {"id": 5, "title": "C++ and Python", "body": "<p>Bindings</p>", "tags": "c++|python",
     "creation_date": datetime(2021, 11, 5, 9, 30), "accepted_answer_id": 15, "score": 12,
     "view_count": 300},
]  # fmt: skip
ANSWERS_ROWS: list[dict[str, Any]] = [
    {"id": 11, "parent_id": 1, "body": "<p>sorted(d.items())</p>",
     "creation_date": datetime(2009, 3, 1, 9, 0), "score": 40},
    {"id": 12, "parent_id": 2, "body": "<p>Because.</p>",
     "creation_date": datetime(2012, 7, 5, 0, 1), "score": 1},
    {"id": 13, "parent_id": 3, "body": "<p>pd.merge</p>",
     "creation_date": datetime(2015, 1, 2, 0, 0), "score": 5},
    {"id": 14, "parent_id": 3, "body": "<p>join</p>",
     "creation_date": datetime(2015, 1, 3, 0, 0), "score": -1},
    {"id": 15, "parent_id": 5, "body": "<p>pybind11</p>",
     "creation_date": datetime(2021, 11, 6, 0, 0), "score": 9},
]  # fmt: skip

BQ = "bigquery-public-data.stackoverflow"


def _load(wh: Warehouse) -> Warehouse:
    wh.ensure_schema()
    wh.upsert(
        {
            "posts_questions": pa.Table.from_pylist(QUESTIONS_ROWS, schema=QUESTIONS),
            "posts_answers": pa.Table.from_pylist(ANSWERS_ROWS, schema=ANSWERS),
        }
    )
    return wh


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    wh = DuckDBWarehouse(f"duckdb:///{tmp_path}/w.duckdb")
    _load(wh)
    yield wh
    wh.close()


def _rows(wh: Warehouse, sql: str) -> list[dict[str, Any]]:
    return [row for batch in wh.iter_batches(sql) for row in batch.to_pylist()]


def _bq_rows(wh: Warehouse, sql: str, table_map: dict[str, str] | None = None) -> list[Any]:
    local = transpile(
        sql, read="bigquery", write=wh.dialect, table_map=table_map or DEFAULT_TABLE_MAP
    )
    return _rows(wh, local)


# (BigQuery query over the public dataset, hand-written DuckDB query over local tables)
CASES = {
    "backtick path, no alias": (
        f"SELECT id, title FROM `{BQ}.posts_questions` ORDER BY id",
        "SELECT id, title FROM posts_questions ORDER BY id",
    ),
    "alias without AS": (
        f"SELECT q.id FROM `{BQ}.posts_questions` q WHERE q.score > 5 ORDER BY q.id",
        "SELECT id FROM posts_questions WHERE score > 5 ORDER BY id",
    ),
    "columns qualified by the table name": (
        f"SELECT posts_questions.id FROM `{BQ}.posts_questions` "
        "WHERE posts_questions.view_count >= 70 ORDER BY 1",
        "SELECT id FROM posts_questions WHERE view_count >= 70 ORDER BY 1",
    ),
    "join with aliases": (
        f"SELECT q.id, a.id AS answer_id FROM `{BQ}.posts_questions` AS q "
        f"JOIN `{BQ}.posts_answers` AS a ON a.parent_id = q.id ORDER BY a.id",
        "SELECT q.id, a.id AS answer_id FROM posts_questions q "
        "JOIN posts_answers a ON a.parent_id = q.id ORDER BY a.id",
    ),
    "CTE and subquery": (
        f"WITH answered AS (SELECT parent_id, COUNT(*) AS n FROM `{BQ}.posts_answers` "
        "GROUP BY parent_id) "
        f"SELECT q.id, c.n FROM `{BQ}.posts_questions` q JOIN answered c ON c.parent_id = q.id "
        f"WHERE q.id IN (SELECT parent_id FROM `{BQ}.posts_answers` WHERE score > 0) "
        "ORDER BY q.id",
        "SELECT q.id, count(*) AS n FROM posts_questions q JOIN posts_answers a "
        "ON a.parent_id = q.id WHERE q.id IN (SELECT parent_id FROM posts_answers "
        "WHERE score > 0) GROUP BY q.id ORDER BY q.id",
    ),
    "REGEXP_CONTAINS with a raw string": (
        f"SELECT id FROM `{BQ}.posts_questions` "
        r"WHERE REGEXP_CONTAINS(tags, r'(^|\|)python(\||$)') ORDER BY id",
        "SELECT id FROM posts_questions "
        r"WHERE regexp_matches(tags, '(^|\|)python(\||$)') ORDER BY id",
    ),
    "CONCAT is NULL when an argument is": (
        f"SELECT id, CONCAT(title, ' [', tags, ']') AS label FROM `{BQ}.posts_questions` "
        "ORDER BY id",
        "SELECT id, title || ' [' || tags || ']' AS label FROM posts_questions ORDER BY id",
    ),
    "TIMESTAMP literals": (
        f"SELECT id FROM `{BQ}.posts_questions` WHERE creation_date >= TIMESTAMP '2015-01-01' "
        "AND creation_date < TIMESTAMP '2021-11-05 09:30:00' ORDER BY id",
        "SELECT id FROM posts_questions WHERE creation_date >= TIMESTAMP '2015-01-01' "
        "AND creation_date < TIMESTAMP '2021-11-05 09:30:00' ORDER BY id",
    ),
    "LIMIT": (
        f"SELECT id FROM `{BQ}.posts_answers` ORDER BY score DESC LIMIT 2",
        "SELECT id FROM posts_answers ORDER BY score DESC LIMIT 2",
    ),
    "SAFE_CAST": (
        f"SELECT id, SAFE_CAST(title AS INT64) AS n FROM `{BQ}.posts_questions` ORDER BY id",
        "SELECT id, TRY_CAST(title AS BIGINT) AS n FROM posts_questions ORDER BY id",
    ),
    "EXTRACT(YEAR FROM ...)": (
        f"SELECT EXTRACT(YEAR FROM creation_date) AS year, COUNT(*) AS n "
        f"FROM `{BQ}.posts_questions` GROUP BY year ORDER BY year",
        "SELECT year(creation_date) AS year, count(*) AS n FROM posts_questions "
        "GROUP BY year ORDER BY year",
    ),
}


@pytest.mark.parametrize(("bigquery_sql", "duckdb_sql"), CASES.values(), ids=CASES.keys())
def test_bigquery_sql_runs_on_duckdb_after_transpiling(
    duck: DuckDBWarehouse, bigquery_sql: str, duckdb_sql: str
) -> None:
    expected = _rows(duck, duckdb_sql)

    assert expected, "a case that returns nothing proves little"
    assert _bq_rows(duck, bigquery_sql) == expected


def test_semantics_the_cases_rely_on(duck: DuckDBWarehouse) -> None:
    """Guards against two queries agreeing on the wrong answer."""
    safe = _bq_rows(duck, CASES["SAFE_CAST"][0])
    labels = _bq_rows(duck, CASES["CONCAT is NULL when an argument is"][0])
    python = _bq_rows(duck, CASES["REGEXP_CONTAINS with a raw string"][0])

    assert [r["n"] for r in safe] == [None, 42, None, None, None]
    assert labels[0]["label"] == "How do I sort a dict? [python|dict]"
    assert labels[3]["label"] is None  # BigQuery's CONCAT is NULL if any argument is
    assert [r["id"] for r in python] == [1, 5]  # not python-3.x


def test_the_default_dataset_sql_runs_on_duckdb(duck: DuckDBWarehouse) -> None:
    expected = _rows(
        duck,
        "SELECT q.id AS id, q.title || chr(10) || chr(10) || q.body AS question, "
        "a.body AS answer, q.tags AS tags, q.creation_date AS creation_date "
        "FROM posts_questions q JOIN posts_answers a ON q.accepted_answer_id = a.id "
        "WHERE regexp_matches(q.tags, 'python') "
        "AND q.creation_date >= TIMESTAMP '2000-01-01' ORDER BY id",
    )

    got = sorted(_bq_rows(duck, DEFAULT_SQL), key=lambda row: row["id"])

    assert [r["id"] for r in got] == [1, 3, 5]
    assert got == expected


# -- table map ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "`BigQuery-Public-Data.StackOverflow.POSTS_QUESTIONS`",
        "`bigquery-public-data`.stackoverflow.posts_questions",
        "`bigquery-public-data`.`stackoverflow`.`posts_questions`",
    ],
)
def test_table_map_ignores_case_and_quoting(duck: DuckDBWarehouse, path: str) -> None:
    sql = f"SELECT id FROM {path} ORDER BY id"

    local = transpile(sql, read="bigquery", write="duckdb", table_map=DEFAULT_TABLE_MAP)

    assert local.startswith("SELECT id FROM posts_questions ORDER BY id")
    shouting = {k.upper(): v for k, v in DEFAULT_TABLE_MAP.items()}
    assert [r["id"] for r in _bq_rows(duck, sql, shouting)] == [1, 2, 3, 4, 5]


def test_unmapped_tables_pass_through_unchanged(duck: DuckDBWarehouse) -> None:
    duck.con.execute("CREATE TABLE extra AS SELECT 7 AS x")
    sql = f"SELECT e.x FROM extra AS e CROSS JOIN `{BQ}.posts_answers` AS a WHERE a.id = 11"

    local = transpile(sql, read="bigquery", write="duckdb", table_map=DEFAULT_TABLE_MAP)

    assert "FROM extra AS e" in local
    assert _rows(duck, local) == [{"x": 7}]
    assert transpile(
        "SELECT * FROM `other-project.ds.t`", read="bigquery", write="bigquery", table_map={}
    ) == ("SELECT * FROM `other-project.ds.t`")


def test_renamed_table_keeps_its_old_name_for_qualified_columns(duck: DuckDBWarehouse) -> None:
    table_map = {"my-project.so.questions": "posts_questions"}
    sql = "SELECT questions.title FROM `my-project.so.questions` WHERE questions.id = 3"

    local = transpile(sql, read="bigquery", write="duckdb", table_map=table_map)

    assert local == (
        "SELECT questions.title FROM posts_questions AS questions WHERE questions.id = 3"
    )
    assert _rows(duck, local) == [{"title": "Pandas merge"}]


def test_cte_names_shadow_mapped_tables() -> None:
    sql = "WITH posts_questions AS (SELECT 1 AS id) SELECT id FROM posts_questions"

    out = transpile(
        sql, read="duckdb", write="bigquery", table_map={"posts_questions": f"{BQ}.posts_questions"}
    )

    assert BQ not in out


def test_mapping_to_bigquery_writes_one_backtick_path() -> None:
    inverse = {local: public for public, local in DEFAULT_TABLE_MAP.items()}
    tree = parse_statement("SELECT q.id FROM posts_questions AS q", read="duckdb")

    out = rename_tables(tree, inverse, dialect="bigquery").sql("bigquery")

    assert out == f"SELECT q.id FROM `{BQ}.posts_questions` AS q"


def test_table_map_targets_are_names_not_sql() -> None:
    # Whatever a target holds, it ends up quoted as one name, never as SQL.
    out = transpile("SELECT 1 FROM t", read="duckdb", write="duckdb", table_map={"t": "x; DROP"})

    assert out == 'SELECT 1 FROM "x; DROP" AS t'
    with pytest.raises(ConfigError, match="table_map target"):
        transpile("SELECT 1 FROM t", read="duckdb", write="duckdb", table_map={"t": ""})


# -- errors ------------------------------------------------------------------------


def test_syntax_errors_name_line_and_column() -> None:
    sql = f"SELECT id,\n  FROM WHERE `{BQ}.posts_questions`"

    with pytest.raises(SQLError, match=r"syntax error \(bigquery\).*'WHERE' at line 2, column 8"):
        transpile(sql, read="bigquery", write="duckdb", table_map=DEFAULT_TABLE_MAP)


def test_an_unclosed_quote_is_a_syntax_error() -> None:
    with pytest.raises(SQLError, match="syntax error"):
        transpile("SELECT 'abc FROM t", read="bigquery", write="duckdb")


@pytest.mark.parametrize(("sql", "count"), [("SELECT 1; SELECT 2", 2), ("", 0), (";", 0)])
def test_exactly_one_statement(sql: str, count: int) -> None:
    with pytest.raises(SQLError, match=f"exactly one SQL statement, got {count}"):
        transpile(sql, read="bigquery", write="duckdb")


def test_a_trailing_semicolon_is_one_statement() -> None:
    assert transpile("SELECT 1;", read="bigquery", write="duckdb") == "SELECT 1"


def test_what_the_target_cannot_express_is_refused_not_dropped() -> None:
    with pytest.raises(SQLError, match=r"cannot express this query in postgres.*IGNORE NULLS"):
        transpile("SELECT ARRAY_AGG(x IGNORE NULLS) FROM t", read="bigquery", write="postgres")


# -- BigQuery -> PostgreSQL, on a real server ------------------------------------------


def test_timestamp_function_form_becomes_a_cast_for_postgres() -> None:
    out = transpile(
        "SELECT TIMESTAMP('2020-01-01'), TIMESTAMP('2020-01-01 10:00', 'Europe/Paris')",
        read="bigquery",
        write="postgres",
    )

    assert out == (
        "SELECT CAST('2020-01-01' AS TIMESTAMPTZ), "
        "CAST('2020-01-01 10:00' AS TIMESTAMP) AT TIME ZONE 'Europe/Paris'"
    )


@pytest.mark.postgres
def test_bigquery_sql_runs_on_postgres_like_on_duckdb(
    postgres_url: str, duck: DuckDBWarehouse
) -> None:
    from llmline.warehouse.postgres_warehouse import PostgresWarehouse

    queries = [
        DEFAULT_SQL,
        DEFAULT_SQL.replace("TIMESTAMP '2000-01-01'", "TIMESTAMP('2000-01-01')"),
        *(
            bq
            for name, (bq, _) in CASES.items()
            if name != "SAFE_CAST"  # PostgreSQL has no TRY_CAST: a plain cast fails on '...'
        ),
    ]
    with PostgresWarehouse(postgres_url) as pg:
        _load(pg)
        for sql in queries:
            by_id = sorted(_bq_rows(pg, sql), key=repr)

            assert by_id == sorted(_bq_rows(duck, sql), key=repr), sql

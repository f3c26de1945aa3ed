"""The BigQuery connector, offline.

SQL generation is tested for real (it is sqlglot, no service involved).
BigQuery itself cannot be reached from the test machines: the request logic
is tested against ``FakeClient``, a small stand-in written here from the
google-cloud-bigquery documentation.  It shows that the connector calls the
client as documented and handles what comes back; it proves nothing about
how BigQuery answers.
"""

from __future__ import annotations

import io
import sys
import types
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot

from llmline.data.spec import DEFAULT_SQL
from llmline.errors import ConfigError, ImportFileError, NotFoundError, SQLError
from llmline.settings import DEFAULT_TABLE_MAP
from llmline.warehouse import connect, transpile
from llmline.warehouse.bigquery_warehouse import BigQueryWarehouse
from llmline.warehouse.schema import QUESTIONS

BQ = "bigquery-public-data.stackoverflow"


# -- SQL generation ------------------------------------------------------------------


def test_duckdb_sql_over_local_tables_becomes_bigquery_sql_over_public_paths() -> None:
    sql = (
        "SELECT q.id, q.title || ': ' || a.body AS text FROM posts_questions q "
        "JOIN posts_answers AS a ON a.id = q.accepted_answer_id "
        "WHERE regexp_matches(q.tags, 'python') LIMIT 10"
    )

    out = BigQueryWarehouse.prepare(sql, "duckdb", DEFAULT_TABLE_MAP)

    assert out == (
        f"SELECT q.id, q.title || ': ' || a.body AS text FROM `{BQ}.posts_questions` AS q "
        f"JOIN `{BQ}.posts_answers` AS a ON a.id = q.accepted_answer_id "
        "WHERE REGEXP_CONTAINS(q.tags, 'python') LIMIT 10"
    )


def test_duckdb_concat_keeps_its_null_semantics_on_bigquery() -> None:
    # DuckDB's CONCAT skips NULLs; BigQuery's returns NULL.
    out = BigQueryWarehouse.prepare(
        "SELECT CONCAT(title, body) AS t FROM posts_questions", "duckdb", DEFAULT_TABLE_MAP
    )

    assert out == (
        f"SELECT CONCAT(COALESCE(title, ''), COALESCE(body, '')) AS t FROM `{BQ}.posts_questions`"
    )


@pytest.mark.parametrize(
    ("dialect", "literal"),
    [("duckdb", "TIMESTAMP '2015-01-01'"), ("postgres", "'2015-01-01'::timestamp")],
)
def test_local_timestamps_are_bigquery_timestamps(dialect: str, literal: str) -> None:
    # The local naive TIMESTAMP columns mirror BigQuery TIMESTAMP columns, so
    # a naive value must not become a DATETIME there.
    sql = f"SELECT id FROM posts_questions WHERE creation_date >= {literal}"

    out = BigQueryWarehouse.prepare(sql, dialect, DEFAULT_TABLE_MAP)

    assert out.endswith("WHERE creation_date >= CAST('2015-01-01' AS TIMESTAMP)")
    assert "DATETIME" not in out


def test_postgres_regex_match_becomes_regexp_contains() -> None:
    out = BigQueryWarehouse.prepare(
        "SELECT id FROM posts_questions WHERE tags ~ '^python'", "postgres", DEFAULT_TABLE_MAP
    )

    assert out == f"SELECT id FROM `{BQ}.posts_questions` WHERE REGEXP_CONTAINS(tags, '^python')"


def test_default_dataset_sql_round_trips_through_the_local_dialect() -> None:
    local = transpile(DEFAULT_SQL, read="bigquery", write="duckdb", table_map=DEFAULT_TABLE_MAP)

    back = BigQueryWarehouse.prepare(local, "duckdb", DEFAULT_TABLE_MAP)

    tree = sqlglot.parse_one(back, read="bigquery")
    tables = {t.sql("bigquery") for t in tree.find_all(sqlglot.exp.Table)}
    assert tables == {f"`{BQ}.posts_questions` AS q", f"`{BQ}.posts_answers` AS a"}
    assert "REGEXP_CONTAINS(q.tags, 'python')" in back
    assert "CAST('2000-01-01' AS TIMESTAMP)" in back


def test_bigquery_sql_and_unmapped_tables_are_left_alone() -> None:
    sql = f"SELECT * FROM `{BQ}.users` AS u JOIN my_table AS m ON m.id = u.id"

    assert BigQueryWarehouse.prepare(sql, "bigquery", DEFAULT_TABLE_MAP) == sql


def test_an_ambiguous_table_map_cannot_be_inverted() -> None:
    table_map = {"p.a.questions": "posts_questions", "p.b.questions": "posts_questions"}

    with pytest.raises(ConfigError, match="maps both"):
        BigQueryWarehouse.prepare("SELECT 1 FROM posts_questions", "duckdb", table_map)


def test_invalid_sql_is_an_sql_error() -> None:
    with pytest.raises(SQLError, match=r"syntax error.*line 1"):
        BigQueryWarehouse.prepare("SELECT FROM WHERE", "duckdb", DEFAULT_TABLE_MAP)


# -- the optional package ---------------------------------------------------------------


@pytest.fixture
def no_google(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``google.cloud.bigquery`` unimportable, whether it is installed or not."""
    monkeypatch.setitem(sys.modules, "google.cloud.bigquery", None)


@pytest.mark.usefixtures("no_google")
def test_without_the_package_urls_parse_and_sql_generates() -> None:
    wh = connect("bigquery://my-project/so?location=EU")

    assert isinstance(wh, BigQueryWarehouse)
    assert (wh.project, wh.dataset, wh.location) == ("my-project", "my-project.so", "EU")
    assert BigQueryWarehouse.prepare("SELECT 1 FROM posts_answers", "duckdb", DEFAULT_TABLE_MAP)


@pytest.mark.usefixtures("no_google")
def test_without_the_package_the_first_request_says_what_to_install() -> None:
    wh = BigQueryWarehouse("bigquery://my-project/so")

    with pytest.raises(ConfigError, match=r"pip install 'llmline\[bigquery\]'"):
        wh.result_columns("SELECT 1")
    with pytest.raises(ConfigError, match=r"llmline\[bigquery\]"):
        next(wh.iter_batches("SELECT 1"))


@pytest.mark.parametrize(
    ("url", "project", "dataset"),
    [
        ("bigquery://p", "p", None),
        ("bigquery://p/", "p", None),
        ("bigquery://p/ds", "p", "p.ds"),
        (f"bigquery://billing-project/{BQ}", "billing-project", BQ),
    ],
)
def test_url_names_project_and_default_dataset(url: str, project: str, dataset: str | None) -> None:
    wh = BigQueryWarehouse(url)

    assert (wh.project, wh.dataset, wh.location) == (project, dataset, None)


@pytest.mark.parametrize(
    "url",
    ["bigquery://", "bigquery:///ds", "bigquery://p/a/b", "bigquery://p/a.b.c", "bigquery://p?x=1"],
)
def test_invalid_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        BigQueryWarehouse(url)


# -- request logic, against a stand-in client ----------------------------------------------


class FakeAPIError(Exception):
    """Stands in for google.api_core.exceptions.GoogleAPIError (code, message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


class Options(types.SimpleNamespace):
    """Stands in for QueryJobConfig / LoadJobConfig: keyword options as attributes."""


def _fake_module() -> types.ModuleType:
    module = types.ModuleType("google.cloud.bigquery")
    module.QueryJobConfig = Options  # type: ignore[attr-defined]
    module.LoadJobConfig = Options  # type: ignore[attr-defined]
    module.SourceFormat = types.SimpleNamespace(  # type: ignore[attr-defined]
        CSV="CSV", PARQUET="PARQUET", NEWLINE_DELIMITED_JSON="NEWLINE_DELIMITED_JSON"
    )
    module.WriteDisposition = types.SimpleNamespace(  # type: ignore[attr-defined]
        WRITE_APPEND="WRITE_APPEND", WRITE_TRUNCATE="WRITE_TRUNCATE"
    )
    module.SchemaField = lambda name, field_type: Options(  # type: ignore[attr-defined]
        name=name, field_type=field_type, mode="NULLABLE"
    )
    module.Table = lambda ref, schema: Options(ref=ref, schema=schema)  # type: ignore[attr-defined]
    module.Client = FakeClient  # type: ignore[attr-defined]
    return module


class FakeClient:
    """Answers every query with ``result``; keeps tables as metadata only."""

    def __init__(self, project: str = "p", location: str | None = None) -> None:
        self.project = project
        self.location = location
        self.result = pa.table({"id": [1, 2, 3, 4, 5], "title": list("abcde")})
        self.error: FakeAPIError | None = None
        self.queries: list[tuple[str, Any]] = []
        self.tables: dict[str, Options] = {}
        self.loads: list[tuple[str, bytes, Any]] = []
        self.page: int | None = None
        self.closed = False

    def add_table(self, ref: str, rows: int, modified: datetime) -> None:
        schema = [Options(name="id", field_type="INTEGER", mode="NULLABLE")]
        self.tables[ref] = Options(num_rows=rows, modified=modified, schema=schema)

    def query(self, query: str, *, job_config: Any = None) -> Any:
        self.queries.append((query, job_config))
        if self.error:
            raise self.error
        result = self.result
        rows = Options(to_arrow_iterable=lambda: iter(result.to_batches(max_chunksize=self.page)))

        def wait(page_size: int | None = None) -> Any:
            self.page = page_size
            return rows

        return Options(schema=[Options(name=n) for n in result.column_names], result=wait)

    def list_tables(self, dataset: str) -> Iterator[Any]:
        for ref in sorted(self.tables):
            if ref.rpartition(".")[0] == dataset:
                yield Options(table_id=ref.rpartition(".")[2])

    def get_table(self, table: str) -> Any:
        if table not in self.tables:
            raise FakeAPIError(404, f"Not found: Table {table}")
        return self.tables[table]

    def create_table(self, table: Any, *, exists_ok: bool = False) -> Any:
        self.tables.setdefault(table.ref, Options(num_rows=0, modified=None, schema=table.schema))
        return table

    def delete_table(self, table: str, *, not_found_ok: bool = False) -> None:
        self.tables.pop(table, None)

    def load_table_from_file(self, file_obj: Any, destination: str, *, job_config: Any) -> Any:
        self.loads.append((destination, file_obj.read(), job_config))
        self.add_table(destination, 0, datetime.now(UTC))
        return Options(result=lambda: None, output_rows=3)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_google(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.bigquery", _fake_module())
    errors = types.ModuleType("google.api_core.exceptions")
    errors.GoogleAPIError = FakeAPIError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google.api_core.exceptions", errors)


@pytest.fixture
def client(fake_google: None) -> FakeClient:
    return FakeClient()


@pytest.fixture
def wh(client: FakeClient) -> BigQueryWarehouse:
    return BigQueryWarehouse("bigquery://p/so", client=client)


@pytest.mark.usefixtures("fake_google")
def test_the_client_is_created_on_first_request_and_closed() -> None:
    wh = BigQueryWarehouse("bigquery://my-project/so?location=EU")
    assert wh._client is None

    wh.result_columns("SELECT 1")

    created = wh._client
    assert isinstance(created, FakeClient)
    assert (created.project, created.location) == ("my-project", "EU")
    wh.close()
    assert created.closed


def test_an_injected_client_is_used_and_left_open(
    wh: BigQueryWarehouse, client: FakeClient
) -> None:
    wh.result_columns("SELECT 1")
    wh.close()

    assert len(client.queries) == 1
    assert not client.closed


def test_iter_batches_streams_pages_of_batch_rows(
    wh: BigQueryWarehouse, client: FakeClient
) -> None:
    batches = list(wh.iter_batches("SELECT id, title FROM posts_questions", batch_rows=2))

    assert [b.num_rows for b in batches] == [2, 2, 1]
    assert pa.Table.from_batches(batches).equals(client.result)
    [(sql, config)] = client.queries
    assert sql == "SELECT id, title FROM posts_questions"
    assert config.default_dataset == "p.so"  # local names resolve in the URL's dataset
    assert client.page == 2


def test_result_columns_come_from_a_dry_run(wh: BigQueryWarehouse, client: FakeClient) -> None:
    assert wh.result_columns("SELECT id, title FROM t") == ["id", "title"]

    config = client.queries[0][1]
    assert config.dry_run is True
    assert config.use_query_cache is False  # a cached dry run reports nothing useful


def test_service_errors_become_sql_errors(wh: BigQueryWarehouse, client: FakeClient) -> None:
    client.error = FakeAPIError(400, "Syntax error: Unexpected keyword WHERE at [1:8]")

    with pytest.raises(SQLError, match=r"^Syntax error: Unexpected keyword WHERE at \[1:8\]$"):
        wh.result_columns("SELECT WHERE")
    with pytest.raises(SQLError, match="Unexpected keyword"):
        list(wh.iter_batches("SELECT WHERE"))


def test_tables_lists_the_default_dataset(wh: BigQueryWarehouse, client: FakeClient) -> None:
    client.add_table("p.so.posts_questions", 7, datetime(2024, 1, 1, tzinfo=UTC))
    client.add_table("p.other.elsewhere", 1, datetime(2024, 1, 1, tzinfo=UTC))

    infos = [t.to_dict() for t in wh.tables()]

    assert infos == [{"name": "posts_questions", "rows": 7, "columns": {"id": "INTEGER"}}]
    assert BigQueryWarehouse("bigquery://p", client=client).tables() == []


def test_fingerprint_follows_row_count_and_modified_time(
    wh: BigQueryWarehouse, client: FakeClient
) -> None:
    client.add_table("p.so.posts_questions", 7, datetime(2024, 1, 1, tzinfo=UTC))
    first = wh.fingerprint("posts_questions")

    client.tables["p.so.posts_questions"].modified = datetime(2024, 1, 2, tzinfo=UTC)
    second = wh.fingerprint("posts_questions")

    assert first.startswith("7:")
    assert first != second
    assert second == wh.fingerprint("p.so.posts_questions") == wh.fingerprint("so.posts_questions")
    with pytest.raises(NotFoundError, match="no table 'missing'"):
        wh.fingerprint("missing")


def test_ensure_schema_creates_only_missing_tables(
    wh: BigQueryWarehouse, client: FakeClient
) -> None:
    client.add_table("p.so.posts_questions", 7, datetime(2024, 1, 1, tzinfo=UTC))

    wh.ensure_schema()

    assert sorted(client.tables) == ["p.so.posts_answers", "p.so.posts_questions"]
    assert client.tables["p.so.posts_questions"].num_rows == 7
    created = {f.name: f.field_type for f in client.tables["p.so.posts_answers"].schema}
    assert created == {
        "id": "INT64",
        "parent_id": "INT64",
        "body": "STRING",
        "creation_date": "TIMESTAMP",
        "score": "INT64",
    }


def test_writes_need_a_dataset(client: FakeClient, tmp_path: Path) -> None:
    wh = BigQueryWarehouse("bigquery://p", client=client)
    (tmp_path / "a.csv").write_text("id\n1\n")

    with pytest.raises(ConfigError, match="names no dataset"):
        wh.ensure_schema()
    with pytest.raises(ConfigError, match="names no dataset"):
        wh.load_table("t", tmp_path / "a.csv")


@pytest.mark.parametrize(
    ("name", "source_format", "extra"),
    [
        ("a.csv", "CSV", {"skip_leading_rows": 1}),
        ("a.tsv", "CSV", {"skip_leading_rows": 1, "field_delimiter": "\t"}),
        ("a.parquet", "PARQUET", {}),
        ("a.jsonl", "NEWLINE_DELIMITED_JSON", {}),
    ],
)
def test_load_table_picks_the_source_format(
    wh: BigQueryWarehouse,
    client: FakeClient,
    tmp_path: Path,
    name: str,
    source_format: str,
    extra: dict[str, Any],
) -> None:
    (tmp_path / name).write_bytes(b"data")

    assert wh.load_table("new_table", tmp_path / name) == 3
    assert wh.load_table("new_table", tmp_path / name, "replace") == 3

    (dest, data, first), (_, _, second) = client.loads
    assert (dest, data) == ("p.so.new_table", b"data")
    assert first == Options(
        source_format=source_format, write_disposition="WRITE_APPEND", autodetect=True, **extra
    )
    # The table exists now: it keeps its schema, and "replace" truncates it.
    assert (second.autodetect, second.write_disposition) == (False, "WRITE_TRUNCATE")


def test_load_table_refuses_unknown_and_missing_files(
    wh: BigQueryWarehouse, tmp_path: Path
) -> None:
    (tmp_path / "a.xlsx").write_bytes(b"")

    with pytest.raises(ImportFileError, match="unsupported file type"):
        wh.load_table("t", tmp_path / "a.xlsx")
    with pytest.raises(ImportFileError, match="no such file"):
        wh.load_table("t", tmp_path / "nope.csv")


def _questions() -> pa.Table:
    row = {"id": 1, "title": "t", "body": "b", "tags": "python", "accepted_answer_id": None}
    row |= {"creation_date": datetime(2024, 5, 1, 12, 0), "score": 1, "view_count": 2}
    return pa.Table.from_pylist([row], schema=QUESTIONS)


def test_upsert_stages_then_replaces_rows_in_one_transaction(
    wh: BigQueryWarehouse, client: FakeClient
) -> None:
    wh.ensure_schema()

    assert wh.upsert({"posts_questions": _questions()}) == 1

    [(staging, data, config)] = client.loads
    assert staging.startswith("p.so._llmline_upsert_posts_questions_")
    assert config.source_format == "PARQUET"
    staged = pq.read_table(io.BytesIO(data))
    assert staged.schema.field("creation_date").type == pa.timestamp("us", tz="UTC")
    script = client.queries[-1][0]
    assert script.startswith("BEGIN TRANSACTION;\nDELETE FROM `p.so.posts_questions` WHERE `id`")
    assert "INSERT INTO `p.so.posts_questions` (`id`, `title`, " in script
    assert script.endswith("COMMIT TRANSACTION;")
    assert staging not in client.tables  # staging table dropped


def test_a_failed_upsert_drops_its_staging_table(wh: BigQueryWarehouse, client: FakeClient) -> None:
    wh.ensure_schema()
    client.error = FakeAPIError(400, "Transaction aborted")

    with pytest.raises(SQLError, match="Transaction aborted"):
        wh.upsert({"posts_questions": _questions()})

    assert sorted(client.tables) == ["p.so.posts_answers", "p.so.posts_questions"]


def test_upsert_into_a_missing_table_is_not_found(wh: BigQueryWarehouse) -> None:
    with pytest.raises(NotFoundError, match="no table 'posts_questions'"):
        wh.upsert({"posts_questions": _questions()})

"""``llmline warehouse``: load files, import FAQs, query with any dialect."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from llmline.cli._common import JSON_OPTION, console, print_json, workspace_from
from llmline.errors import UserError

app = typer.Typer(help="The warehouse: load data, import FAQs, run SQL.", no_args_is_help=True)


@app.command("tables")
def tables(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List tables with row counts and columns."""
    with workspace_from(ctx).warehouse(read_only=True) as wh:
        infos = wh.tables()
    if as_json:
        print_json([t.to_dict() for t in infos])
        return
    table = Table("table", "rows", "columns")
    for info in infos:
        table.add_row(info.name, str(info.rows), ", ".join(info.columns))
    console.print(table)


@app.command("load")
def load(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="Table to load into (created if missing).")],
    file: Annotated[Path, typer.Argument(help="CSV, Parquet or JSONL file.")],
    replace: Annotated[bool, typer.Option("--replace", help="Empty the table first.")] = False,
) -> None:
    """Load a CSV, Parquet or JSONL file into a table (all or nothing)."""
    with workspace_from(ctx).warehouse() as wh:
        rows = wh.load_table(table, file, "replace" if replace else "append")
    console.print(f"loaded {rows} rows into {table}")


@app.command("import-faq")
def import_faq(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="reST FAQ files (one topic each).")],
    tag: Annotated[str, typer.Option(help="Tag prefix, e.g. python or django.")] = "faq",
    as_json: bool = JSON_OPTION,
) -> None:
    """Import reST FAQ documents as questions with accepted answers."""
    from llmline.warehouse.faq import import_faq as run_import

    with workspace_from(ctx).warehouse() as wh:
        wh.ensure_schema()
        summary = run_import(wh, files, tag=tag)
    if as_json:
        print_json(summary.to_dict())
        return
    console.print(f"imported {summary.questions} question/answer pairs from {len(files)} file(s)")


@app.command("query")
def query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="One SQL statement.")],
    dialect: Annotated[
        str | None, typer.Option(help="Dialect of SQL: bigquery, duckdb or postgres.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many rows.")] = 50,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run SQL inside the warehouse (transpiled from --dialect)."""
    from llmline.warehouse import transpile

    workspace = workspace_from(ctx)
    settings = workspace.settings
    read = dialect or settings.sql_dialect
    if read not in ("bigquery", "duckdb", "postgres"):
        raise UserError(f"unknown dialect {read!r} (use bigquery, duckdb or postgres)")
    with workspace.warehouse(read_only=True) as wh:
        engine_sql = transpile(sql, read=read, write=wh.dialect, table_map=settings.table_map)
        rows = _first_rows(wh.iter_batches(engine_sql), limit)
    if as_json:
        print_json(rows)
        return
    table = Table(*(rows[0].keys() if rows else []))
    for row in rows:
        table.add_row(*(_cell(v) for v in row.values()))
    console.print(table)
    console.print(f"{len(rows)} row(s){' (limit reached)' if len(rows) == limit else ''}")


def _first_rows(batches: Any, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for batch in batches:
        rows.extend(itertools.islice(batch.to_pylist(), limit - len(rows)))
        if len(rows) >= limit:
            break
    return rows


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 80 else text[:79] + "…"

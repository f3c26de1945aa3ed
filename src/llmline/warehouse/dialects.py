"""SQL written for one warehouse, run on another: sqlglot plus a table map.

A team writes its extraction in BigQuery's dialect against
``bigquery-public-data.stackoverflow.*``; locally the same text runs on
DuckDB against ``posts_questions`` / ``posts_answers``.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from llmline.errors import SQLError

__all__ = ["transpile"]


def transpile(
    sql: str,
    *,
    read: str,
    write: str,
    table_map: dict[str, str] | None = None,
) -> str:
    """Translate ``sql`` from dialect ``read`` to ``write``, renaming mapped tables.

    ``table_map`` keys are dotted paths as written in the source SQL
    (``project.dataset.table``); values are dotted paths in the target.
    Matching ignores case and quoting.
    """
    try:
        statements = sqlglot.parse(sql, read=read)
    except ParseError as exc:
        raise SQLError(f"SQL syntax error ({read}): {_parse_message(exc)}") from None
    statements = [s for s in statements if s is not None]
    if len(statements) != 1:
        raise SQLError(f"expected exactly one SQL statement, got {len(statements)}")
    tree = statements[0]
    if table_map:
        tree = _rename_tables(tree, {k.lower(): v for k, v in table_map.items()})
    try:
        return tree.sql(dialect=write)
    except SqlglotError as exc:
        raise SQLError(f"cannot express this query in {write}: {exc}") from None


def _parse_message(exc: ParseError) -> str:
    if exc.errors:
        err = exc.errors[0]
        return f"{err.get('description', 'invalid syntax')} at line {err.get('line')}, column {err.get('col')}"
    return str(exc).splitlines()[0]


def _rename_tables(tree: exp.Expression, mapping: dict[str, str]) -> exp.Expression:
    def rename(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Table):
            return node
        parts = [p for p in (node.catalog, node.db, node.name) if p]
        target = mapping.get(".".join(parts).lower())
        if target is None:
            return node
        new = exp.to_table(target)
        if node.alias:
            new.set("alias", node.args["alias"])
        return new

    return tree.transform(rename)

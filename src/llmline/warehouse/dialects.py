"""SQL written for one warehouse, run on another: sqlglot plus a table map.

A team writes its extraction in BigQuery's dialect against
``bigquery-public-data.stackoverflow.*``; locally the same text runs on
DuckDB against ``posts_questions`` / ``posts_answers``.

:func:`transpile` does the whole trip.  Its steps are public too, for
connectors that rewrite the tree on the way (see ``bigquery_warehouse``):
:func:`parse_statement`, :func:`rename_tables` and :func:`generate`.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError

from llmline.errors import ConfigError, SQLError

__all__ = ["generate", "parse_statement", "rename_tables", "transpile"]

# sqlglot describes the offending token by its repr; users wrote its text.
_TOKEN_REPR_RE = re.compile(r"<Token token_type: [^,]+, text: (.*?), line: \d+, col: \d+[^>]*>")


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
    Matching ignores case and quoting; tables not in the map are left as
    written.  Raises :class:`SQLError` for invalid SQL, for more or less than
    one statement, and for constructs ``write`` cannot express.
    """
    tree = parse_statement(sql, read=read)
    if table_map:
        tree = rename_tables(tree, table_map, dialect=write)
    return generate(tree, write=write)


def parse_statement(sql: str, *, read: str) -> exp.Expr:
    """Parse exactly one SQL statement written in dialect ``read``."""
    try:
        statements = sqlglot.parse(sql, read=read)
    except ParseError as exc:
        raise SQLError(f"SQL syntax error ({read}): {_parse_message(exc)}") from None
    except SqlglotError as exc:  # the tokenizer's errors (an unclosed quote) are not ParseErrors
        raise SQLError(f"SQL syntax error ({read}): {_one_line(str(exc))}") from None
    found = [s for s in statements if s is not None]
    if len(found) != 1:
        raise SQLError(f"expected exactly one SQL statement, got {len(found)}")
    return found[0]


def generate(tree: exp.Expr, *, write: str) -> str:
    """SQL text of ``tree`` in dialect ``write``.

    Constructs ``write`` has no equivalent for raise :class:`SQLError`:
    sqlglot's default would log a warning and drop them, silently changing
    what the query returns.
    """
    if write == "postgres":
        tree = tree.transform(_timestamp_function_to_cast)
    try:
        return tree.sql(dialect=write, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise SQLError(f"cannot express this query in {write}: {_one_line(str(exc))}") from None


def rename_tables(tree: exp.Expr, table_map: dict[str, str], *, dialect: str) -> exp.Expr:
    """Replace the tables named in ``table_map`` by their targets (in ``dialect``).

    Aliases are kept.  A renamed table without an alias gets its old name as
    alias when the last part of the name changes, so column references
    qualified with the table name (``posts_questions.id``) still resolve.
    CTE names shadow tables: ``WITH posts_questions AS (...)`` is not renamed.
    """
    mapping = {_normalize_key(key): value for key, value in table_map.items()}
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}

    def rename(node: exp.Expr) -> exp.Expr:
        if not isinstance(node, exp.Table):
            return node
        parts = [p for p in (node.catalog, node.db, node.name) if p]
        if len(parts) == 1 and parts[0].lower() in ctes:
            return node
        target = mapping.get(".".join(parts).lower())
        if target is None:
            return node
        new = _target_table(target, dialect)
        if node.alias:
            new.set("alias", node.args["alias"])
        elif new.name.lower() != node.name.lower():
            new.set("alias", exp.TableAlias(this=exp.to_identifier(node.name)))
        return new

    return tree.transform(rename)


def _normalize_key(key: str) -> str:
    return key.replace("`", "").replace('"', "").lower()


def _target_table(target: str, dialect: str) -> exp.Table:
    if dialect == "bigquery" and "`" not in target:
        # One backtick-quoted path, as BigQuery users write (and must write
        # for project ids with dashes in most places).
        target = f"`{target}`"
    try:
        return exp.to_table(target, dialect=dialect)
    except SqlglotError:
        raise ConfigError(f"table_map target {target!r} is not a table name") from None


def _timestamp_function_to_cast(node: exp.Expr) -> exp.Expr:
    """BigQuery's ``TIMESTAMP(x[, zone])`` as a cast PostgreSQL accepts.

    sqlglot writes the function form unchanged for PostgreSQL, where
    ``timestamp(...)`` is a type with a precision and the call is a syntax
    error.  Without a zone it becomes what sqlglot makes of the literal form
    ``TIMESTAMP '...'`` (a cast to ``timestamptz``), so both spellings of one
    query behave alike; with a zone, the value is a local time in that zone,
    which is what ``AT TIME ZONE`` does to a ``timestamp``.
    """
    if not isinstance(node, exp.Timestamp):
        return node
    value = node.this
    zone = node.args.get("zone")
    if zone is not None:
        local = exp.cast(value, exp.DataType.build("timestamp"))
        return exp.AtTimeZone(this=local, zone=zone)
    return exp.cast(value, exp.DataType.build("timestamptz"))


def _parse_message(exc: ParseError) -> str:
    if not exc.errors:
        return _one_line(str(exc))
    err = exc.errors[0]
    description = _TOKEN_REPR_RE.sub(r"'\1'", str(err.get("description") or "invalid syntax"))
    line, col = err.get("line"), err.get("col")
    highlight = str(err.get("highlight") or "")
    # sqlglot points at the last character of the offending token; people
    # look for where it starts.
    if isinstance(col, int) and highlight and "\n" not in highlight and col >= len(highlight):
        col = col - len(highlight) + 1
    return f"{_one_line(description)} at line {line}, column {col}"


def _one_line(text: str) -> str:
    return " ".join(text.split())

"""The Stack-Overflow-shaped tables of the embedded warehouse.

Shaped like ``bigquery-public-data.stackoverflow``: tags are one string with
``|`` between tags, bodies are HTML.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["ANSWERS", "QUESTIONS", "TABLES", "create_table_sql"]

QUESTIONS = pa.schema(
    [
        ("id", pa.int64()),
        ("title", pa.string()),
        ("body", pa.string()),
        ("tags", pa.string()),
        ("creation_date", pa.timestamp("us")),
        ("accepted_answer_id", pa.int64()),
        ("score", pa.int64()),
        ("view_count", pa.int64()),
    ]
)
ANSWERS = pa.schema(
    [
        ("id", pa.int64()),
        ("parent_id", pa.int64()),
        ("body", pa.string()),
        ("creation_date", pa.timestamp("us")),
        ("score", pa.int64()),
    ]
)
TABLES = {"posts_questions": QUESTIONS, "posts_answers": ANSWERS}

_SQL_TYPES = {
    pa.int64(): "BIGINT",
    pa.string(): "TEXT",
    pa.timestamp("us"): "TIMESTAMP",
}


def create_table_sql(name: str) -> str:
    schema = TABLES[name]
    cols = ", ".join(
        f"{f.name} {_SQL_TYPES[f.type]}{' PRIMARY KEY' if f.name == 'id' else ''}" for f in schema
    )
    return f"CREATE TABLE IF NOT EXISTS {name} ({cols})"

"""Synthetic Stack-Overflow-shaped warehouses, for tests and benchmarks.

Rows are generated inside DuckDB from ``range()``, so a million questions
take seconds and no Python-side memory.  Content is deterministic for a
given size and seed: HTML bodies with code blocks, tags, dates, about 2% exact
duplicate answers, about 1% near duplicates and a sprinkling of PII.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from llmline.warehouse.schema import create_table_sql

__all__ = ["generate_stackoverflow"]

_WORDS = [
    "list",
    "dict",
    "tuple",
    "set",
    "string",
    "bytes",
    "file",
    "path",
    "loop",
    "index",
    "slice",
    "generator",
    "iterator",
    "decorator",
    "class",
    "method",
    "function",
    "lambda",
    "module",
    "package",
    "import",
    "exception",
    "error",
    "thread",
    "process",
    "async",
    "await",
    "socket",
    "request",
    "response",
    "json",
    "csv",
    "sqlite",
    "pandas",
    "numpy",
    "regex",
    "format",
    "print",
    "sort",
    "filter",
    "map",
    "reduce",
    "key",
    "value",
    "default",
    "argument",
    "keyword",
    "return",
    "yield",
    "scope",
    "global",
    "local",
    "closure",
    "copy",
    "deep",
    "shallow",
    "memory",
    "speed",
    "test",
]


def _words(seed_expr: str, count: int) -> str:
    """SQL for ``count`` pseudo-random words chosen by hashing ``seed_expr``."""
    words_sql = "[" + ", ".join(f"'{w}'" for w in _WORDS) + "]"
    # Every third word gets a numeric suffix: a vocabulary of a few thousand
    # words, closer to real posts than 70 words repeated.
    picks = [
        f"{words_sql}[1 + (hash({seed_expr} * {count} + {i}) % {len(_WORDS)})::INTEGER]"
        + (f" || (hash({seed_expr} + {i}) % 97)::VARCHAR" if i % 3 == 0 else "")
        for i in range(count)
    ]
    return " || ' ' || ".join(picks)


def generate_stackoverflow(path: Path | str, questions: int, *, seed: int = 0) -> None:
    """Create (or replace) ``posts_questions`` and ``posts_answers`` in the DuckDB
    file at ``path`` with ``questions`` questions, each with an accepted answer."""
    con = duckdb.connect(str(path))
    try:
        for table in ("posts_questions", "posts_answers"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
            con.execute(create_table_sql(table))
        # Every 50th post repeats an earlier post verbatim (an exact duplicate);
        # every 100th (offset 13) repeats one with a word changed (a near one).
        # Both copy an ordinary earlier post (one whose own number is 1 mod 50).
        twin = f"""(CASE WHEN range % 50 = 7 THEN (range // 50 % 1000) * 50 + 1
                         WHEN range % 100 = 13 THEN (range // 100 % 1000) * 100 + 1
                         ELSE range END + {seed * 1_000_003})"""
        answer_text = f"""
            CASE WHEN range % 100 = 13 THEN replace({_answer(twin)}, ' The ', ' A ')
                 ELSE {_answer(twin)} END"""
        con.execute(
            f"""
            INSERT INTO posts_questions
            SELECT range + 1, 'How do I ' || {_words(twin, 6)} || ' in Python?',
                   '<p>I am trying to ' || {_words(twin + " + 1", 18)} || '.</p>'
                   || CASE WHEN range % 97 = 0 THEN '<p>Contact me at user' || range
                        || '@example.com or 555-010-' || lpad((range % 10000)::VARCHAR, 4, '0')
                        || '</p>' ELSE '' END
                   || '<pre><code>x = ' || ({twin} % 1000) || '\nprint(x)</code></pre>',
                   CASE {twin} % 4 WHEN 0 THEN 'python' WHEN 1 THEN 'python|pandas'
                        WHEN 2 THEN 'python-3.x|list' ELSE 'javascript' END,
                   TIMESTAMP '2010-01-01' + to_seconds((range * 7919) % 400000000),
                   range + 1, (range % 50)::BIGINT, (range % 5000)::BIGINT
            FROM range({questions})
            """
        )
        con.execute(
            f"""
            INSERT INTO posts_answers
            SELECT range + 1, range + 1, {answer_text},
                   TIMESTAMP '2010-01-02' + to_seconds((range * 7919) % 400000000),
                   (range % 30)::BIGINT
            FROM range({questions})
            """
        )
    finally:
        con.close()


def _answer(seed_expr: str) -> str:
    return (
        f"'<p>You can use the ' || {_words(seed_expr, 4)} || ' for this. The '"
        f" || {_words(seed_expr + ' + 7', 24)} || '.</p><pre><code>def solve(data):\n"
        "    return sorted(data)\n</code></pre><p>See the docs for '"
        f" || {_words(seed_expr + ' + 3', 8)} || '.</p>'"
    )

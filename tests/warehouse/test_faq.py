"""The reST FAQ importer and the shipped CPython FAQ, against a real DuckDB warehouse."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pytest
from docutils.core import publish_doctree
from docutils.parsers.rst import directives, roles

from llmline.errors import ImportFileError
from llmline.warehouse.duckdb_warehouse import DuckDBWarehouse
from llmline.warehouse.faq import (
    dump_jsonl,
    import_faq,
    load_shipped_faq,
    parse_faq,
    parse_faq_files,
    read_jsonl,
)
from llmline.warehouse.schema import ANSWERS, QUESTIONS

CREATED = datetime(2024, 5, 1, 12, 30)

# Django's FAQ style: overlined document title, "=" categories, "-" questions,
# a nested "-"/"~" category, Sphinx roles and directives docutils does not know.
DJANGO_LIKE_FAQ = """\
:orphan:

=================
FAQ: Using Widgy
=================

.. contents::
   :local:

.. _faq-general:

General questions
=================

What is Widgy?
--------------

Widgy is a framework; see :doc:`the overview </intro/overview>` and the
:setting:`DEBUG` setting.  Style follows :pep:`8#naming-conventions`.

.. index:: single: Widgy; history

.. versionadded:: 2.0
   The *widgets* module.

How do I install it?
--------------------

Run this:

.. code-block:: python
   :caption: install.py
   :linenos:

   import widgy
   widgy.install(version="|version|")

.. note::

   Needs :class:`~widgy.core.Engine`.

Templates
=========

Tags
----

How do I use the :ttag:`url` tag?
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~

Write ``{% url 'name' %}``; see faq-general_ and :ref:`faq-general`.

.. seealso:: :djadmin:`runserver`

How do I install it?
~~~~~~~~~~~~~~~~~~~~

Templates need no installation.

.. only:: html

   Only in HTML builds.
"""


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    wh = DuckDBWarehouse(f"duckdb:///{tmp_path}/wh.duckdb")
    wh.ensure_schema()
    return wh


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _count(wh: DuckDBWarehouse, table: str) -> int:
    row = wh.con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def django_faq(tmp_path: Path) -> Path:
    return _write(tmp_path / "usage.txt", DJANGO_LIKE_FAQ)


# -- the shipped CPython FAQ -----------------------------------------------------


def test_shipped_faq_loads_as_question_answer_pairs(warehouse: DuckDBWarehouse) -> None:
    pairs = load_shipped_faq(warehouse)

    assert pairs >= 170
    assert _count(warehouse, "posts_questions") == pairs
    assert _count(warehouse, "posts_answers") == pairs
    joined = warehouse.con.execute(
        "SELECT count(*) FROM posts_questions q JOIN posts_answers a "
        "ON a.id = q.accepted_answer_id AND a.parent_id = q.id "
        "WHERE length(a.body) > 0 AND length(q.title) > 0"
    ).fetchone()
    assert joined == (pairs,)
    tags = {t for (t,) in warehouse.con.execute("SELECT tags FROM posts_questions").fetchall()}
    assert "python|python-library" in tags
    assert all(re.fullmatch(r"python\|python-[a-z]+", t) for t in tags)
    with_code = warehouse.con.execute(
        "SELECT count(*) FROM posts_answers WHERE body LIKE '%<pre%'"
    ).fetchone()
    assert with_code is not None and with_code[0] >= 50
    dates = warehouse.con.execute("SELECT DISTINCT creation_date FROM posts_questions").fetchall()
    assert dates == [(datetime(2023, 2, 8),)]
    # Loading again (as `llmline init` on an existing workspace does) adds nothing.
    assert load_shipped_faq(warehouse) == pairs
    assert _count(warehouse, "posts_questions") == pairs


def test_shipped_jsonl_is_canonical() -> None:
    folder = resources.files("llmline.resources").joinpath("cpython_faq")
    for name, schema in (("posts_questions", QUESTIONS), ("posts_answers", ANSWERS)):
        text = folder.joinpath(f"{name}.jsonl").read_text(encoding="utf-8")
        rows = [json.loads(line) for line in text.rstrip("\n").split("\n")]
        assert all(list(row) == schema.names for row in rows)
        assert [row["id"] for row in rows] == sorted(row["id"] for row in rows)
        table = read_jsonl(text, schema)
        assert table.schema == schema
    for name in ("LICENSE.txt", "README.md"):
        assert folder.joinpath(name).is_file()
    assert "PSF LICENSE AGREEMENT" in folder.joinpath("LICENSE.txt").read_text(encoding="utf-8")


def test_jsonl_round_trip_is_byte_identical(tmp_path: Path, django_faq: Path) -> None:
    faq = parse_faq_files([django_faq], tag="widgy", created=CREATED)
    # A line separator inside a body must not split a JSON line.
    answers = faq.answers.set_column(
        2, "body", pa.array([f"{b}\u2028\x85" for b in faq.answers["body"].to_pylist()])
    )
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    dump_jsonl(answers, first)
    loaded = read_jsonl(first.read_text(encoding="utf-8"), ANSWERS)
    dump_jsonl(loaded, second)
    assert first.read_bytes() == second.read_bytes()
    assert loaded.sort_by("id").equals(answers.sort_by("id"))


# -- a Django-style FAQ written here ----------------------------------------------


def test_django_style_faq_imports_leaf_sections(
    warehouse: DuckDBWarehouse, django_faq: Path
) -> None:
    summary = import_faq(warehouse, [django_faq], tag="widgy", created=CREATED)

    assert summary.files == 1
    assert summary.questions == 4
    assert summary.to_dict()["per_file"] == [{"path": str(django_faq), "questions": 4}]
    rows = warehouse.con.execute(
        "SELECT q.title, q.body, q.tags, q.creation_date, q.score, q.view_count, a.body "
        "FROM posts_questions q JOIN posts_answers a ON a.id = q.accepted_answer_id "
        "ORDER BY q.title"
    ).fetchall()
    titles = [r[0] for r in rows]
    assert titles == [
        "How do I install it?",
        "How do I install it?",
        "How do I use the url tag?",
        "What is Widgy?",
    ]
    assert {r[1:6] for r in rows} == {("", "widgy|widgy-usage", CREATED, 0, 0)}
    answers = {r[0]: r[6] for r in rows}
    what = answers["What is Widgy?"]
    assert "the overview" in what and "/intro/overview" not in what
    assert re.search(r"<span class=\"xref setting[^\"]*\">DEBUG</span>", what)
    assert 'href="https://peps.python.org/pep-0008/#naming-conventions"' in what
    assert "New in version 2.0" in what and "<em>widgets</em>" in what
    assert "history" not in what  # index entries are not text
    tag_answer = answers["How do I use the url tag?"]
    assert "See also" in tag_answer and "runserver" in tag_answer
    installs = [r[6] for r in rows if r[0] == "How do I install it?"]
    code = next(body for body in installs if "<pre" in body)
    assert 'class="code python' in code and "widgy.install" in code and "|version|" in code
    assert "Engine" in code and "widgy.core" not in code  # ~ shortens the name
    assert any("Only in HTML builds." in body for body in installs)


def test_reimport_replaces_rows(warehouse: DuckDBWarehouse, django_faq: Path) -> None:
    import_faq(warehouse, [django_faq], tag="widgy", created=CREATED)
    before = warehouse.fingerprint("posts_questions"), warehouse.fingerprint("posts_answers")
    summary = import_faq(warehouse, [django_faq, django_faq], tag="widgy", created=CREATED)

    assert summary.questions == 4  # the file named twice is imported once
    assert _count(warehouse, "posts_questions") == 4
    assert _count(warehouse, "posts_answers") == 4
    after = warehouse.fingerprint("posts_questions"), warehouse.fingerprint("posts_answers")
    assert after == before


def test_ids_are_stable_and_distinct(tmp_path: Path, django_faq: Path) -> None:
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    copy = _write(elsewhere / "usage.rst.txt", DJANGO_LIKE_FAQ)
    first = parse_faq(django_faq, tag="widgy", created=CREATED)
    again = parse_faq(copy, tag="widgy", created=datetime(2020, 1, 1))
    other_tag = parse_faq(django_faq, tag="gadget", created=CREATED)

    ids = [(e.question_id, e.answer_id) for e in first]
    assert ids == [(e.question_id, e.answer_id) for e in again]
    assert len({i for pair in ids for i in pair}) == 8  # duplicate titles too
    assert all(0 < i < 2**63 for pair in ids for i in pair)
    assert not {e.question_id for e in first} & {e.question_id for e in other_tag}
    # Pinned: changing the scheme would duplicate rows in existing warehouses.
    golden = _write(tmp_path / "golden.rst", "FAQ\n===\n\nWhy?\n----\n\nBecause.\n")
    assert parse_faq(golden, created=CREATED)[0].question_id == 844877605282210905


def test_creation_date_defaults_to_file_mtime(tmp_path: Path) -> None:
    path = _write(tmp_path / "dates.rst", "FAQ\n===\n\nWhy?\n----\n\nBecause.\n")
    when = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    os.utime(path, (when.timestamp(), when.timestamp()))

    assert parse_faq(path)[0].creation_date == datetime(2021, 3, 4, 5, 6, 7)
    aware = datetime(2022, 1, 1, 12, tzinfo=UTC)
    assert parse_faq(path, created=aware)[0].creation_date == datetime(2022, 1, 1, 12)


def test_sphinx_stand_ins_do_not_leak_into_docutils(django_faq: Path) -> None:
    parse_faq(django_faq, created=CREATED)

    assert "setting" not in roles._roles
    assert "versionadded" not in directives._directives
    doctree = publish_doctree(
        ":setting:`DEBUG`", settings_overrides={"report_level": 5, "warning_stream": False}
    )
    assert "Unknown interpreted text role" in doctree.astext()


# -- bad files import nothing -----------------------------------------------------


def test_non_utf8_file_fails_the_whole_import(
    warehouse: DuckDBWarehouse, tmp_path: Path, django_faq: Path
) -> None:
    bad = tmp_path / "latin1.rst"
    bad.write_bytes("Why?\n====\n\nCaf\u00e9 is here.\n".encode("latin-1"))

    with pytest.raises(ImportFileError, match=rf"^{re.escape(str(bad))}:4: not valid UTF-8"):
        import_faq(warehouse, [django_faq, bad], created=CREATED)
    assert _count(warehouse, "posts_questions") == 0
    assert _count(warehouse, "posts_answers") == 0


@pytest.mark.parametrize(
    "case",
    [
        (
            "Category\n========\n\nOne?\n----\n\nYes.\n\nOther\n=====\n\nJump?\n~~~~~\n\nNo.\n",
            12,
            "Inconsistent title style",
        ),
        ("=====\nTitle\n======\n\nQ?\n--\n\nA.\n", 1, "Title overline & underline mismatch"),
        ("Title\n=====\n\nQ?\n--\n\nSee `nowhere`_.\n\nR?\n--\n\nok\n", 7, "Unknown target"),
    ],
)
def test_malformed_rest_reports_the_line(
    warehouse: DuckDBWarehouse,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, int, str],
) -> None:
    text, line, problem = case
    bad = _write(tmp_path / "bad.rst", text)

    with pytest.raises(ImportFileError) as info:
        import_faq(warehouse, [bad], created=CREATED)
    assert info.value.line == line
    assert str(info.value).startswith(f"{bad}:{line}: invalid reStructuredText: {problem}")
    assert "\n" not in str(info.value)
    assert capsys.readouterr().err == ""  # docutils prints nothing
    assert _count(warehouse, "posts_questions") == 0


def test_file_without_questions_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "intro.rst", "Intro\n=====\n\nJust some text.\n\n.. toctree::\n")

    with pytest.raises(ImportFileError, match=r"intro\.rst: no questions found"):
        parse_faq(path)


def test_missing_file_is_an_error(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match=r"nope\.rst: no such file"):
        import_faq(warehouse, [tmp_path / "nope.rst"])

"""Import Sphinx-style reStructuredText FAQs as Stack-Overflow-shaped rows.

FAQs such as CPython's ``Doc/faq/*.rst``, Django's ``docs/faq/*.txt`` or
SQLAlchemy's FAQ share one shape: category sections hold question sections,
and a question section's body is its answer.  So the *leaf* sections (those
without subsections) become questions (title) with one accepted answer
(body rendered to HTML, like the Stack Overflow bodies the warehouse
stores).  The document title (a lone top-level section), category sections
and headings with nothing under them are not questions.

Ids hash the tag, file stem and title, so importing a file again replaces
its rows instead of adding copies.

Sphinx's own roles and directives are handled by stand-ins from
:mod:`llmline.warehouse.rst_compat`, so no Sphinx installation is needed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
from docutils import nodes, utils
from docutils.frontend import get_default_settings
from docutils.parsers import rst
from docutils.readers import standalone
from docutils.writers import html5_polyglot

from llmline.errors import DatasetError, ImportFileError
from llmline.warehouse.base import Warehouse
from llmline.warehouse.rst_compat import define_sphinx_substitutions, sphinx_markup
from llmline.warehouse.schema import ANSWERS, QUESTIONS

__all__ = [
    "FaqEntry",
    "FaqImport",
    "ImportSummary",
    "dump_jsonl",
    "import_faq",
    "load_shipped_faq",
    "parse_faq",
    "parse_faq_files",
    "read_jsonl",
]

SHIPPED_FAQ_DIR = "cpython_faq"


@dataclass(frozen=True)
class FaqEntry:
    """One question section and its answer."""

    path: str
    line: int | None
    title: str
    answer_html: str
    tags: str
    question_id: int
    answer_id: int
    creation_date: datetime

    def question_row(self) -> dict[str, Any]:
        return {
            "id": self.question_id,
            "title": self.title,
            "body": "",  # FAQ questions are just their titles
            "tags": self.tags,
            "creation_date": self.creation_date,
            "accepted_answer_id": self.answer_id,
            "score": 0,
            "view_count": 0,
        }

    def answer_row(self) -> dict[str, Any]:
        return {
            "id": self.answer_id,
            "parent_id": self.question_id,
            "body": self.answer_html,
            "creation_date": self.creation_date,
            "score": 0,
        }


@dataclass(frozen=True)
class FaqImport:
    """Parsed FAQ files as warehouse tables (schemas QUESTIONS and ANSWERS)."""

    questions: pa.Table
    answers: pa.Table
    per_file: dict[str, int]


@dataclass(frozen=True)
class ImportSummary:
    files: int
    questions: int
    per_file: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "questions": self.questions,
            "answers": self.questions,
            "per_file": [{"path": p, "questions": n} for p, n in self.per_file.items()],
        }


# -- parsing ------------------------------------------------------------------

_SETTINGS_OVERRIDES: dict[str, Any] = {
    "report_level": 5,  # collect messages through an observer, print nothing
    "halt_level": 5,  # never raise: the first ERROR is reported as ImportFileError
    "warning_stream": False,
    "file_insertion_enabled": False,  # an import reads exactly the files it is given
    "raw_enabled": False,  # no raw HTML from the source into stored bodies
    "strip_comments": True,  # reST comments are authors' notes, not answer text
    "syntax_highlight": "none",  # plain <pre>, no Pygments needed
    "embed_stylesheet": False,
    "stylesheet_path": "",
    "stylesheet": "",
    "smart_quotes": False,
    "language_code": "en",
    "doctitle_xform": False,  # see _leaf_sections
    "sectsubtitle_xform": False,  # a lone subsection is a question, not a subtitle
    "docinfo_xform": False,
}
_ERROR_LEVEL = 3  # docutils: 2 WARNING, 3 ERROR, 4 SEVERE


def _settings() -> Any:
    settings = get_default_settings(rst.Parser, standalone.Reader, html5_polyglot.Writer)
    for key, value in _SETTINGS_OVERRIDES.items():
        setattr(settings, key, value)
    return settings


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImportFileError(str(path), None, "no such file") from None
    except IsADirectoryError:
        raise ImportFileError(str(path), None, "is a folder, not a file") from None
    except OSError as exc:
        raise ImportFileError(str(path), None, exc.strerror or "cannot read file") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFileError(
            str(path), line, f"not valid UTF-8 (byte 0x{data[exc.start]:02x})"
        ) from None


def _first_error(errors: list[nodes.system_message]) -> tuple[int | None, str]:
    """Line and one-line text of the error nearest the top of the file.

    Transforms report after the parser, so emission order is not file order.
    """
    first = min(errors, key=lambda msg: (msg.get("line") is None, msg.get("line") or 0))
    text = first.children[0].astext() if first.children else first.astext()
    line = first.get("line")
    return (int(line) if line is not None else None), " ".join(text.split())


def _parse_document(path: Path, text: str, settings: Any) -> nodes.document:
    parser = rst.Parser()
    document = utils.new_document(str(path), settings)
    errors: list[nodes.system_message] = []
    document.reporter.attach_observer(
        lambda msg: errors.append(msg) if msg["level"] >= _ERROR_LEVEL else None
    )
    with sphinx_markup(text, settings):
        parser.parse(text, document)
    define_sphinx_substitutions(document)
    transformer = document.transformer
    transformer.populate_from_components(
        (standalone.Reader(parser=parser), parser, html5_polyglot.Writer())
    )
    transformer.apply_transforms()
    if errors:
        line, problem = _first_error(errors)
        raise ImportFileError(str(path), line, f"invalid reStructuredText: {problem}")
    return document


def _leaf_sections(document: nodes.document) -> list[nodes.section]:
    # A section with subsections is a category.  A lone top-level section is
    # the document title (docutils' own rule, applied here because its
    # transform would also turn a lone question below the title into a subtitle).
    top = [child for child in document.children if isinstance(child, nodes.section)]
    return [
        section
        for section in document.findall(nodes.section)
        if not any(isinstance(child, nodes.section) for child in section.children)
        and not (len(top) == 1 and section is top[0])
    ]


def _file_stem(path: Path) -> str:
    name = path.name
    for suffix in (".txt", ".rst", ".rest"):
        name = name.removesuffix(suffix)
    return name


def _tag_part(text: str) -> str:
    """Lower-case a tag the way Stack Overflow spells tags (``c++``, ``python-3.x``)."""
    return re.sub(r"[^a-z0-9+#.]+", "-", text.lower()).strip("-")


def _stable_id(*parts: str) -> int:
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1) or 1


def _creation_date(path: Path, created: datetime | None) -> datetime:
    if created is None:
        created = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    if created.tzinfo is not None:
        created = created.astimezone(UTC).replace(tzinfo=None)
    return created


def _render_answers(
    document: nodes.document, sections: list[nodes.section]
) -> list[tuple[str, int | None, str]]:
    """(title, line, answer HTML) per section, rendered by docutils' HTML5 writer."""
    translator = html5_polyglot.Writer().translator_class(document)
    rendered = []
    for section in sections:
        title = section.children[0]
        translator.body = []
        for child in section.children[1:]:
            child.walkabout(translator)
        # docutils records a title's underline line; the text is the line above.
        line = title.line - 1 if title.line else None
        rendered.append((" ".join(title.astext().split()), line, "".join(translator.body).strip()))
    return rendered


def parse_faq(path: Path, *, tag: str = "faq", created: datetime | None = None) -> list[FaqEntry]:
    """Parse one reST FAQ file into its questions and answers.

    ``created`` (default: the file's modification time) becomes every row's
    ``creation_date``.  Raises :class:`ImportFileError` naming the file and
    line for unreadable, non-UTF-8 or malformed files and files without
    questions.
    """
    path = Path(path)
    tag_name = _tag_part(tag)
    if not tag_name:
        raise DatasetError(f"invalid FAQ tag {tag!r}: use letters, digits, '+', '#', '.' or '-'")
    text = _read_text(path)
    settings = _settings()
    document = _parse_document(path, text, settings)
    sections = _leaf_sections(document)
    stem = _tag_part(_file_stem(path)) or "faq"
    tags = f"{tag_name}|{tag_name}-{stem}"
    date = _creation_date(path, created)
    seen: Counter[str] = Counter()
    entries = []
    for title, line, answer in _render_answers(document, sections):
        if not answer:
            # A heading with nothing under it (CPython's gui.rst has one) is not
            # a question.
            continue
        # Repeated titles get a counter, so the first keeps the id it always had.
        key = title if seen[title] == 0 else f"{title}\0{seen[title]}"
        seen[title] += 1
        entries.append(
            FaqEntry(
                path=str(path),
                line=line,
                title=title,
                answer_html=answer,
                tags=tags,
                question_id=_stable_id(tag_name, stem, key, "question"),
                answer_id=_stable_id(tag_name, stem, key, "answer"),
                creation_date=date,
            )
        )
    if not entries:
        raise ImportFileError(
            str(path),
            None,
            "no questions found (a question is a section without subsections; "
            "a lone top-level section is the document title)",
        )
    return entries


def parse_faq_files(
    paths: Iterable[Path], *, tag: str = "faq", created: datetime | None = None
) -> FaqImport:
    """Parse every file (failing on the first bad one) into warehouse tables."""
    entries: list[FaqEntry] = []
    per_file: dict[str, int] = {}
    owners: dict[int, FaqEntry] = {}
    seen: set[Path] = set()
    for path in map(Path, paths):
        if path.resolve() in seen:  # named twice (overlapping globs): import once
            continue
        seen.add(path.resolve())
        parsed = parse_faq(path, tag=tag, created=created)
        for entry in parsed:
            other = owners.setdefault(entry.question_id, entry)
            if other is not entry:
                # Same tag, file stem and title in two files: ids would clash.
                raise ImportFileError(
                    entry.path,
                    entry.line,
                    f"question {entry.title!r} is also in {other.path}:{other.line} "
                    "(same file name and title); rename one file or import it with another tag",
                )
        entries.extend(parsed)
        per_file[str(path)] = len(parsed)
    return FaqImport(
        questions=pa.Table.from_pylist([e.question_row() for e in entries], schema=QUESTIONS),
        answers=pa.Table.from_pylist([e.answer_row() for e in entries], schema=ANSWERS),
        per_file=per_file,
    )


def import_faq(
    warehouse: Warehouse,
    paths: Sequence[Path],
    *,
    tag: str = "faq",
    created: datetime | None = None,
) -> ImportSummary:
    """Import reST FAQ files into ``posts_questions`` and ``posts_answers``.

    Every file is parsed before anything is written, and both tables are
    written in one transaction, so a bad file anywhere imports nothing.
    Importing a file again replaces its rows (ids are stable).
    """
    faq = parse_faq_files(paths, tag=tag, created=created)
    warehouse.upsert({"posts_questions": faq.questions, "posts_answers": faq.answers})
    return ImportSummary(
        files=len(faq.per_file), questions=faq.questions.num_rows, per_file=faq.per_file
    )


# -- JSONL, the format the shipped FAQ is stored in ------------------------------


def dump_jsonl(table: pa.Table, path: Path) -> None:
    """Write ``table`` as JSON lines sorted by id, byte-for-byte reproducibly."""
    rows = sorted(table.to_pylist(), key=lambda row: row["id"])
    with Path(path).open("w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            row["creation_date"] = row["creation_date"].isoformat()
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(text: str, schema: pa.Schema, *, source: str = "<jsonl>") -> pa.Table:
    """Parse JSON lines written by :func:`dump_jsonl` into a table of ``schema``."""
    rows = []
    # Split on "\n" only: str.splitlines() would also split inside strings
    # holding U+2028 or U+0085, which json.dumps(ensure_ascii=False) leaves raw.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or set(row) != set(schema.names):
                raise ValueError(f"expected the keys {', '.join(schema.names)}")
            row["creation_date"] = datetime.fromisoformat(row["creation_date"])
        except (ValueError, TypeError) as exc:
            raise ImportFileError(source, number, str(exc)) from None
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)


def load_shipped_faq(warehouse: Warehouse) -> int:
    """Load the CPython FAQ shipped with llmline; returns question/answer pairs.

    Safe to run again: the rows are upserted by id.
    """
    folder = resources.files("llmline.resources").joinpath(SHIPPED_FAQ_DIR)
    tables = {}
    for table, schema in (("posts_questions", QUESTIONS), ("posts_answers", ANSWERS)):
        entry = folder.joinpath(f"{table}.jsonl")
        tables[table] = read_jsonl(entry.read_text(encoding="utf-8"), schema, source=str(entry))
    warehouse.upsert(tables)
    return int(tables["posts_questions"].num_rows)

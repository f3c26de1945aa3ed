"""Source documents for a knowledge base: files (text, Markdown, reST, HTML,
PDF) and built-in corpora, read into plain text.

A file that cannot be used (unsupported type, binary or non-UTF-8 bytes, a
corrupt, encrypted or image-only PDF, no text at all) is skipped with its
reason; the caller decides whether what is left is enough.

A document's ``text`` is what chunk spans index: the file's decoded text
with line endings normalised to ``\\n`` for text, Markdown and reST; the
Markdown that html2text renders for HTML; the pages' extracted text joined
by blank lines for PDF.  It is stored with the knowledge base.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import io
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmline.errors import NotFoundError, UserError

__all__ = [
    "BUILTIN_CORPORA",
    "EXTENSIONS",
    "MAX_FILE_BYTES",
    "SkippedFile",
    "SourceDocument",
    "builtin_documents",
    "collect_sources",
    "read_file",
]

EXTENSIONS = {
    ".txt": "text",
    ".text": "text",
    "": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".rest": "rst",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
BUILTIN_CORPORA = {"pydoc-topics": "CPython's pydoc topics (pydoc_data.topics), one per topic"}
MAX_FILE_BYTES = 64 << 20
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_MD_TITLE = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


@dataclass(frozen=True)
class SourceDocument:
    uri: str
    title: str
    kind: str  # text | markdown | rst | html | pdf | pydoc
    sha256: str  # of the file's bytes (of the UTF-8 text for built-in corpora)
    size: int  # bytes
    text: str
    page_starts: tuple[int, ...] = field(default=())  # PDF: where each page starts in text

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "title": self.title,
            "type": self.kind,
            "sha256": self.sha256,
            "bytes": self.size,
            "text": self.text,
            "page_starts": list(self.page_starts),
        }


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


class _Skip(Exception):
    """A file is unusable; the message is the reason shown to the user."""


def collect_sources(
    paths: Sequence[str | Path], builtins: Sequence[str] = ()
) -> tuple[list[SourceDocument], list[SkippedFile]]:
    """Every readable document under ``paths`` and in ``builtins``, ordered by
    URI (so argument order does not change the knowledge base), and the files
    skipped with their reasons."""
    docs: dict[str, SourceDocument] = {}
    skipped: list[SkippedFile] = []
    for name in builtins:
        for doc in builtin_documents(name):
            docs[doc.uri] = doc
    for path in _expand(paths):
        try:
            doc = read_file(path)
        except _Skip as exc:
            skipped.append(SkippedFile(str(path), str(exc)))
            continue
        docs[doc.uri] = doc
    return [docs[uri] for uri in sorted(docs)], skipped


def _expand(paths: Sequence[str | Path]) -> Iterator[Path]:
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise NotFoundError(f"no such file or folder: {raw}")
        files = [path] if path.is_file() else sorted(_walk(path))
        for file in files:
            resolved = file.resolve()
            if resolved not in seen:
                seen.add(resolved)
                yield resolved


def _walk(folder: Path) -> Iterable[Path]:
    for entry in folder.rglob("*"):
        # Hidden files and folders (.git, editor swap files) are never content.
        hidden = any(part.startswith(".") for part in entry.relative_to(folder).parts)
        if entry.is_file() and not hidden:
            yield entry


def builtin_documents(name: str) -> list[SourceDocument]:
    if name != "pydoc-topics":
        known = ", ".join(sorted(BUILTIN_CORPORA))
        raise UserError(f"no built-in corpus {name!r} (known: {known})")
    from pydoc_data.topics import topics

    docs = []
    for topic in sorted(topics):
        text = _normalise(str(topics[topic]))
        data = text.encode("utf-8")
        sha = hashlib.sha256(data).hexdigest()
        docs.append(SourceDocument(f"pydoc:{topic}", topic, "pydoc", sha, len(data), text))
    return docs


def read_file(path: Path) -> SourceDocument:
    """One file as a document; raises ``_Skip`` with the reason it is unusable."""
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(e for e in EXTENSIONS if e))
        raise _Skip(f"unsupported file type {path.suffix!r} (supported: {supported})")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise _Skip(f"too large ({size} bytes; the limit is {MAX_FILE_BYTES})")
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    page_starts: tuple[int, ...] = ()
    if kind == "pdf":
        text, page_starts, title = _read_pdf(data, path)
    else:
        raw = _decode(data)
        text, title = (_html_to_markdown(raw), _html_title(raw)) if kind == "html" else (raw, "")
        text = _normalise(text)
        title = title or _first_heading(text, kind)
    if not text.strip():
        raise _Skip("no text in it" if data else "empty file")
    return SourceDocument(
        path.as_uri(), title or path.stem, kind, sha, len(data), text, page_starts
    )


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode(data: bytes) -> str:
    if b"\x00" in data:
        raise _Skip("binary content (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Skip(f"not UTF-8 text (invalid byte at offset {exc.start})") from None


def _html_title(raw: str) -> str:
    match = _TITLE.search(raw)
    return " ".join(html.unescape(match.group(1)).split()) if match else ""


def _html_to_markdown(raw: str) -> str:
    import html2text

    converter = html2text.HTML2Text()
    converter.body_width = 0  # no hard wrapping: paragraphs stay one line
    converter.ignore_images = True
    converter.ignore_links = True
    converter.ignore_emphasis = True
    return str(converter.handle(raw))


def _first_heading(text: str, kind: str) -> str:
    if kind == "markdown":
        match = _MD_TITLE.search(text)
        return match.group(1).strip() if match else ""
    if kind == "rst":
        from llmline.rag.chunking import find_sections

        headings = [s.heading for s in find_sections(text, kind) if s.heading]
        return headings[0] if headings else ""
    return ""


def _read_pdf(data: bytes, path: Path) -> tuple[str, tuple[int, ...], str]:
    import pypdf

    # pypdf logs every repair it attempts on a damaged file; the skip reason
    # (or a clean read) is what the user needs, not that noise.
    with _quiet_logger("pypdf"):
        try:
            reader = pypdf.PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise _Skip("encrypted PDF (needs a password)")
            pages = [page.extract_text() or "" for page in reader.pages]
            meta = reader.metadata
            title = str(meta.title).strip() if meta is not None and meta.title else ""
        except _Skip:
            raise
        except Exception as exc:  # a corrupt file can fail anywhere inside pypdf
            raise _Skip(f"corrupt PDF ({type(exc).__name__}: {_one_line(exc)})") from None
    parts, starts, pos = [], [], 0
    for page in pages:
        body = _normalise(page).strip()
        starts.append(pos)
        parts.append(body)
        pos += len(body) + 2
    text = "\n\n".join(parts)
    if not text.strip():
        raise _Skip("PDF has no extractable text (scanned images?)")
    return text, tuple(starts), title or path.stem


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or "unreadable"


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)

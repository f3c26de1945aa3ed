"""Reading sources: each file type, built-in corpora, and bad files skipped
with a reason."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from llmline.errors import NotFoundError, UserError
from llmline.rag.sources import builtin_documents, collect_sources

from .conftest import write_corpus, write_pdf


def test_each_file_type_is_read_with_title_and_hash(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "docs")
    (folder / "crlf.txt").write_bytes(b"line one\r\nline two\r\n")
    docs, skipped = collect_sources([folder])
    assert skipped == []
    by_name = {Path(d.uri.removeprefix("file://")).name: d for d in docs}
    assert [d.uri for d in docs] == sorted(d.uri for d in docs)
    kinds = {name: d.kind for name, d in by_name.items()}
    assert kinds == {
        "tides.md": "markdown", "bread.rst": "rst", "bees.html": "html", "chess.txt": "text",
        "volcano.pdf": "pdf", "crlf.txt": "text",
    }  # fmt: skip
    titles = {name: d.title for name, d in by_name.items()}
    assert titles["tides.md"] == "Tides"
    assert titles["bread.rst"] == "Baking bread"
    assert titles["bees.html"] == "Honey bees"
    assert titles["volcano.pdf"] == "Volcanoes"  # from the PDF's metadata
    assert titles["chess.txt"] == "chess"  # no title in plain text: the file name
    for name, doc in by_name.items():
        assert doc.sha256 == hashlib.sha256((folder / name).read_bytes()).hexdigest()
    assert by_name["crlf.txt"].text == "line one\nline two\n"
    html = by_name["bees.html"].text
    assert "<p>" not in html and "# Honey bees" in html and "## Waggle dance" in html
    pdf = by_name["volcano.pdf"]
    assert "magma rises" in pdf.text and "basalt" in pdf.text
    assert len(pdf.page_starts) == 2
    assert pdf.text[pdf.page_starts[1] :].startswith("Lava cools")


def test_bad_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text("# Good\n\nUseful words.\n", "utf-8")
    (folder / "blob.bin").write_bytes(bytes(range(256)))
    (folder / "nul.txt").write_bytes(b"text\x00with a NUL")
    (folder / "latin1.txt").write_bytes("café".encode("latin-1"))
    (folder / "empty.md").write_text("", "utf-8")
    (folder / "blank.rst").write_text("  \n\n ", "utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage")
    write_pdf(folder / "imageonly.pdf", [""])
    (folder / ".hidden.md").write_text("# Hidden\n", "utf-8")
    docs, skipped = collect_sources([folder])
    assert [Path(d.uri).name for d in docs] == ["good.md"]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert set(reasons) == {
        "blob.bin", "nul.txt", "latin1.txt", "empty.md", "blank.rst", "broken.pdf",
        "imageonly.pdf",
    }  # fmt: skip
    assert reasons["blob.bin"].startswith("unsupported file type '.bin'")
    assert "NUL" in reasons["nul.txt"]
    assert "not UTF-8" in reasons["latin1.txt"]
    assert reasons["empty.md"] == "empty file"
    assert reasons["blank.rst"] == "no text in it"
    assert reasons["broken.pdf"].startswith("corrupt PDF")
    assert "no extractable text" in reasons["imageonly.pdf"]


def test_missing_path_and_unknown_builtin_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file or folder"):
        collect_sources([tmp_path / "nope"])
    with pytest.raises(UserError, match="pydoc-topics"):
        collect_sources([], ["wikipedia"])


def test_pydoc_topics_builtin() -> None:
    from pydoc_data.topics import topics

    docs = builtin_documents("pydoc-topics")
    assert len(docs) == len(topics)
    with_doc = next(d for d in docs if d.uri == "pydoc:with")
    assert with_doc.title == "with" and with_doc.kind == "pydoc"
    assert with_doc.text == topics["with"].replace("\r\n", "\n")
    assert with_doc.sha256 == hashlib.sha256(with_doc.text.encode()).hexdigest()


def test_same_file_named_twice_is_read_once(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "docs")
    docs, _ = collect_sources([folder, folder / "tides.md"])
    assert len(docs) == 5

"""Structure-aware recursive chunking, counted in real MiniLM word pieces."""

from __future__ import annotations

import itertools
import random

import pytest

from llmline.errors import ConfigError
from llmline.rag.chunking import (
    Chunk,
    ChunkingOptions,
    TokenIndex,
    chunk_document,
    find_sections,
)
from llmline.rag.encoder import MiniLMEncoder

WORDS = [
    "river", "stone", "window", "garden", "lantern", "copper", "meadow", "harbour", "violin",
    "pepper", "thunder", "orchard", "candle", "marble", "falcon", "silver", "engine", "basket",
    "island", "mirror",
]  # fmt: skip


def sentences(rng: random.Random, n: int) -> str:
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def markdown_doc(seed: int = 0) -> str:
    rng = random.Random(seed)
    parts = ["# Field guide\n\n" + sentences(rng, 3)]
    for i in range(4):
        parts.append(f"## Part {i}\n\n" + "\n\n".join(sentences(rng, 4) for _ in range(5)))
    parts.append("## Long paragraph\n\n" + sentences(rng, 60))
    return "\n\n".join(parts) + "\n"


def chunks_of(
    text: str, kind: str, encoder: MiniLMEncoder, size: int, overlap: int
) -> tuple[list[Chunk], TokenIndex]:
    tokens = TokenIndex(encoder.token_spans(text))
    return chunk_document(text, kind, tokens, ChunkingOptions(size, overlap)), tokens


def test_chunks_fit_the_size_counted_independently(encoder: MiniLMEncoder) -> None:
    text = markdown_doc()
    chunks, _ = chunks_of(text, "markdown", encoder, 64, 16)
    assert len(chunks) > 10
    for chunk in chunks:
        # Re-tokenise the chunk on its own: the real count, not the index's.
        assert len(encoder.token_spans(text[chunk.start : chunk.end])) <= 64
    # Greedy merging: chunks are not needlessly tiny (a section's tail may be).
    assert sum(c.tokens for c in chunks) / len(chunks) > 32


def test_chunks_follow_headings_and_keep_paragraphs_whole(encoder: MiniLMEncoder) -> None:
    text = markdown_doc(1)
    chunks, tokens = chunks_of(text, "markdown", encoder, 96, 16)
    sections = find_sections(text, "markdown")
    assert [s.heading for s in sections] == [
        "Field guide", "Part 0", "Part 1", "Part 2", "Part 3", "Long paragraph",
    ]  # fmt: skip
    for section in sections:
        inside = [c for c in chunks if section.start <= c.start < section.end]
        assert inside and inside[0].start == section.start  # starts at its heading
        assert all(c.end <= section.end for c in inside)  # never crosses the next
        assert {c.section for c in inside} == {section.heading}
    for raw in text.split("\n\n"):
        para = raw.strip()
        if para and tokens.count(text.index(para), text.index(para) + len(para)) <= 96:
            assert any(para in text[c.start : c.end] for c in chunks), para[:40]


def test_overlap_is_a_suffix_then_prefix_at_word_starts(encoder: MiniLMEncoder) -> None:
    text = markdown_doc(2)
    chunks, tokens = chunks_of(text, "markdown", encoder, 64, 20)
    pairs = [(a, b) for a, b in itertools.pairwise(chunks) if a.section == b.section]
    overlapping = [(a, b) for a, b in pairs if b.start < a.end]
    assert len(overlapping) > len(pairs) / 2
    for a, b in pairs:
        if b.start >= a.end:  # no room left: the chunk is nearly full without it
            assert b.tokens > 64 - 20
    for a, b in overlapping:
        assert 1 <= tokens.count(b.start, a.end) <= 20
        shared = text[b.start : a.end]
        assert text[a.start : a.end].endswith(shared)
        assert text[b.start : b.end].startswith(shared)
        assert text[b.start - 1].isspace()
    # Sections never overlap each other.
    for a, b in itertools.pairwise(chunks):
        if a.section != b.section:
            assert b.start >= a.end


def test_no_overlap_when_zero(encoder: MiniLMEncoder) -> None:
    text = markdown_doc(3)
    chunks, _ = chunks_of(text, "markdown", encoder, 48, 0)
    for a, b in itertools.pairwise(chunks):
        assert b.start >= a.end


def test_rest_and_pydoc_headings_with_overlines(encoder: MiniLMEncoder) -> None:
    text = (
        "=======\nManual\n=======\n\nIntro text here.\n\nInstall\n-------\n\npip it.\n\n"
        "Not a heading\n--\n\nUse\n~~~\n\nRun it.\n"
    )
    sections = find_sections(text, "rst")
    assert [s.heading for s in sections] == ["Manual", "Install", "Use"]
    assert sections[0].start == 0  # the overline belongs to the heading
    pydoc = 'The "with" statement\n********************\n\nBody.\n\nNotes\n=====\n\nMore.\n'
    assert [s.heading for s in find_sections(pydoc, "pydoc")] == [
        'The "with" statement',
        "Notes",
    ]


def test_markdown_heading_in_code_fence_is_not_a_heading() -> None:
    text = "# Real\n\nText.\n\n```python\n# a comment\nx = 1\n```\n\n## Also real\n\nMore.\n"
    assert [s.heading for s in find_sections(text, "markdown")] == ["Real", "Also real"]


def test_pdf_pages_are_sections(encoder: MiniLMEncoder) -> None:
    text = "Page one words.\n\nPage two words."
    chunks, _ = chunks_of(text, "pdf", encoder, 256, 0)
    assert len(chunks) == 1  # no page starts given: one section
    tokens = TokenIndex(encoder.token_spans(text))
    paged = chunk_document(text, "pdf", tokens, ChunkingOptions(256, 0), page_starts=(0, 17))
    assert [text[c.start : c.end] for c in paged] == ["Page one words.", "Page two words."]


def test_a_word_longer_than_a_chunk_is_cut_between_word_pieces(encoder: MiniLMEncoder) -> None:
    rng = random.Random(4)
    # No whitespace at all, but many word pieces (the tokenizer splits on "-").
    blob = "-".join(rng.choice(WORDS) for _ in range(300))
    text = f"Before the blob.\n\n{blob}\n\nAfter the blob."
    chunks, tokens = chunks_of(text, "text", encoder, 32, 8)
    at = text.index(blob)
    inside = [c for c in chunks if at <= c.start < at + len(blob)]
    assert len(inside) >= tokens.count(at, at + len(blob)) // 32
    assert all(c.tokens <= 32 for c in chunks)
    # Every word piece of the blob is in a chunk, and cuts fall between pieces.
    for start, end in tokens.spans[tokens.first_at(at) : tokens.first_at(at + len(blob))]:
        assert any(c.start <= start and end <= c.end for c in chunks)
    assert all(c.start in tokens.starts for c in inside)
    assert text[chunks[0].start : chunks[0].end] == "Before the blob."


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        ChunkingOptions(8, 0)
    with pytest.raises(ConfigError, match="overlap"):
        ChunkingOptions(100, 60)
    with pytest.raises(ConfigError, match="overlap"):
        ChunkingOptions(100, -1)

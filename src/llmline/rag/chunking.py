"""Structure-aware recursive chunking, measured in the encoder's word pieces.

A document is first cut into sections at its headings (Markdown ``#`` and
setext headings; reST-style underlined titles, which pydoc's topics use
too; PDF pages).  Each section is split recursively, on blank lines, then
lines, then sentences, then words, until every piece fits ``chunk_size``
word pieces; a single word longer than that is cut between word pieces.
Adjacent pieces are then merged greedily up to ``chunk_size``.  A chunk
never crosses a section boundary, and a chunk that continues a section
starts with up to ``overlap`` word pieces of the previous chunk's end
(fewer when the piece that follows leaves less room), cut at a sentence
start when that keeps at least half of them, else at a word start.

Spans are character offsets into the document text, so a chunk's text is
always exactly ``text[start:end]``; the overlap is the previous chunk's
suffix and the next one's prefix.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from llmline.errors import ConfigError

__all__ = [
    "Chunk",
    "ChunkingOptions",
    "Section",
    "TokenIndex",
    "chunk_document",
    "find_sections",
]

MIN_CHUNK_SIZE = 16
_SEPARATORS = (
    re.compile(r"\n[ \t]*\n\s*"),  # paragraphs
    re.compile(r"\n\s*"),  # lines
    re.compile(r"(?<=[.!?])\s+"),  # sentences
    re.compile(r"\s+"),  # words
)
_SENTENCE_START = re.compile(r"(?<=[.!?])\s+(?=\S)")
_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_FENCE = re.compile(r"^[ \t]*(```|~~~)", re.MULTILINE)
_UNDERLINE = re.compile(r"""^([=\-~^"'*+#:.`_])\1{2,}[ \t]*$""")


@dataclass(frozen=True)
class ChunkingOptions:
    chunk_size: int = 512
    overlap: int = 64

    def __post_init__(self) -> None:
        if self.chunk_size < MIN_CHUNK_SIZE:
            raise ConfigError(
                f"chunk size must be at least {MIN_CHUNK_SIZE} word pieces, got {self.chunk_size}"
            )
        if not 0 <= self.overlap <= self.chunk_size // 2:
            raise ConfigError(
                f"overlap must be between 0 and half the chunk size ({self.chunk_size // 2}), "
                f"got {self.overlap}"
            )


@dataclass(frozen=True)
class Section:
    start: int
    end: int
    heading: str


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int
    tokens: int
    section: str
    # Word-piece range in the document's token list (for embedding windows).
    token_start: int
    token_end: int


class TokenIndex:
    """Word-piece counts of any character span, from one tokenisation of the
    whole document (a bisect on the pieces' start offsets)."""

    def __init__(self, spans: Sequence[tuple[int, int]]) -> None:
        self.spans = list(spans)
        self.starts = [s for s, _ in self.spans]

    def first_at(self, char: int) -> int:
        """Index of the first word piece starting at or after ``char``."""
        return bisect.bisect_left(self.starts, char)

    def count(self, start: int, end: int) -> int:
        return self.first_at(end) - self.first_at(start)


def chunk_document(
    text: str,
    kind: str,
    tokens: TokenIndex,
    options: ChunkingOptions,
    *,
    page_starts: Sequence[int] = (),
) -> list[Chunk]:
    """Chunks of ``text`` (a document of type ``kind``), in document order."""
    chunks: list[Chunk] = []
    for section in find_sections(text, kind, page_starts=page_starts):
        pieces = _split(text, _trim(text, section.start, section.end), 0, tokens, options)
        for start, end in _merge(text, pieces, tokens, options):
            chunks.append(
                Chunk(
                    start,
                    end,
                    tokens.count(start, end),
                    section.heading,
                    tokens.first_at(start),
                    tokens.first_at(end),
                )
            )
    return chunks


# -- sections -------------------------------------------------------------------------
def find_sections(text: str, kind: str, *, page_starts: Sequence[int] = ()) -> list[Section]:
    """Sections covering ``text``: each starts at a heading (or a page)."""
    if kind == "pdf":
        bounds = [(p, "") for p in page_starts if 0 <= p < len(text)] or [(0, "")]
    elif kind in ("markdown", "html"):
        bounds = _markdown_headings(text)
    else:
        bounds = _underlined_headings(text)
    if not bounds or bounds[0][0] > 0:
        bounds.insert(0, (0, ""))
    ends = [start for start, _ in bounds[1:]] + [len(text)]
    return [Section(s, e, h) for (s, h), e in zip(bounds, ends, strict=True) if s < e]


def _fenced_ranges(text: str) -> list[tuple[int, int]]:
    marks = [m.start() for m in _FENCE.finditer(text)]
    # An unclosed fence runs to the end of the document, as Markdown renders it.
    marks.append(len(text))
    return list(zip(marks[0::2], marks[1::2], strict=False))


def _markdown_headings(text: str) -> list[tuple[int, str]]:
    fenced = _fenced_ranges(text)

    def in_code(pos: int) -> bool:
        return any(a <= pos < b for a, b in fenced)

    found = [(m.start(), m.group(2).strip()) for m in _ATX.finditer(text) if not in_code(m.start())]
    found += [(pos, title) for pos, title in _setext(text, "=-") if not in_code(pos)]
    return sorted(found)


def _lines(text: str) -> list[tuple[int, str]]:
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, line))
        pos += len(line) + 1
    return out


def _setext(text: str, chars: str) -> list[tuple[int, str]]:
    """Title lines underlined with a repeated character at least as long."""
    lines = _lines(text)
    found = []
    for (pos, title), (_, under) in itertools.pairwise(lines):
        stripped = title.strip()
        match = _UNDERLINE.match(under)
        if (
            match
            and match.group(1) in chars
            and stripped
            and not title[:1].isspace()
            and not _UNDERLINE.match(title)
            and len(under.rstrip()) >= len(stripped)
        ):
            found.append((pos, stripped))
    return found


def _underlined_headings(text: str) -> list[tuple[int, str]]:
    headings = _setext(text, "=-~^\"'*+#:.`_")
    lines = dict(_lines(text))
    starts = sorted(lines)
    out = []
    for title_at, title in headings:
        # An overline (reST's "====\nTitle\n====") belongs to the heading too.
        i = bisect.bisect_left(starts, title_at)
        overlined = i > 0 and _UNDERLINE.match(lines[starts[i - 1]])
        out.append((starts[i - 1] if overlined else title_at, title))
    return out


# -- recursive split and merge --------------------------------------------------------
def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split(
    text: str, span: tuple[int, int], level: int, tokens: TokenIndex, options: ChunkingOptions
) -> list[tuple[int, int]]:
    start, end = span
    if start >= end:
        return []
    if tokens.count(start, end) <= options.chunk_size:
        return [span]
    if level == len(_SEPARATORS):
        return _hard_split(start, end, tokens, options.chunk_size)
    pieces, pos = [], start
    for match in _SEPARATORS[level].finditer(text, start, end):
        pieces.append(_trim(text, pos, match.start()))
        pos = match.end()
    pieces.append(_trim(text, pos, end))
    out: list[tuple[int, int]] = []
    for piece in pieces:
        out.extend(_split(text, piece, level + 1, tokens, options))
    return out


def _hard_split(start: int, end: int, tokens: TokenIndex, size: int) -> list[tuple[int, int]]:
    """A run of text without spaces longer than a chunk: cut between word pieces."""
    first, last = tokens.first_at(start), tokens.first_at(end)
    out = []
    for i in range(first, last, size):
        j = min(i + size, last)
        out.append((max(start, tokens.spans[i][0]), min(end, tokens.spans[j - 1][1])))
    return out


def _merge(
    text: str, pieces: list[tuple[int, int]], tokens: TokenIndex, options: ChunkingOptions
) -> list[tuple[int, int]]:
    chunks: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for start, end in pieces:
        if current is None:
            current = (start, end)
        elif tokens.count(current[0], end) <= options.chunk_size:
            current = (current[0], end)
        else:
            chunks.append(current)
            # Repeat as much of the previous chunk as still fits beside this piece.
            room = min(options.overlap, options.chunk_size - tokens.count(start, end))
            lead = _overlap_start(text, current, tokens, room)
            current = (start if lead is None else lead, end)
    if current is not None:
        chunks.append(current)
    return chunks


def _overlap_start(
    text: str, chunk: tuple[int, int], tokens: TokenIndex, overlap: int
) -> int | None:
    """Where the next chunk starts inside ``chunk`` to repeat its last
    ``overlap`` word pieces (or fewer, to start at a sentence or word)."""
    if overlap <= 0:
        return None
    start, end = chunk
    first, last = tokens.first_at(start), tokens.first_at(end)
    lo = max(first, last - overlap)
    if lo >= last:
        return None
    earliest = tokens.spans[lo][0]
    sentence = _SENTENCE_START.search(text, earliest, end)
    if sentence and tokens.count(sentence.end(), end) >= max(1, overlap // 2):
        return sentence.end()
    if earliest == start or text[earliest - 1].isspace():
        return earliest
    gap = re.compile(r"\s+").search(text, earliest, end)
    if gap is None or gap.end() >= end:
        return None
    return gap.end()

"""Grounding an answer in retrieved chunks: pure functions, no I/O.

What a RAG deployment (``llmline.gateway.rag``) and the RAG evaluation
(``llmline.evaluation.rag``) share: which retrieved chunks go into the
prompt (a token budget, a relevance floor), the grounded prompt that
numbers them ``[1]``, ``[2]`` …, and which spans of the answer each source
supports (its ``[n]`` markers, else the sentences that overlap it most).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmline.rag.kb import Hit

__all__ = [
    "DEFAULT_PROMPT_NAME",
    "DEFAULT_PROMPT_TEXT",
    "LEXICAL_SUPPORT",
    "REFUSAL",
    "CitedSpan",
    "estimate_tokens",
    "format_context",
    "grounding_score",
    "map_citations",
    "select_context",
    "sentences",
]

DEFAULT_PROMPT_NAME = "rag-grounded"
DEFAULT_PROMPT_TEXT = (
    "Answer the question using only the numbered sources below. Cite the sources you "
    "use with their numbers in square brackets, like [1]. If the sources do not contain "
    'the answer, say "I can\'t answer that from the knowledge base."\n\n'
    "Sources:\n{context}\n\nQuestion: {question}\nAnswer:"
)
REFUSAL = "I can't answer that from the knowledge base."
#: Share of a sentence's content words a chunk must contain for the sentence
#: to count as supported by it when the answer carries no ``[n]`` marker.
LEXICAL_SUPPORT = 0.5

_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+(?:\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\])*|\n|$)")
_WORD = re.compile(r"[A-Za-z0-9_]+")
# Too common to say anything about where a sentence came from.
_STOPWORDS = frozenset(
    _WORD.findall(
        "a an the and or but if of to in on at by for with from as is are was were be been it "
        "its this that these those you your can not no do does use used using which what when "
        "how why who there their they them than then so such into also may must will"
    )
)


@dataclass(frozen=True)
class CitedSpan:
    """``answer[start:end]`` is supported by source number ``source`` (1-based)."""

    source: int
    start: int
    end: int
    how: str  # "marker" (the answer cites [n]) or "overlap" (lexical match)


def estimate_tokens(text: str) -> int:
    """About four characters a token (English prose, BPE tokenizers)."""
    return max(1, math.ceil(len(text) / 4))


def grounding_score(hit: Hit) -> float | None:
    """The dense cosine of a hit, when its ranking computed one."""
    return hit.scores.get("dense")


def select_context(
    hits: Sequence[Hit],
    max_tokens: int,
    *,
    min_score: float | None = None,
    scores: Sequence[float | None] | None = None,
    count_tokens: Callable[[str], int] = estimate_tokens,
) -> list[Hit]:
    """The hits that go into the prompt, best first.

    A hit below ``min_score`` (its ``scores`` entry, default the dense
    cosine) is dropped; then hits are kept while their text fits in
    ``max_tokens``.  Dropping the rest rather than cutting chunks keeps every
    source whole, so a citation's span is the chunk's span; only a first
    chunk larger than the whole budget is cut, so that something is left.
    """
    values = list(scores) if scores is not None else [grounding_score(h) for h in hits]
    passing = [
        hit
        for hit, score in zip(hits, values, strict=True)
        if min_score is None or (score is not None and score >= min_score)
    ]
    kept: list[Hit] = []
    used = 0
    for hit in passing:
        cost = count_tokens(hit.text)
        if used + cost > max_tokens:
            if not kept:
                kept.append(_cut(hit, max_tokens, count_tokens))
            break
        kept.append(hit)
        used += cost
    return kept


def _cut(hit: Hit, max_tokens: int, count_tokens: Callable[[str], int]) -> Hit:
    text = hit.text
    while text and count_tokens(text) > max_tokens:
        text = text[: int(len(text) * max_tokens / count_tokens(text)) - 1]
    return replace(hit, text=text, end=hit.start + len(text))


def format_context(hits: Sequence[Hit]) -> str:
    """The sources block of the grounded prompt: ``[n] title (uri)`` then the text."""
    return "\n\n".join(
        f"[{n}] {hit.title} ({hit.source})\n{hit.text.strip()}"
        for n, hit in enumerate(hits, start=1)
    )


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (a trailing ``[n]`` included)."""
    spans = []
    for match in _SENTENCE.finditer(text):
        start, end = match.start(), match.end()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


def map_citations(answer: str, sources: Sequence[str]) -> list[CitedSpan]:
    """Which spans of ``answer`` each of ``sources`` (chunk texts, numbered
    from 1) supports.

    A sentence carrying ``[n]`` (or ``[n, m]``) cites source n; a number
    outside ``1..len(sources)`` is ignored.  Without any valid marker in the
    answer, each sentence is matched to the source containing the largest
    share of its content words, when that share reaches
    :data:`LEXICAL_SUPPORT`.
    """
    spans = sentences(answer)
    cited = [
        CitedSpan(n, start, end, "marker")
        for start, end in spans
        for n in _markers(answer[start:end], len(sources))
    ]
    if cited:
        return cited
    vocabularies = [_content_words(text) for text in sources]
    for start, end in spans:
        words = _content_words(answer[start:end])
        if not words:
            continue
        shares = [len(words & vocab) / len(words) for vocab in vocabularies]
        best = max(range(len(shares)), key=shares.__getitem__, default=None)
        if best is not None and shares[best] >= LEXICAL_SUPPORT:
            cited.append(CitedSpan(best + 1, start, end, "overlap"))
    return cited


def _markers(sentence: str, count: int) -> list[int]:
    numbers: dict[int, None] = {}
    for match in _MARKER.finditer(sentence):
        for part in match.group(1).split(","):
            n = int(part)
            if 1 <= n <= count:
                numbers[n] = None
    return list(numbers)


def _content_words(text: str) -> set[str]:
    return {w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in _STOPWORDS}

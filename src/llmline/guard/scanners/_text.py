"""Helpers the rule-based scanners share: option parsing, spans, redaction,
evidence combination and the invisible-character alphabet.

Nothing here keeps state, so every helper is safe to call from the checker's
worker threads.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from llmline._pydantic import problems
from llmline.errors import ConfigError

__all__ = [
    "INVISIBLE_CLASS",
    "Span",
    "count_notes",
    "noisy_or",
    "non_overlapping",
    "parse_options",
    "redact",
    "strip_invisible",
]

_Model = TypeVar("_Model", bound=BaseModel)


class Span(Protocol):
    """A finding located in the text by character offsets (end exclusive)."""

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...


_S = TypeVar("_S", bound=Span)

#: Characters that render as nothing (zero-width space, word joiner, BOM,
#: invisible operators, deprecated format controls, Hangul fillers, the
#: Mongolian vowel separator, bidi embeddings/overrides/isolates and the tag
#: block).  Joiners and directional marks, which real scripts and emoji need,
#: are left out: the unicode scanner judges those by their neighbours.
INVISIBLE_CLASS = (
    "\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180e\u200b\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb\U000e0000-\U000e007f"
)
_INVISIBLE = re.compile(f"[{INVISIBLE_CLASS}\u200c\u200d]+")


def parse_options(model: type[_Model], options: Mapping[str, Any], scanner: str) -> _Model:
    """``options`` validated by ``model``; a bad field raises :class:`ConfigError`
    naming the scanner and the field."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        raise ConfigError(
            f"invalid options for guard scanner {scanner}: {problems(exc, 'options')}"
        ) from None


def non_overlapping(found: Iterable[_S], rank: Callable[[_S], int]) -> list[_S]:
    """The findings that survive overlaps, in text order: where two overlap,
    the one of lower ``rank`` wins (then the longer, then the earlier)."""
    ordered = sorted(found, key=lambda m: (rank(m), m.start - m.end, m.start))
    starts: list[int] = []
    kept: list[_S] = []
    for match in ordered:
        i = bisect.bisect_right(starts, match.start)
        # Kept spans never overlap, so only the neighbours on either side can clash.
        if i > 0 and kept[i - 1].end > match.start:
            continue
        if i < len(kept) and kept[i].start < match.end:
            continue
        starts.insert(i, match.start)
        kept.insert(i, match)
    return kept


def redact(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    """``text`` with each ``(start, end, placeholder)`` span replaced; the
    spans must not overlap."""
    pieces: list[str] = []
    position = 0
    for start, end, placeholder in sorted(spans):
        pieces.append(text[position:start])
        pieces.append(placeholder)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def count_notes(kinds: Iterable[str]) -> tuple[str, ...]:
    """``("email x2", "phone x1")``: which kinds were found, how often."""
    return tuple(f"{kind} x{n}" for kind, n in sorted(Counter(kinds).items()))


def noisy_or(evidence: Iterable[float]) -> float:
    """Independent pieces of evidence combined: ``1 - prod(1 - p)``, in 0..1."""
    remaining = 1.0
    for p in evidence:
        remaining *= 1.0 - min(1.0, max(0.0, p))
    return round(1.0 - remaining, 4)


def strip_invisible(text: str) -> str:
    """``text`` without zero-width, bidi-control, tag and joiner characters
    (so that "DR\u200bOP" reads as "DROP" to a pattern)."""
    return _INVISIBLE.sub("", text)

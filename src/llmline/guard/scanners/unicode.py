"""Unicode smuggling: characters that hide text from a human reader or a
filter while a model still reads them.

- invisible characters (zero-width space, word joiner, a BOM inside the
  text, invisible operators, Hangul fillers ...);
- bidi controls (embeddings, overrides, isolates), which reorder what a
  reader sees ("Trojan Source");
- Unicode tag characters (U+E0000-U+E007F), an invisible copy of ASCII: the
  hidden text is decoded only to count it, and never reported;
- runs of variation selectors, which can carry arbitrary bytes after one
  visible character;
- words mixing Latin letters with Cyrillic or Greek look-alikes ("раypal");
- joiners and directional marks where no script needs them (next to ASCII,
  or several in a row): the ones emoji, Persian or Hindi text use are fine,
  as are the tag sequences of the England, Scotland and Wales flags.

Counting is done by C-level regex passes (``subn``), so a megabyte of
zero-width characters is scanned in milliseconds.  ``redacted_text`` is the
sanitised text: the smuggling characters removed and mixed words folded to
Latin.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from llmline.gateway.safety import ScanContext, ScanResult, Severity
from llmline.guard.scanners._text import noisy_or, parse_options

if TYPE_CHECKING:
    from llmline.guard.scanners import Embedder

__all__ = [
    "CATEGORY",
    "UnicodeFindings",
    "UnicodeOptions",
    "UnicodeScanner",
    "analyse",
    "create",
    "fold_confusables",
]

CATEGORY = "unicode_smuggling"

# Runs, not single characters: a megabyte of them is a handful of matches.
# (A byte-order mark is one too, except as the first character: see analyse.)
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180e\u200b\u2060-\u2064\u206a-\u206f"
    "\u3164\ufeff\uffa0\ufff9-\ufffb]+"
)
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]+")
# Joiners and marks, which scripts and emoji sequences do need, are suspect
# only in a run or next to printable ASCII.
_CONTEXTUAL = "\u200c\u200d\u200e\u200f\u061c"
_CONTEXTUAL_BAD = re.compile(
    f"[{_CONTEXTUAL}]{{2,}}|(?<=[\\x21-\\x7e])[{_CONTEXTUAL}]|[{_CONTEXTUAL}](?=[\\x21-\\x7e])"
)
_TAG_RUN = re.compile("[\U000e0000-\U000e007f]+")
# Subdivision flags: U+1F3F4, two to six tag letters or digits, CANCEL TAG.
_FLAG_TAGS = re.compile("[\U000e0030-\U000e0039\U000e0061-\U000e007a]{2,6}\U000e007f")
_VARIATION_RUN = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]{2,}")
# Cyrillic and Greek letters that look like Latin ones.
_LOOKALIKES = "аеорсухіјѕһԁԛԝӏАВЕКМНОРСТУХІЈЅαορνικτυχγΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"
_LATIN_OF = "aeopcyxijshdqwlABEKMHOPCTYXIJSaopviktuxyABEZHIKMNOPTYX"
_FOLD = str.maketrans(_LOOKALIKES, _LATIN_OF)
# A word with a look-alike: started at a word boundary and extended lazily,
# so a long word without one is read once, not once per position.
_LOOKALIKE_WORD = re.compile(f"(?<![^\\W\\d_])[^\\W\\d_]*?[{_LOOKALIKES}][^\\W\\d_]*")
_LOOKALIKE_CHAR = re.compile(f"[{_LOOKALIKES}]")
_LATIN = re.compile("[A-Za-z]")


@dataclass(frozen=True)
class UnicodeFindings:
    """Counts of each kind of smuggling character in one text."""

    invisible: int = 0
    bidi: int = 0
    joiners: int = 0
    tags: int = 0
    variation_selectors: int = 0
    mixed_words: int = 0
    length: int = 0

    @property
    def hidden(self) -> int:
        """Characters that render as nothing, all kinds together."""
        return self.invisible + self.bidi + self.joiners + self.tags + self.variation_selectors


def _suspect_tags(text: str) -> tuple[int, str]:
    """Tag characters outside flag sequences, and the text without them."""
    count = 0

    def drop(match: re.Match[str]) -> str:
        nonlocal count
        run = match.group()
        if (
            match.start() > 0
            and text[match.start() - 1] == "\U0001f3f4"
            and (_FLAG_TAGS.fullmatch(run))
        ):
            return run
        count += len(run)
        return ""

    clean = _TAG_RUN.sub(drop, text)
    return count, clean


def _mixed_words(text: str) -> tuple[int, str]:
    """Words mixing Latin and look-alike letters, and the text with them folded."""
    count = 0
    if not _LOOKALIKE_CHAR.search(text):
        return count, text

    def fold(match: re.Match[str]) -> str:
        nonlocal count
        word = match.group()
        if not _LATIN.search(word):
            return word  # Russian or Greek prose is left as written
        count += 1
        return word.translate(_FOLD)

    folded = _LOOKALIKE_WORD.sub(fold, text)
    return count, folded


def _removed(pattern: re.Pattern[str], text: str) -> tuple[int, str]:
    """How many characters ``pattern`` matches, and the text without them."""
    clean = pattern.sub("", text)
    return len(text) - len(clean), clean


def analyse(text: str) -> tuple[UnicodeFindings, str]:
    """The findings and the sanitised text (equal to ``text`` when clean)."""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    body = text[len(bom) :]
    tags, clean = _suspect_tags(body) if _TAG_RUN.search(body) else (0, body)
    invisible, clean = _removed(_INVISIBLE, clean)
    bidi, clean = _removed(_BIDI, clean)
    joiners, clean = _removed(_CONTEXTUAL_BAD, clean)
    # A run's first selector may be an ordinary emoji presentation selector;
    # the rest carry the payload.
    before = len(clean)
    clean = _VARIATION_RUN.sub(lambda m: m.group()[0], clean)
    selectors = before - len(clean)
    mixed, clean = _mixed_words(clean)
    findings = UnicodeFindings(
        invisible=invisible,
        bidi=bidi,
        joiners=joiners,
        tags=tags,
        variation_selectors=selectors,
        mixed_words=mixed,
        length=len(text),
    )
    return findings, bom + clean


def fold_confusables(word: str) -> str:
    """``word`` with Cyrillic and Greek look-alikes replaced by Latin letters."""
    return word.translate(_FOLD)


def _evidence(f: UnicodeFindings, ratio_threshold: float) -> list[tuple[float, str]]:
    """(how strongly each finding points to smuggling, its note)."""
    out: list[tuple[float, str]] = []
    if f.tags:
        out.append((0.95, f"tags:{f.tags} chars"))
    if f.bidi:
        out.append((min(0.9, 0.6 + 0.1 * f.bidi), f"bidi:{f.bidi}"))
    if f.variation_selectors:
        vs = f.variation_selectors
        out.append((min(0.9, 0.5 + 0.05 * vs), f"variation_selectors:{vs}"))
    zero_width = f.invisible + f.joiners
    if zero_width:
        # One stray zero-width space is often copy-and-paste debris.
        out.append((min(0.7, 0.25 + 0.05 * zero_width), f"zero_width:{zero_width}"))
    if f.mixed_words:
        out.append((min(0.85, 0.45 + 0.1 * f.mixed_words), f"mixed_script_words:{f.mixed_words}"))
    ratio = f.hidden / f.length if f.length else 0.0
    if f.hidden >= 8 and ratio >= ratio_threshold:
        out.append((0.9, f"invisible_ratio:{ratio:.2f}"))
    return out


class UnicodeOptions(BaseModel):
    """Options of the ``unicode`` scanner in ``llmline.yaml``."""

    model_config = ConfigDict(extra="forbid")

    ratio_threshold: float = Field(
        default=0.1,
        gt=0.0,
        le=1.0,
        description="share of invisible characters from which the text itself is suspect",
    )


class UnicodeScanner:
    """Hidden or disguised characters: category ``unicode_smuggling``;
    ``medium`` severity for tag characters and bidi controls, ``low`` for
    the rest."""

    name = "unicode"
    inline_chars = 20_000

    def __init__(self, options: UnicodeOptions | None = None) -> None:
        self.options = options or UnicodeOptions()

    def scan(self, text: str, context: ScanContext) -> ScanResult:
        if text.isascii():
            return ScanResult(scores={CATEGORY: 0.0})
        findings, clean = analyse(text)
        evidence = _evidence(findings, self.options.ratio_threshold)
        if not evidence:
            return ScanResult(scores={CATEGORY: 0.0})
        score = noisy_or(p for p, _ in evidence)
        level: Severity = "medium" if findings.tags or findings.bidi else "low"
        return ScanResult(
            scores={CATEGORY: score},
            severity={CATEGORY: level},
            redacted_text=clean,
            notes=tuple(note for _, note in evidence),
        )


def create(options: Mapping[str, Any], *, embedder: Embedder | None = None) -> UnicodeScanner:
    """The ``unicode`` entry point (``embedder`` is not used)."""
    return UnicodeScanner(parse_options(UnicodeOptions, options, "unicode"))

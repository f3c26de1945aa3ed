"""Prompt-injection and jailbreak detection: heuristics plus a small classifier.

A prompt is first *normalised* so that the usual disguises do not hide it:
NFKC (fullwidth and mathematical letters become plain ones), zero-width,
bidi and tag characters stripped (tag characters, the "ASCII smuggling"
alphabet, are decoded and scanned as a hidden payload), Cyrillic and Greek
look-alikes inside Latin words folded back to Latin, s p a c e d - o u t
letters joined, lower case.  Encoded segments (base64, hex, percent-encoding,
ROT13 when the text mentions it, reversed text, quoted fragments that the
text asks to concatenate) are decoded and scanned as well.

Two detectors then score the text:

- weighted regular expressions, English (:data:`PATTERNS`) and 18 other
  languages (:data:`ML_PATTERNS`): each names a signal (``override``,
  ``extraction``, ``jailbreak`` ...) and how strong the evidence is; the
  signals combine as independent evidence (noisy-or).  About 1 ms for a
  2 KB prompt: each pattern is gated by substrings its matches contain;
- a logistic regression over MiniLM embeddings of the normalised text and of
  any decoded payload, trained on the labeled set shipped in
  ``llmline/guard/data`` (see :mod:`llmline.guard.train`; the weights are
  cached, and trained once on first use when missing).

The scanner reports one category, ``prompt_injection``, of ``high``
severity when the score reaches ``threshold``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import threading
import unicodedata
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmline._pydantic import problems
from llmline.errors import ConfigError
from llmline.gateway.embedder import MiniLMEmbedder
from llmline.gateway.safety import ScanContext, ScanResult, Severity
from llmline.guard.scanners.injection_multilingual import ML_PATTERNS
from llmline.guard.scanners.injection_patterns import (
    FLAG_WEIGHTS,
    PATTERNS,
    SPELLED_PATTERNS,
    Signal,
)

if TYPE_CHECKING:
    from llmline.guard.scanners import Embedder
    from llmline.guard.train import InjectionWeights

__all__ = [
    "CATEGORY",
    "HEURISTIC_CHARS",
    "KEYS",
    "ML_PATTERNS",
    "PATTERNS",
    "InjectionOptions",
    "InjectionScanner",
    "Normalised",
    "Payload",
    "Signal",
    "classifier_views",
    "create",
    "decode_payloads",
    "heuristic_score",
    "heuristic_signals",
    "normalise",
]

CATEGORY = "prompt_injection"
#: MiniLM reads at most 256 word pieces (about 1,000 characters of English);
#: longer views are cut into pieces of this size so none is silently truncated.
CHUNK_CHARS = 1000
#: Decoded payloads embedded per text, at most (each is one more embedding).
MAX_PAYLOAD_VIEWS = 3
#: The heuristics read at most this many characters, half from each end: a
#: few hundred milliseconds of regex at worst, where a whole megabyte of noise
#: would take seconds.  Attacks sit at the ends of long prompts (see
#: InjectionOptions.max_chars), and the gateway limits request sizes anyway.
HEURISTIC_CHARS = 200_000
_MAX_CANDIDATES = 16  # encoded segments tried per text
_MAX_SEGMENT = 20_000  # longer "base64" runs are data (images, archives), not prose

# -- normalisation ---------------------------------------------------------------
# Format characters that render as nothing: zero-width space/joiners, word
# joiner, BOM, soft hyphen, bidi controls and isolates, variation selectors,
# Hangul fillers, and the tag block (whose ASCII half is decoded first).
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e0fff]"
)
_TAG_RUN = re.compile("[\U000e0020-\U000e007e]+")
# Cyrillic, Greek and Armenian letters that look like Latin ones (lower case:
# folding runs after case folding), plus Latin letters NFKC leaves alone.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕһԁɡкмтвпԛԝαεικνορτυχγοօոսɑʏ",
    "aeopcyxijshdgkmtbnqwaeikvoptuxyoonuay",
)
_CONFUSABLE_CHARS = re.compile("[аеорсухіјѕһԁɡкмтвпԛԝαεικνορτυχγοօոսɑʏ]")
_LETTER_WORD = re.compile(r"[^\W\d_]+")
_LATIN = re.compile(r"[a-z]")
# Three or more single letters, each followed by one separator: "i g n o r e",
# "i-g-n-o-r-e".  Letters only, so version numbers and IPs stay as they are.
_SPACED = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][ .\-_*|·]){2,}[^\W\d_](?![^\W\d_])")
_SPACED_SEPARATOR = re.compile(r"[ .\-_*|·]")
_BLANKS = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")
_LEET_WORD = re.compile(r"(?<![\w@$])(?=[\w@$]*[a-z])(?=[\w@$]*[013457@$])[a-z0-9@$]{2,}(?![\w@$])")
_LEET = str.maketrans("013457@$", "oieastas")


@dataclass(frozen=True)
class Normalised:
    """A text with its disguises undone.

    ``text`` is what the patterns and the classifier read; ``spelled`` the
    spaced-out letter runs joined together (patterns over it need no word
    boundaries); ``hidden`` the ASCII that tag characters encoded; ``flags``
    the disguises found (``zero_width``, ``tag_chars``, ``homoglyph``,
    ``spaced``, ``leetspeak``); ``leet`` the text with leetspeak undone
    (empty when it has none).
    """

    text: str
    flags: frozenset[str]
    spelled: str = ""
    hidden: str = ""
    leet: str = ""


def _fold_homoglyphs(text: str) -> tuple[str, bool]:
    """Fold look-alikes in words that mix them with Latin letters (or, in a
    mostly Latin text, words made of them only): Russian or Greek prose is
    left alone, "іgnоrе" written with Cyrillic і, о and е is not."""
    if not _CONFUSABLE_CHARS.search(text):
        return text, False
    words = sum(1 for _ in _LETTER_WORD.finditer(text))
    latin_words = sum(1 for m in _LETTER_WORD.finditer(text) if _LATIN.search(m.group()))
    mostly_latin = latin_words * 2 > words
    changed = False

    def fold(match: re.Match[str]) -> str:
        nonlocal changed
        word = match.group()
        if not _CONFUSABLE_CHARS.search(word):
            return word
        if _LATIN.search(word) or (mostly_latin and not word.isascii()):
            folded = word.translate(_CONFUSABLES)
            if _LATIN.search(word) or folded.isascii():
                changed = changed or folded != word
                return folded
        return word

    return _LETTER_WORD.sub(fold, text), changed


def _collapse_spaced(text: str) -> tuple[str, list[str]]:
    spans: list[str] = []

    def join(match: re.Match[str]) -> str:
        joined = _SPACED_SEPARATOR.sub("", match.group())
        spans.append(joined)
        return joined

    return _SPACED.sub(join, text), spans


def _undo_leet(text: str) -> tuple[str, int]:
    if not any(c in text for c in "013457@$"):
        return text, 0
    count = 0

    def decode(match: re.Match[str]) -> str:
        nonlocal count
        word = match.group()
        if word.isdigit():
            return word
        count += 1
        return word.translate(_LEET)

    return _LEET_WORD.sub(decode, text), count


def _strip(text: str) -> tuple[str, str, set[str]]:
    """The text without invisible characters, the ASCII its tag characters
    spelled, and which kinds were present."""
    flags: set[str] = set()
    hidden = " ".join("".join(chr(ord(c) - 0xE0000) for c in run) for run in _TAG_RUN.findall(text))
    if hidden:
        flags.add("tag_chars")
    stripped = _INVISIBLE.sub("", text)
    if len(stripped) != len(text) and len(stripped) + len(hidden.replace(" ", "")) != len(text):
        flags.add("zero_width")
    return stripped, hidden, flags


def _finish(text: str, hidden: str, flags: set[str]) -> Normalised:
    """Normalise ``text``, already stripped of invisible characters and NFKC."""
    folded, homoglyphs = _fold_homoglyphs(text.casefold())
    if homoglyphs:
        flags.add("homoglyph")
    collapsed, spans = _collapse_spaced(folded)
    if spans:
        flags.add("spaced")
    clean = _NEWLINES.sub("\n", _BLANKS.sub(" ", collapsed)).strip()
    leet, leet_words = _undo_leet(clean)
    # One leet-looking word is a version string or a user name ("mp3",
    # "r3d_dr4gon"); two or more is a disguise worth reading undone.
    if leet_words >= 2:
        flags.add("leetspeak")
    return Normalised(
        text=clean,
        flags=frozenset(flags),
        spelled="".join(spans),
        hidden=hidden,
        leet=leet if leet_words >= 2 else "",
    )


def normalise(text: str) -> Normalised:
    """``text`` as the detectors read it (see :class:`Normalised`)."""
    stripped, hidden, flags = _strip(text)
    return _finish(unicodedata.normalize("NFKC", stripped), hidden, flags)


# -- decoding --------------------------------------------------------------------
@dataclass(frozen=True)
class Payload:
    """Text found encoded inside a prompt: ``kind`` names the encoding,
    ``span`` where the encoded form sits in the text (None for encodings
    of the whole text, such as ROT13 or joined fragments)."""

    kind: str
    text: str
    span: tuple[int, int] | None = None


_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}")
# Printable ASCII is bytes 0x20..0x7e: hex-encoded text has a digit 2-7 in
# every other place, which keeps these fast on prose full of a-f letters.
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])(?:[2-7][0-9A-Fa-f]){8,}(?![0-9A-Fa-f])")
_HEX_SPACED = re.compile(r"(?:(?:\\x|0x)?[2-7][0-9A-Fa-f][ ,:]?){8,}")
_HEX_DIGITS = re.compile(r"(?:\\x|0x)|[ ,:]")
_PERCENT = re.compile(r"(?:%[0-9A-Fa-f]{2}){6,}")
_ROT13_HINT = re.compile(r"\brot[\s-]?13\b|\bcaesar\b", re.IGNORECASE)
# Quoted fragments; an apostrophe inside a word ("I'll", "neighbour's") is not a quote.
_QUOTED = re.compile(
    r"(?<!\w)'((?:[^'\n]|(?<=\w)'(?=\w)){1,80})'(?!\w)|\"([^\"\n]{1,80})\"|"
    r"‘([^’\n]{1,80})’|“([^”\n]{1,80})”"
)
# Words that ask for fragments to be put together (substrings of the lower-cased text).
_JOIN_HINTS = (
    "+",
    "concatenat",
    "combine",
    "join",
    "together",
    "piece",
    "part",
    "half",
    "resulting",
    "in order",
    "word one",
    "word two",
    "word 1",
    "sentence",
)


def _readable(raw: bytes) -> str | None:
    """``raw`` as text when it reads as prose (UTF-8, printable, with letters
    and spaces), else None: random bytes, images and hashes are not payloads."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 6:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\t")
    letters = sum(1 for c in text if c.isalpha())
    if printable < 0.95 * len(text) or letters < 0.5 * len(text.replace(" ", "")):
        return None
    # Prose has spaces; a long run without is base64 in base64, decoded next.
    return text if (" " in text or len(text) < 40 or _BASE64.fullmatch(text)) else None


def _base64_payloads(text: str) -> list[Payload]:
    found: list[Payload] = []
    for tried, match in enumerate(_BASE64.finditer(text)):
        segment = match.group()
        if tried >= 4 * _MAX_CANDIDATES or len(found) >= _MAX_CANDIDATES:
            break
        if len(segment) > _MAX_SEGMENT or (segment.isalpha() and segment.islower()):
            continue  # a long lower-case word ("internationalisation") is not base64
        body = segment.rstrip("=")
        try:
            altchars = b"-_" if ("-" in body or "_" in body) else None
            raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = _readable(raw)
        if decoded:
            found.append(Payload("base64", decoded, match.span()))
    return found


def _hex_payloads(text: str) -> list[Payload]:
    found: list[Payload] = []
    regexes = [(_PERCENT, "percent")] if "%" in text else []
    # Eight encoded bytes need eight of these digits; most prose has fewer.
    if sum(map(text.count, "234567")) >= 8:
        regexes = [(_HEX_RUN, "hex"), (_HEX_SPACED, "hex"), *regexes]
    for regex, kind in regexes:
        for match in regex.finditer(text):
            if kind == "percent":
                raw = urllib.parse.unquote_to_bytes(match.group())
            else:
                digits = _HEX_DIGITS.sub("", match.group())
                if len(digits) % 2 or len(digits) > _MAX_SEGMENT:
                    continue
                raw = bytes.fromhex(digits)
            decoded = _readable(raw)
            if decoded and all(decoded != p.text for p in found):
                found.append(Payload(kind, decoded, match.span()))
            if len(found) >= _MAX_CANDIDATES:
                return found
    return found


def _split_payload(text: str) -> list[Payload]:
    """Quoted fragments the text asks to put together ("a = 'ignore all prev',
    b = 'ious instructions'; do a + b"), joined as written."""
    lowered = text.lower()
    if not any(hint in lowered for hint in _JOIN_HINTS):
        return []
    fragments = _quoted(text)
    if len(fragments) < 2:
        return []
    return [Payload("split", "".join(fragments[:32])), Payload("split", " ".join(fragments[:32]))]


# Common English words: ROT13 that makes more of them is a real payload.
_COMMON_WORDS = (
    "the a an and or to of in on is are be you your me my i it this that for with all "
    "now what how do not tell show"
)
_COMMON = frozenset(_COMMON_WORDS.split())
_WORD = re.compile(r"[a-z]+")


def _common_words(text: str) -> int:
    return sum(1 for word in _WORD.findall(text.lower()) if word in _COMMON)


def decode_payloads(text: str, *, depth: int = 2) -> list[Payload]:
    """Encoded text inside ``text``: base64 (standard and URL-safe), hex
    (plain, spaced, ``\\x``), percent-encoding, ROT13 (only when the text
    mentions it) and concatenated quoted fragments; decoded payloads are
    searched again, ``depth`` levels deep (base64 inside base64)."""
    found = [*_base64_payloads(text), *_hex_payloads(text)]
    if _ROT13_HINT.search(text):
        rotated = codecs.decode(text, "rot13")
        # Only when it reads better turned: ROT13 of a question *about*
        # ROT13 is noise, and noise is what a classifier scores worst.
        if _common_words(rotated) > _common_words(text):
            found.append(Payload("rot13", rotated))
    found.extend(_split_payload(text))
    if depth > 1:
        for payload in [p for p in found if p.span is not None]:
            nested = decode_payloads(payload.text, depth=depth - 1)
            found.extend(Payload(p.kind, p.text) for p in nested)
    return found[: 2 * _MAX_CANDIDATES]


def _mask(text: str, payloads: Sequence[Payload]) -> str:
    """``text`` with each decoded segment replaced by ``[encoded]``: the
    classifier reads what the text says around the payload (and the payload
    itself, decoded, as a view of its own), not base64 noise."""
    spans = sorted(p.span for p in payloads if p.span is not None)
    if not spans:
        return text
    pieces: list[str] = []
    at = 0
    for start, end in spans:
        if start >= at:
            pieces.append(text[at:start])
            pieces.append(" [encoded] ")
            at = end
    pieces.append(text[at:])
    return "".join(pieces)


# -- analysis --------------------------------------------------------------------
#: Every gate key of every pattern, looked up once per text (see Signal.search).
KEYS: frozenset[str] = frozenset(
    key for signal in (*PATTERNS, *ML_PATTERNS, *SPELLED_PATTERNS) for key in signal.keys
)


@dataclass(frozen=True)
class _Analysis:
    normalised: Normalised
    payloads: tuple[Payload, ...]
    signals: Mapping[str, float]
    notes: tuple[str, ...]


def _match(
    text: str,
    patterns: Sequence[Signal],
    found: dict[str, float],
    present: frozenset[str] | None = None,
) -> bool:
    if present is None:
        present = frozenset(key for key in KEYS if key in text)
    hit = False
    for signal in patterns:
        if signal.weight > found.get(signal.name, 0.0) and signal.search(text, present):
            found[signal.name] = signal.weight
            hit = True
    return hit


def _scan_view(text: str, found: dict[str, float]) -> bool:
    present = frozenset(key for key in KEYS if key in text)
    hit = _match(text, PATTERNS, found, present)
    return _match(text, ML_PATTERNS, found, present) or hit


# Backwards attack words: a text without one is not read reversed.
_REVERSED_HINTS = (
    "erongi",
    "dragersid",
    "tegrof",
    "tpmorp",
    "snoitcurtsni",
    "selur",
    "laever",
    "ssapyb",
    "edirrevo",
    "senilediug",
)


# A question *about* an attack phrase ("what does 'ignore previous
# instructions' mean?") mentions it rather than uses it: quoted phrases in
# such a text count half.
_MENTION = re.compile(
    r"\b(?:what does|what do|what is meant|mean(?:s|ing)?\b|defin\w*|explain\w*|"
    r"talk(?:s|ing)? about|examples? of|defend\w*|detect\w*|prevent\w*|protect\w*|mitigat\w*|"
    r"classif\w*|the (?:phrase|string|term|sentence))"
)


def _quoted(text: str) -> list[str]:
    return [next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(text)]


def _scan_main(text: str, found: dict[str, float]) -> None:
    quoted = _quoted(text) if _MENTION.search(text) else []
    if not quoted:
        _scan_view(text, found)
        return
    _scan_view(_QUOTED.sub(" ", text), found)
    mentioned: dict[str, float] = {}
    for phrase in quoted:
        _scan_view(phrase, mentioned)
    for name, weight in mentioned.items():
        found[name] = max(found.get(name, 0.0), weight / 2)


def _analyse(text: str) -> _Analysis:
    if len(text) > HEURISTIC_CHARS:
        half = HEURISTIC_CHARS // 2
        text = f"{text[:half]}\n{text[-half:]}"
    stripped, hidden, flags = _strip(text)
    unified = unicodedata.normalize("NFKC", stripped)
    raw_payloads = decode_payloads(unified)
    normalised = _finish(_mask(unified, raw_payloads), hidden, flags)
    if normalised.hidden:
        raw_payloads.insert(0, Payload("tag_chars", normalised.hidden))
    payloads = tuple(Payload(p.kind, normalise(p.text).text) for p in raw_payloads)
    found: dict[str, float] = {}
    notes: list[str] = []
    _scan_main(normalised.text, found)
    if normalised.spelled:
        _match(normalised.spelled, SPELLED_PATTERNS, found)
    if normalised.leet:
        _scan_view(normalised.leet, found)
    # Text written backwards counts only when it reads as an attack forwards.
    if any(hint in normalised.text for hint in _REVERSED_HINTS) and _match(
        normalised.text[::-1], PATTERNS, found
    ):
        notes.append("decoded:reversed")
    for payload in payloads:
        _scan_view(payload.text, found)
        note = f"decoded:{payload.kind}"
        if note not in notes:
            notes.append(note)
    for flag in sorted(normalised.flags):
        notes.append(f"obfuscation:{flag}")
        if flag in FLAG_WEIGHTS:
            found[f"obfuscation_{flag}"] = FLAG_WEIGHTS[flag]
    return _Analysis(normalised, payloads, found, tuple(notes))


def _noisy_or(weights: Sequence[float]) -> float:
    remaining = 1.0
    for weight in weights:
        remaining *= 1.0 - weight
    return 1.0 - remaining


def heuristic_signals(text: str) -> dict[str, float]:
    """The heuristic signals ``text`` fires (normalised, and its decoded
    payloads), each with its strongest weight."""
    return dict(_analyse(text).signals)


def heuristic_score(text: str) -> float:
    """The heuristics' probability that ``text`` is an attack: the signals
    combined as independent evidence (noisy-or), 0.0 when none fires."""
    return _noisy_or(list(_analyse(text).signals.values()))


def _chunks(text: str) -> list[str]:
    """``text`` cut at spaces into near-equal pieces MiniLM reads whole
    (scripts without spaces between words take more tokens per character)."""
    ascii_share = sum(1 for c in text[:2000] if c.isascii()) / max(1, min(len(text), 2000))
    size = CHUNK_CHARS if ascii_share > 0.8 else CHUNK_CHARS // 3
    if len(text) <= size:
        return [text] if text.strip() else []
    count = -(-len(text) // size)
    target = -(-len(text) // count)
    pieces: list[str] = []
    for _ in range(count - 1):  # the last piece takes the rest, a little over or not
        cut = text.rfind(" ", target // 2, target + 1)
        cut = cut if cut > 0 else target
        pieces.append(text[:cut])
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces


def _views(analysis: _Analysis, max_chars: int) -> list[str]:
    # Leetspeak undone, like every other disguise: the classifier should
    # learn what attacks say, not that "1337" looks odd.
    text = analysis.normalised.leet or analysis.normalised.text
    half = max_chars // 2
    parts = [text] if len(text) <= max_chars else [text[:half], text[-half:]]
    views = [piece for part in parts for piece in _chunks(part)]
    added = 0
    # Joined quoted fragments are for the patterns only: in code and prose
    # with quotes they join into noise, which the classifier scores badly.
    for candidate in (p.text for p in analysis.payloads if p.kind != "split"):
        piece = candidate[:CHUNK_CHARS].strip()
        if " " not in piece and len(piece) >= 40:
            continue  # an encoding still to decode, not words
        if added < MAX_PAYLOAD_VIEWS and len(piece) >= 6 and piece not in views:
            views.append(piece)
            added += 1
    return views


def classifier_views(text: str, *, max_chars: int = 4000) -> list[str]:
    """The texts the classifier embeds for ``text``: the normalised text (its
    first and last ``max_chars / 2`` characters when longer), cut into
    pieces MiniLM reads whole, then up to :data:`MAX_PAYLOAD_VIEWS` decoded
    payloads; the text's score is its most suspicious view's."""
    return _views(_analyse(text), max_chars)


# -- the scanner -----------------------------------------------------------------
class InjectionOptions(BaseModel):
    """Options of the ``injection`` scanner in ``llmline.yaml``."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="high severity from here")
    # Attacks hide at both ends of a long prompt (a request appended after a
    # pasted document, or a preamble before it), so the classifier reads the
    # first and the last max_chars/2 characters and skips the middle: that
    # bounds its cost at a few embeddings.  The heuristics read everything.
    max_chars: int = Field(default=4000, ge=200, le=200_000)
    heuristics_only: bool = Field(default=False, description="skip the MiniLM classifier")


class InjectionScanner:
    """Prompt injection and jailbreaks: category ``prompt_injection``.

    The score is the larger of the heuristic score and the classifier's.
    Each is built to be precise on its own (the heuristics only pass 0.5 on
    explicit attack phrasing; the classifier is trained with hard negatives),
    while they miss different attacks: paraphrases for the patterns,
    disguised or unusual wording for the embeddings.  Taking the maximum
    keeps each one's recall, and adds at most their false alarms; a fitted
    combination would need a labeled set larger than the one shipped.

    ``weights`` skips the cache (already fitted weights); ``data`` and
    ``cache_dir`` replace the shipped training set and the cache directory.
    Thread-safe: the weights load (or train) once, under a lock.
    """

    name = "injection"

    def __init__(
        self,
        options: InjectionOptions | None = None,
        *,
        embedder: Embedder | None = None,
        weights: InjectionWeights | None = None,
        data: Path | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.options = options or InjectionOptions()
        # MiniLMEmbedder loads its model on first use, so a heuristics-only
        # scanner never pays for it.
        self._embed: Embedder = embedder if embedder is not None else MiniLMEmbedder().embed
        self._weights = weights
        self._data = data
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        # Without the classifier it is a few regex passes (about 1 ms for
        # 2 KB): cheap enough to run inline on the event loop.
        self.inline_chars = 4000 if self.options.heuristics_only else -1

    def weights(self) -> InjectionWeights:
        """The classifier's weights: given, cached, or trained now (once)."""
        with self._lock:
            if self._weights is None:
                from llmline.guard import train

                self._weights = train.ensure_weights(
                    self._embed, data=self._data, cache_dir=self._cache_dir
                )
            return self._weights

    def warm_up(self) -> None:
        """Load (or train) the weights and the embedder now."""
        if not self.options.heuristics_only:
            self.weights()
            self._embed(["warm up"])

    def classify(self, text: str) -> float:
        """The classifier's probability that ``text`` is an attack."""
        return self._classify(_analyse(text))

    def _classify(self, analysis: _Analysis) -> float:
        views = _views(analysis, self.options.max_chars)
        if not views:
            return 0.0
        weights = self.weights()
        vectors = np.asarray(self._embed(views), dtype=np.float32)
        return float(np.max(weights.probabilities(vectors)))

    def scan(self, text: str, context: ScanContext) -> ScanResult:
        analysis = _analyse(text)
        heuristic = _noisy_or(list(analysis.signals.values()))
        notes = [
            f"heuristic:{name}"
            for name in sorted(analysis.signals)
            if not name.startswith("obfuscation_")  # noted below, as obfuscation:<kind>
        ]
        notes.extend(analysis.notes)
        score = heuristic
        if not self.options.heuristics_only:
            probability = self._classify(analysis)
            notes.append(f"classifier:{probability:.2f}")
            score = max(score, probability)
        score = round(min(1.0, max(0.0, score)), 4)
        level: Severity = "high" if score >= self.options.threshold else "negligible"
        return ScanResult(scores={CATEGORY: score}, severity={CATEGORY: level}, notes=tuple(notes))


def create(options: Mapping[str, Any], *, embedder: Embedder | None) -> InjectionScanner:
    """The ``injection`` entry point."""
    try:
        parsed = InjectionOptions.model_validate(dict(options))
    except ValidationError as exc:
        raise ConfigError(
            f"invalid options for guard scanner injection: {problems(exc, 'options')}"
        ) from None
    return InjectionScanner(parsed, embedder=embedder)

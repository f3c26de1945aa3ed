"""Personal data in prompts and outputs: e-mail addresses, phone numbers,
payment cards, IBANs, IP addresses and national identity numbers.

Every type is a precompiled pattern whose quantifiers are bounded and whose
start is anchored at a token boundary, so a scan is linear in the text; a
checksum or registry check (Luhn, ISO 13616 mod-97, Verhoeff, the Spanish
DNI letter) then removes look-alikes such as order numbers.  Phone numbers
are found by a cheap candidate pattern and confirmed by ``phonenumbers``
(``PhoneNumberMatcher``, for each configured region in turn), which knows
each country's numbering plan.

Where findings overlap the more specific type wins: a card number is not
also reported as a phone number.  A :class:`PiiMatch` holds the type and the
offsets only, so logging one never leaks the value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, get_args

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmline.gateway.safety import ScanContext, ScanResult, Severity
from llmline.guard.scanners._text import count_notes, non_overlapping, parse_options, redact

if TYPE_CHECKING:
    from llmline.guard.scanners import Embedder

__all__ = [
    "CATEGORY",
    "DEFAULT_REGIONS",
    "PII_TYPES",
    "PiiMatch",
    "PiiOptions",
    "PiiScanner",
    "PiiType",
    "create",
    "iban_ok",
    "luhn_ok",
    "verhoeff_ok",
]

CATEGORY = "pii"
PiiType = Literal[
    "credit_card",
    "iban",
    "in_aadhaar",
    "us_ssn",
    "uk_nino",
    "es_dni",
    "email",
    "ipv6",
    "ipv4",
    "phone",
]
#: Every type, most specific first (the Literal's order): the order in
#: which overlaps are settled.
PII_TYPES: tuple[PiiType, ...] = get_args(PiiType)
_RANK: dict[str, int] = {kind: i for i, kind in enumerate(PII_TYPES)}
_HIGH = frozenset({"credit_card", "iban", "in_aadhaar", "us_ssn", "uk_nino", "es_dni"})
DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "ES", "IN")


@dataclass(frozen=True)
class PiiMatch:
    """One finding: its type and where it is (``text[start:end]``)."""

    type: str
    start: int
    end: int


# -- patterns ------------------------------------------------------------------
# Patterns are ASCII (``\d`` is 0-9) and open with a character, then look
# behind it (``\d(?<![\d\-]\d)`` rather than ``(?<![\d\-])\d``): the regex
# engine then skips ahead to the next possible first character instead of
# trying the lookbehind at every position, which makes a scan 2-4x faster.
_A = re.ASCII
_EMAIL = re.compile(
    r"[A-Za-z0-9](?<![\w.%+\-][A-Za-z0-9])[A-Za-z0-9._%+\-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w\-])",
    _A,
)
# A phone candidate: 7+ digits with the usual separators, not inside a longer
# token.  "/" is left out so that dates are not candidates.
_PHONE = re.compile(
    r"(?:\+(?<![\w+.\-]\+)\(?\d|\((?<![\w+.\-]\()\d|\d(?<![\w+.\-]\d))"
    r"[\d \-.()]{5,22}\d(?![\w\-]|\.\d)",
    _A,
)
# Not phone numbers, though made of the same characters: ZIP+4 codes,
# decimals ("2.718281828", one dot or a one-digit group) and dotted quads.
_NOT_PHONE = re.compile(
    r"\d{5}-\d{4}|[^.]*\.[^.]*|(?:.*\.)?\d(?:\..*)?|\d{1,3}(?:\.\d{1,3}){3}", _A
)
_CARD = re.compile(r"\d(?<![\d\-]\d)(?:[ \-]?\d){12,18}(?!\d)", _A)
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){10,30}", _A)
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?!\w|\.\d)", _A)
# Release numbers are written like addresses ("version 10.2.0.1").
_VERSION_BEFORE = re.compile(r"(?i)\b(?:version|ver\.?|release|build|v)\s*$")
_IPV6 = re.compile(
    r"(?<![\w:.])(?=[0-9A-Fa-f:.]{0,45}\d)[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]{2,41}(?![\w:])", _A
)
# Areas 000, 666 and 9xx are never issued (9 is excluded here, the rest in _ssns).
_SSN = re.compile(r"[0-8](?<![\w\-][0-8])\d{2}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d\-])", _A)
_NINO = re.compile(
    r"[A-CEGHJ-PR-TW-Z](?<![A-Za-z0-9][A-CEGHJ-PR-TW-Z])[A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])",
    _A,
)
_NINO_UNUSED = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})
# A DNI is eight digits and a letter; an NIE is X, Y or Z, seven digits, a letter.
_DNI = re.compile(
    r"(?:([XYZ])(?<![A-Za-z0-9\-][XYZ])-?(\d{7})|(\d)(?<![A-Za-z0-9\-]\d)(\d{7}))"
    r"[ \-]?([A-Z])(?![A-Za-z0-9])",
    _A,
)
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_AADHAAR = re.compile(r"[2-9](?<![\d\-][2-9])\d{3}([ \-]?)\d{4}\1\d{4}(?![\d\-])", _A)
# Twelve bare digits are too common (order and tracking numbers) to call an
# Aadhaar number without the word nearby; the 4-4-4 grouping is its own signal.
_AADHAAR_WORD = re.compile(r"(?i)\b(?:aadhaa?r|uidai|uid)\b")
_HAS_DIGIT = re.compile(r"[0-9]")
_NON_DIGIT = re.compile(r"[^0-9]")

# -- checksums -----------------------------------------------------------------
# ISO 13616 registry: IBAN length per country.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip

# Issuer prefixes (first digits, as ranges) and the lengths each network issues.
_CARD_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (300, 305, frozenset(range(14, 20))),  # Diners Club
    (36, 36, frozenset(range(14, 20))),
    (38, 39, frozenset(range(16, 20))),
    (6011, 6011, frozenset(range(16, 20))),  # Discover
    (644, 649, frozenset(range(16, 20))),
    (65, 65, frozenset(range(16, 20))),
    (3528, 3589, frozenset(range(16, 20))),  # JCB
    (62, 62, frozenset(range(16, 20))),  # UnionPay
    (50, 50, frozenset(range(13, 20))),  # Maestro
    (56, 58, frozenset(range(13, 20))),
    (60, 69, frozenset(range(13, 20))),
)

_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6), (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4), (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)  # fmt: skip
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2), (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)  # fmt: skip


def luhn_ok(digits: str) -> bool:
    """Whether a card number's Luhn (mod 10) check digit is right."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _issuer_ok(digits: str) -> bool:
    for low, high, lengths in _CARD_RANGES:
        width = len(str(low))
        if low <= int(digits[:width]) <= high and len(digits) in lengths:
            return True
    return False


def iban_ok(compact: str) -> bool:
    """Whether an IBAN (no spaces) has its country's length and mod-97 = 1."""
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def verhoeff_ok(digits: str) -> bool:
    """Whether a number's Verhoeff check digit (Aadhaar's) is right."""
    check = 0
    for i, ch in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[i % 8][int(ch)]]
    return check == 0


# -- finders: each yields (start, end) of the valid matches ---------------------
_Finder = Callable[[str], Iterator[tuple[int, int]]]


def _emails(text: str) -> Iterator[tuple[int, int]]:
    if "@" in text:
        for m in _EMAIL.finditer(text):
            yield m.span()


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for m in _CARD.finditer(text):
        raw = m.group()
        if " " in raw and "-" in raw:
            continue  # one card is written with one kind of separator
        digits = raw.replace(" ", "").replace("-", "")
        if _issuer_ok(digits) and luhn_ok(digits):
            yield m.span()


def _iban_end(text: str, start: int, stop: int, want: int) -> int | None:
    """Where the IBAN starting at ``start`` ends after ``want`` characters
    (spaces between groups not counted), or None when it is shorter."""
    taken = 0
    for i in range(start, stop):
        if text[i] != " ":
            taken += 1
            if taken == want:
                return i + 1
    return None


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    for m in _IBAN.finditer(text):
        want = _IBAN_LENGTHS.get(m.group()[:2])
        # The pattern may run on into the next word ("... 3000 BIC ..."):
        # cut at the country's length, where the IBAN must then end.
        end = None if want is None else _iban_end(text, m.start(), m.end(), want)
        if end is None or (end < len(text) and text[end].isalnum()):
            continue
        if iban_ok(text[m.start() : end].replace(" ", "")):
            yield m.start(), end


def _ipv4s(text: str) -> Iterator[tuple[int, int]]:
    for m in _IPV4.finditer(text):
        try:
            address = ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        # Loopback, "any" and reserved addresses (netmasks) identify nobody.
        if address.is_loopback or address.is_unspecified or address.is_reserved:
            continue
        if _VERSION_BEFORE.search(text, max(0, m.start() - 12), m.start()):
            continue
        yield m.span()


def _ipv6s(text: str) -> Iterator[tuple[int, int]]:
    if "::" not in text and text.count(":") < 7:
        return
    for m in _IPV6.finditer(text):
        raw = m.group().rstrip(".")
        # "1::2" is a Python slice before it is an address.
        if sum(ch not in ":." for ch in raw) < 5:
            continue
        try:
            address = ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        if address.is_loopback or address.is_unspecified:
            continue
        yield m.start(), m.start() + len(raw)


def _ssns(text: str) -> Iterator[tuple[int, int]]:
    for m in _SSN.finditer(text):
        if text[m.start() : m.start() + 3] not in ("000", "666"):
            yield m.span()


def _ninos(text: str) -> Iterator[tuple[int, int]]:
    for m in _NINO.finditer(text):
        if text[m.start() : m.start() + 2] not in _NINO_UNUSED:
            yield m.span()


def _dnis(text: str) -> Iterator[tuple[int, int]]:
    for m in _DNI.finditer(text):
        prefix, nie_digits, first, rest, letter = m.groups()
        # In an NIE, X, Y and Z stand for 0, 1 and 2.
        number = str("XYZ".index(prefix)) + nie_digits if prefix else first + rest
        if _DNI_LETTERS[int(number) % 23] == letter:
            yield m.span()


def _aadhaars(text: str) -> Iterator[tuple[int, int]]:
    for m in _AADHAAR.finditer(text):
        if not m.group(1) and not _AADHAAR_WORD.search(text, max(0, m.start() - 60), m.start()):
            continue
        if verhoeff_ok(_NON_DIGIT.sub("", m.group())):
            yield m.span()


_SEPARATOR_RUN = re.compile(r"[ \-.]{2,}")
_GROUPS = re.compile(r"\d+")
_MAX_DIGITS = 15  # E.164 allows no more


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def _pieces(candidate: str) -> list[tuple[int, str]]:
    """The candidate, and the candidate less its last or its first group
    (a year or a count written next to a number joins the candidate), each
    with its offset; pieces of more than 15 or fewer than 7 digits are left out."""
    groups = list(_GROUPS.finditer(candidate))
    pieces = [(0, candidate)]
    if len(groups) > 1:
        pieces.append((0, candidate[: groups[-1].start()].rstrip(" -.(")))
        pieces.append((groups[1].start(), candidate[groups[1].start() :]))
    return [(at, piece) for at, piece in pieces if 7 <= _digits(piece) <= _MAX_DIGITS]


def _valid_in(piece: str, region: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(piece, region)))
    except phonenumbers.NumberParseException:
        return False


@lru_cache(maxsize=4096)
def _phone_spans(candidate: str, regions: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Phone numbers inside one candidate, as offsets into it.

    ``phonenumbers.parse`` is a quick first filter (a quarter of the
    matcher's cost); the matcher, which applies the library's own checks
    against dates, times and odd groupings, has the last word.
    """
    pieces = _pieces(candidate)
    # Regions in their configured order come first: a piece valid in the
    # first region beats another piece valid only in a later one.
    for i, region in enumerate(regions or ("ZZ",)):
        for at, piece in pieces:
            if (piece.startswith("+") and i > 0) or not _valid_in(piece, region):
                continue  # an international number is the same in every region
            matcher = phonenumbers.PhoneNumberMatcher(
                piece, region, leniency=phonenumbers.Leniency.VALID
            )
            spans = tuple((at + match.start, at + match.end) for match in matcher)
            if spans:
                return spans
    return ()


def _phone_shaped(candidate: str) -> bool:
    """Whether digits and separators are grouped as people write phone
    numbers: one kind of separator between groups (spaces may join dashes
    or dots), at most one one-digit group (a country or trunk prefix), no
    long bare run of digits.
    Digit soup (tables, data) fails here, before the costly library."""
    if _SEPARATOR_RUN.search(candidate) or ("-" in candidate and "." in candidate):
        return False
    if _digits(candidate) < 7 or _NOT_PHONE.fullmatch(candidate):
        return False
    groups = _GROUPS.findall(candidate)
    if len(groups) == 1 and len(candidate) > 10 and candidate[0] not in "0+":
        # Eleven or more bare digits are an order or account number; a phone
        # number written without separators has at most ten, a trunk 0 or a +.
        return False
    return sum(len(group) == 1 for group in groups) <= 1


def _phones(text: str, regions: tuple[str, ...], limit: int) -> tuple[list[tuple[int, int]], bool]:
    """Phone spans, and whether candidates beyond ``limit`` went unchecked."""
    spans: list[tuple[int, int]] = []
    checked = 0
    for m in _PHONE.finditer(text):
        candidate = m.group()
        if not _phone_shaped(candidate):
            continue
        if checked == limit:
            return spans, True
        checked += 1
        spans.extend((m.start() + s, m.start() + e) for s, e in _phone_spans(candidate, regions))
    return spans, False


_FINDERS: dict[str, _Finder] = {
    "credit_card": _cards,
    "iban": _ibans,
    "in_aadhaar": _aadhaars,
    "us_ssn": _ssns,
    "uk_nino": _ninos,
    "es_dni": _dnis,
    "email": _emails,
    "ipv6": _ipv6s,
    "ipv4": _ipv4s,
}


# -- the scanner ---------------------------------------------------------------
class PiiOptions(BaseModel):
    """Options of the ``pii`` scanner in ``llmline.yaml``."""

    model_config = ConfigDict(extra="forbid")

    types: list[PiiType] = Field(
        default_factory=lambda: list(PII_TYPES), description="the types to look for"
    )
    regions: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REGIONS),
        description="regions whose national phone formats are recognised (+… numbers always)",
    )

    # Each candidate costs the phonenumbers library some 20-100 us; past this
    # many in one text (a data dump) the rest go unchecked, and a note says so.
    max_phone_candidates: int = Field(default=1000, ge=0)

    @field_validator("regions")
    @classmethod
    def _known_regions(cls, regions: list[str]) -> list[str]:
        upper = [region.upper() for region in regions]
        unknown = sorted(set(upper) - phonenumbers.SUPPORTED_REGIONS)
        if unknown:
            raise ValueError(f"unknown phone region(s): {', '.join(unknown)}")
        return upper


class PiiScanner:
    """Personal data: category ``pii``, score 1.0 when any enabled type is
    found; ``high`` severity for payment and national identity numbers,
    ``medium`` for contact details and addresses."""

    name = "pii"
    # A dozen linear regex passes: cheap enough to run on the event loop.
    inline_chars = 20_000

    def __init__(self, options: PiiOptions | None = None) -> None:
        self.options = options or PiiOptions()
        self._types = frozenset(self.options.types)
        self._regions = tuple(self.options.regions)

    def warm_up(self) -> None:
        """Load the phone metadata of the configured regions now."""
        for region in self._regions:
            phonenumbers.example_number(region)

    def find(self, text: str) -> list[PiiMatch]:
        """The enabled types' findings in text order, overlaps settled."""
        return self._find(text)[0]

    def _find(self, text: str) -> tuple[list[PiiMatch], bool]:
        found: list[PiiMatch] = []
        capped = False
        if "@" not in text and not _HAS_DIGIT.search(text):
            return found, capped  # every type but e-mail needs a digit
        for kind, finder in _FINDERS.items():
            if kind in self._types:
                found.extend(PiiMatch(kind, start, end) for start, end in finder(text))
        if "phone" in self._types:
            limit = self.options.max_phone_candidates
            spans, capped = _phones(text, self._regions, limit)
            found.extend(PiiMatch("phone", start, end) for start, end in spans)
        return non_overlapping(found, lambda m: _RANK[m.type]), capped

    def scan(self, text: str, context: ScanContext) -> ScanResult:
        matches, capped = self._find(text)
        notes = ("phone:candidates_capped",) if capped else ()
        if not matches:
            return ScanResult(scores={CATEGORY: 0.0}, notes=notes)
        level: Severity = "high" if any(m.type in _HIGH for m in matches) else "medium"
        redacted = redact(text, [(m.start, m.end, f"[REDACTED:{m.type.upper()}]") for m in matches])
        # One category per type as well ("pii:credit_card"), so a policy can
        # block card numbers while it only redacts e-mail addresses.
        kinds = {f"{CATEGORY}:{m.type}": _level(m.type) for m in matches}
        return ScanResult(
            scores={CATEGORY: 1.0, **dict.fromkeys(kinds, 1.0)},
            severity={CATEGORY: level, **kinds},
            redacted_text=redacted,
            notes=count_notes(m.type for m in matches) + notes,
        )


def _level(kind: str) -> Severity:
    return "high" if kind in _HIGH else "medium"


def create(options: Mapping[str, Any], *, embedder: Embedder | None = None) -> PiiScanner:
    """The ``pii`` entry point (``embedder`` is not used)."""
    return PiiScanner(parse_options(PiiOptions, options, "pii"))

"""PII and secret scrubbing, vectorised over Arrow arrays, with per-type counts.

Each finding is replaced by a typed placeholder such as ``[EMAIL]``.  Card
numbers are only replaced when they pass the Luhn check, so order numbers
and long integers in code survive.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["PII_TYPES", "PiiPattern", "luhn_valid", "scrub_array", "scrub_text"]


@dataclass(frozen=True)
class PiiPattern:
    name: str
    regex: str  # RE2 syntax (Arrow) and Python re compatible

    @property
    def placeholder(self) -> str:
        return f"[{self.name.upper()}]"


# Order matters: secrets and cards before phone numbers, which would
# otherwise claim their digit runs.
PII_TYPES: tuple[PiiPattern, ...] = (
    PiiPattern(
        "secret",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
        r"|\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
        r"|\bsk-[A-Za-z0-9_-]{20,}"
        r"|\bAKIA[0-9A-Z]{16}\b"
        r"|\bgh[pousr]_[A-Za-z0-9]{36}\b"
        r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
        r"|\bAIza[0-9A-Za-z_-]{35}\b",
    ),
    PiiPattern("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    PiiPattern("credit_card", r"\b\d(?:[ -]?\d){12,18}\b"),
    PiiPattern(
        "ip_address",
        r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
        r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b",
    ),
    PiiPattern(
        "phone",
        r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\b\d{3,4}[ .-])\d{3,4}[ .-]\d{3,4}\b",
    ),
)
_CARD = next(p for p in PII_TYPES if p.name == "credit_card")
_CARD_RE = re.compile(_CARD.regex)
_ANY_PII = "|".join(f"(?:{p.regex})" for p in PII_TYPES)


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if i % 2 == 1 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def _scrub_cards(text: str, counts: Counter[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if luhn_valid(match.group()):
            counts["credit_card"] += 1
            return _CARD.placeholder
        return match.group()

    return _CARD_RE.sub(replace, text)


def scrub_text(text: str) -> tuple[str, Counter[str]]:
    """Scrub one string; return it and the number of findings per type."""
    counts: Counter[str] = Counter()
    for pattern in PII_TYPES:
        if pattern is _CARD:
            text = _scrub_cards(text, counts)
            continue
        text, n = re.subn(pattern.regex, pattern.placeholder, text)
        if n:
            counts[pattern.name] += n
    return text, counts


def scrub_array(array: pa.Array) -> tuple[pa.Array, Counter[str]]:
    """Scrub every string of ``array``; return the new array and counts."""
    counts: Counter[str] = Counter()
    # Findings are rare.  One DFA scan for any pattern picks the rows that
    # have one; a row that no pattern matches is left as it is by every step
    # below, so only the picked rows go through them.
    rows = pc.fill_null(pc.match_substring_regex(array, _ANY_PII), False)
    if not pc.any(rows).as_py():
        return array, counts
    subset = pc.filter(array, rows)
    for pattern in PII_TYPES:
        if pattern is _CARD:
            subset = _scrub_card_rows(subset, counts)
            continue
        found = pc.sum(pc.count_substring_regex(subset, pattern.regex)).as_py() or 0
        if found:
            counts[pattern.name] += found
            subset = pc.replace_substring_regex(
                subset, pattern=pattern.regex, replacement=pattern.placeholder
            )
    return pc.replace_with_mask(array, rows, subset), counts


def _scrub_card_rows(array: pa.Array, counts: Counter[str]) -> pa.Array:
    # Luhn is not a regex: find candidate rows in Arrow, validate them in Python.
    rows = pc.fill_null(pc.match_substring_regex(array, _CARD.regex), False)
    if not pc.any(rows).as_py():
        return array
    scrubbed = [_scrub_cards(value, counts) for value in pc.filter(array, rows).to_pylist()]
    return pc.replace_with_mask(array, rows, pa.array(scrubbed, type=array.type))

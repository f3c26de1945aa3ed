"""Vectorised text clean-up over Arrow string arrays.

Stack Overflow bodies (and the FAQ importer's output) are HTML.  The
rewrites below run as RE2 kernels inside Arrow, a whole record batch at a
time, which is what lets ``data build`` stream millions of rows quickly.
Code indentation is kept: it carries meaning in Python answers.
"""

from __future__ import annotations

import html

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["html_to_text", "length_mask", "normalize_whitespace"]

# (pattern, replacement), applied in order, in groups.  The rules of a group
# marked "rare" seldom match: they run only on the rows where one of them
# matches (one DFA scan for the whole group).  That changes nothing: a row
# that no rule of the group matches is left as it is by every rule of it.
_Rules = tuple[tuple[str, str], ...]
_HTML_RULES: tuple[tuple[_Rules, bool], ...] = (
    (
        (
            (r"(?is)<(script|style)[^>]*>.*?</(script|style)>", ""),
            (r"(?i)<br\s*/?>", "\n"),
            (r"(?i)<li[^>]*>", "\n- "),
        ),
        True,
    ),
    (
        (
            (
                r"(?i)</?(p|div|pre|blockquote|h[1-6]|ul|ol|table|tr|dl|dt|dd|hr)(\s[^>]*)?/?>",
                "\n\n",
            ),
            (r"<[^>]+>", ""),
        ),
        False,
    ),
)
_MARKDOWN_RULES: tuple[tuple[_Rules, bool], ...] = (
    (
        (
            (r"!?\[([^\]\n]+)\]\((https?://[^)\s]+)\)", r"\1 (\2)"),
            (r"\*\*([^*\n]+)\*\*", r"\1"),
            (r"(?m)^#{1,6}[ \t]+", ""),
        ),
        True,
    ),
)
_WHITESPACE_RULES: tuple[tuple[_Rules, bool], ...] = (
    (
        (
            (r"\r\n?", "\n"),
            (r"[ \t\f\v\x{a0}]+\n", "\n"),
            (r"([^\s])[ \t\x{a0}]{2,}", r"\1 "),
        ),
        True,
    ),
    # Spelled \n\n\n+ rather than \n{3,} (the same language): RE2 then
    # finds candidates with memchr.
    (((r"\n\n\n+", "\n\n"),), False),
)
_ENTITIES: tuple[tuple[str, str], ...] = (
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&quot;", '"'),
    ("&#39;", "'"),
    ("&#x27;", "'"),
    ("&nbsp;", " "),
    ("&amp;", "&"),  # last, so "&amp;lt;" stays "&lt;"
)
_OTHER_ENTITY = r"&(#[0-9]+|#x[0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]{1,31});"


def _any_of(patterns: list[str]) -> str:
    return "|".join(f"(?:{p})" for p in patterns)


def _matching_rows(array: pa.Array, pattern: str) -> pa.Array | None:
    """Mask of the rows where ``pattern`` matches, or None if there is none."""
    rows = pc.fill_null(pc.match_substring_regex(array, pattern), False)
    return rows if pc.any(rows).as_py() else None


def _apply(array: pa.Array, groups: tuple[tuple[_Rules, bool], ...]) -> pa.Array:
    for rules, rare in groups:
        if rare:
            rows = _matching_rows(array, _any_of([p for p, _ in rules]))
            if rows is None:
                continue
            subset = _apply(pc.filter(array, rows), ((rules, False),))
            array = pc.replace_with_mask(array, rows, subset)
            continue
        for pattern, replacement in rules:
            array = pc.replace_substring_regex(array, pattern=pattern, replacement=replacement)
    return array


def _unescape(array: pa.Array) -> pa.Array:
    for entity, char in _ENTITIES:
        array = pc.replace_substring(array, pattern=entity, replacement=char)
    # Rare named/numeric entities: fall back to the stdlib for just those rows.
    rows = _matching_rows(array, _OTHER_ENTITY)
    if rows is not None:
        unescaped = [html.unescape(v) for v in pc.filter(array, rows).to_pylist()]
        array = pc.replace_with_mask(array, rows, pa.array(unescaped, type=array.type))
    return array


def html_to_text(array: pa.Array) -> pa.Array:
    """HTML (with light markdown) to plain text, paragraph breaks kept."""
    array = _apply(array, _HTML_RULES)
    array = _apply(array, _MARKDOWN_RULES)
    # Every entity has an "&": only rows with one are unescaped (a regex
    # scan for a literal byte is far cheaper than seven substring passes).
    rows = _matching_rows(array, "&")
    if rows is not None:
        array = pc.replace_with_mask(array, rows, _unescape(pc.filter(array, rows)))
    return normalize_whitespace(array)


def normalize_whitespace(array: pa.Array) -> pa.Array:
    """NFC, no trailing spaces, at most one blank line, inner runs of blanks
    collapsed (leading indentation is kept), trimmed."""
    array = pc.utf8_normalize(array, form="NFC")
    array = _apply(array, _WHITESPACE_RULES)
    return pc.utf8_trim_whitespace(array)


def length_mask(array: pa.Array, min_chars: int, max_chars: int) -> pa.Array:
    """True where the text length lies within ``[min_chars, max_chars]``."""
    lengths = pc.utf8_length(array)
    return pc.fill_null(
        pc.and_(pc.greater_equal(lengths, min_chars), pc.less_equal(lengths, max_chars)), False
    )

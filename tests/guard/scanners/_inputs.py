"""Large adversarial inputs shared by the scanner tests: each scanner must
return on them (the tests assert no timing, only that a result comes back)."""

from __future__ import annotations

import random
from functools import lru_cache

__all__ = ["MEGABYTE", "random_text", "zero_width_text"]

MEGABYTE = 1_000_000

# Letters, digits, punctuation (quotes, dashes, pipes, @), whitespace, and
# the characters the scanners look for: Cyrillic look-alikes, zero-width and
# bidi controls, variation selectors, emoji.
_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" + " " * 12 + "\n\t" + "аеорсПривет" + "\u200b\u200d\u202e"
    "\ufe0f\U000e0041😀"
)


@lru_cache(maxsize=1)
def random_text() -> str:
    """A megabyte of random characters (the same on every run)."""
    return "".join(random.Random(20240501).choices(_ALPHABET, k=MEGABYTE))


def zero_width_text() -> str:
    """A megabyte of zero-width spaces."""
    return "\u200b" * MEGABYTE

"""Over-long texts: a prompt or output longer than ``max_chars``.

A long prompt costs tokens and latency and is where injected instructions
hide most easily; a policy can block it or, with ``redacted_text``, pass
it on cut down to ``max_chars``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from llmline.gateway.safety import ScanContext, ScanResult
from llmline.guard.scanners._text import parse_options

if TYPE_CHECKING:
    from llmline.guard.scanners import Embedder

__all__ = ["CATEGORY", "LengthOptions", "LengthScanner", "create"]

CATEGORY = "too_long"


class LengthOptions(BaseModel):
    """Options of the ``length`` scanner in ``llmline.yaml``."""

    model_config = ConfigDict(extra="forbid")

    max_chars: int = Field(default=32_000, ge=1, description="longest text that passes")


class LengthScanner:
    """Texts longer than ``max_chars``: category ``too_long``, score 1.0,
    severity ``low``; ``redacted_text`` is the text truncated."""

    name = "length"
    # A length comparison: any text is cheap enough to check inline.
    inline_chars = 2**62

    def __init__(self, options: LengthOptions | None = None) -> None:
        self.options = options or LengthOptions()

    def scan(self, text: str, context: ScanContext) -> ScanResult:
        limit = self.options.max_chars
        if len(text) <= limit:
            return ScanResult(scores={CATEGORY: 0.0})
        return ScanResult(
            scores={CATEGORY: 1.0},
            severity={CATEGORY: "low"},
            redacted_text=text[:limit],
            notes=(f"length:{len(text)}>{limit}",),
        )


def create(options: Mapping[str, Any], *, embedder: Embedder | None = None) -> LengthScanner:
    """The ``length`` entry point (``embedder`` is not used)."""
    return LengthScanner(parse_options(LengthOptions, options, "length"))

"""Prompt template text: ``{variable}`` placeholders, ``{{``/``}}`` for braces."""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from llmline.errors import TemplateError

__all__ = ["Template"]


@dataclass(frozen=True)
class Template:
    """Parsed template text; construction validates it."""

    text: str
    pieces: tuple[tuple[str, str | None], ...]  # (literal, variable-or-None)

    @classmethod
    def parse(cls, text: str) -> Template:
        if not text.strip():
            raise TemplateError("template text is empty")
        pieces: list[tuple[str, str | None]] = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise TemplateError(
                f"invalid template: {exc} (write {{{{ and }}}} for literal braces)"
            ) from None
        for literal, field, spec, conversion in parsed:
            if field is not None:
                if not field.isidentifier():
                    raise TemplateError(
                        f"invalid template variable {{{field}}}: use a plain name like {{question}}"
                    )
                if spec or conversion:
                    raise TemplateError(f"template variable {{{field}}} cannot have a format spec")
            pieces.append((literal, field))
        if not any(field for _, field in pieces):
            raise TemplateError(
                "template has no {variable}; it would give every row the same input"
            )
        return cls(text, tuple(pieces))

    @property
    def variables(self) -> list[str]:
        """Variable names in order of first use."""
        return list(dict.fromkeys(field for _, field in self.pieces if field))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def render(self, values: Mapping[str, object]) -> str:
        self.check_variables(values.keys())
        return "".join(lit + (str(values[f]) if f else "") for lit, f in self.pieces)

    def render_arrays(self, columns: Mapping[str, pa.Array]) -> pa.Array:
        """Render every row of ``columns`` at once (Arrow string kernels)."""
        self.check_variables(columns.keys())
        parts: list[pa.Array | str] = []
        for literal, field in self.pieces:
            if literal:
                parts.append(literal)
            if field:
                parts.append(columns[field])
        return pc.binary_join_element_wise(*parts, "")

    def check_variables(self, available: object) -> None:
        names = set(available)  # type: ignore[call-overload]
        missing = [v for v in self.variables if v not in names]
        if missing:
            raise TemplateError(f"no value for template variable(s) {', '.join(missing)}")

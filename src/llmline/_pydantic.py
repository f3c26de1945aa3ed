"""Pydantic validation errors as the one line a user error prints."""

from __future__ import annotations

from pydantic import ValidationError


def problems(exc: ValidationError, whole: str) -> str:
    """``field: message; other: message`` (``whole`` names a top-level error)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or whole}: {err['msg']}" for err in exc.errors()
    )

"""Operations: the request log (and, later, metrics, traces, drift, cost)."""

from __future__ import annotations

__all__: list[str] = []

"""Guardrail scanners, found through the ``llmline.scanners`` entry-point
group (a plugin adds one with its own entry point, as providers do).

Every scanner implements :class:`llmline.gateway.safety.Scanner`
(``name`` and ``scan(text, context) -> ScanResult``); a factory builds one
from its options in ``llmline.yaml`` and, for scanners that embed text,
the shared MiniLM embedder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from llmline.errors import ConfigError
from llmline.gateway.safety import Scanner

__all__ = [
    "ENTRY_POINT_GROUP",
    "Embedder",
    "ScannerFactory",
    "create_scanner",
    "scanner_names",
]

ENTRY_POINT_GROUP = "llmline.scanners"

#: Texts in, one L2-normalised float32 row per text out (the shipped MiniLM).
Embedder = Callable[[Sequence[str]], npt.NDArray[np.float32]]


class ScannerFactory(Protocol):
    def __call__(self, options: Mapping[str, Any], *, embedder: Embedder | None) -> Scanner: ...


def scanner_names() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def create_scanner(
    name: str, options: Mapping[str, Any] | None = None, *, embedder: Embedder | None = None
) -> Scanner:
    """The scanner registered as ``name``, built from ``options``; an unknown
    name or bad options raise :class:`ConfigError`."""
    # Only the named plugin is imported: a broken one does not take the others down.
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        known = ", ".join(scanner_names()) or "none"
        raise ConfigError(f"unknown guard scanner {name!r} (installed: {known})")
    factory: ScannerFactory = found[0].load()
    return factory(dict(options or {}), embedder=embedder)

"""``llmline loadtest``: a bounded load test of a deployment over real HTTP."""

from __future__ import annotations

__all__ = ["loadtest"]


def loadtest() -> None:
    """Load test a deployment (being written)."""
    raise NotImplementedError

"""Fixtures for the data stage: small synthetic workspaces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmline.testing.workspace import synthetic_workspace
from llmline.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace with 300 synthetic Stack Overflow questions."""
    ws = synthetic_workspace(tmp_path / "ws", 300)
    yield ws
    ws.close()

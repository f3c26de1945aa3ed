"""Ready-made workspaces for tests: users' own test suites can use them too."""

from __future__ import annotations

from pathlib import Path

from llmline.testing.synthetic import generate_stackoverflow
from llmline.workspace import Workspace, init_workspace

__all__ = ["synthetic_workspace"]


def synthetic_workspace(root: Path, questions: int = 300, *, seed: int = 0) -> Workspace:
    """A new workspace whose warehouse holds ``questions`` synthetic posts."""
    workspace = init_workspace(root, load_sample_data=False)
    generate_stackoverflow(
        workspace.settings.warehouse_url.removeprefix("duckdb:///"), questions, seed=seed
    )
    return workspace

"""The data stage: warehouse SQL → versioned instruction-tuning datasets.

The functions here are the Python API behind ``llmline data ...``; each takes
an optional :class:`~llmline.workspace.Workspace` (default: found from the
current directory, as the CLI does).
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from llmline.data.spec import DEFAULT_SQL, CleaningSpec, DatasetSpec, FilterSpec, SplitSpec

if TYPE_CHECKING:
    from llmline.data.builder import BuildReport, BuildResult, ProgressCallback
    from llmline.data.catalog import DatasetVersionInfo
    from llmline.workspace import Workspace

__all__ = [
    "DEFAULT_SQL",
    "BuildReport",
    "BuildResult",
    "CleaningSpec",
    "DatasetSpec",
    "DatasetVersionInfo",
    "FilterSpec",
    "SplitSpec",
    "build",
    "list",
    "show",
    "verify",
]

# Settings import the specs above, and the builder imports the workspace and
# so the settings: the heavier names load on first use to keep that acyclic.
_LAZY = {
    "BuildReport": "llmline.data.builder",
    "BuildResult": "llmline.data.builder",
    "DatasetVersionInfo": "llmline.data.catalog",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmline.data' has no attribute {name!r}")


def _workspace(workspace: Workspace | None) -> Workspace:
    from llmline.workspace import find_workspace

    return workspace or find_workspace()


def build(
    name: str,
    spec: DatasetSpec | None = None,
    *,
    workspace: Workspace | None = None,
    on_progress: ProgressCallback | None = None,
) -> BuildResult:
    """Build dataset ``name`` (spec from ``llmline.yaml`` unless given)."""
    from llmline.data.builder import build_dataset

    return build_dataset(_workspace(workspace), name, spec, on_progress=on_progress)


def list(
    name: str | None = None, *, workspace: Workspace | None = None
) -> builtins.list[DatasetVersionInfo]:
    """Every dataset version (of ``name``, or of all datasets), oldest first."""
    from llmline.data.catalog import list_versions

    return list_versions(_workspace(workspace), name)


def show(ref: str, *, workspace: Workspace | None = None) -> DatasetVersionInfo:
    """One version: ``NAME``, ``NAME@latest`` or ``NAME@VERSION``."""
    from llmline.data.catalog import get_version

    return get_version(_workspace(workspace), ref)


def verify(ref: str, *, workspace: Workspace | None = None) -> dict[str, str]:
    """Re-hash a version's files; raise IntegrityError naming a changed file."""
    from llmline.data.catalog import get_version, verify_version

    ws = _workspace(workspace)
    return verify_version(ws, get_version(ws, ref))

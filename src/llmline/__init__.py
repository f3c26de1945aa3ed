"""llmline: from warehouse rows to a tuned, evaluated, served and monitored LLM."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from llmline.errors import LLMLineError, UserError
from llmline.settings import Settings
from llmline.workspace import Workspace, find_workspace, init_workspace

try:
    __version__ = version("llmline")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "LLMLineError",
    "Settings",
    "UserError",
    "Workspace",
    "__version__",
    "find_workspace",
    "init_workspace",
]

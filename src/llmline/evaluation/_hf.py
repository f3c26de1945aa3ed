"""Helpers around the optional ``tune`` libraries (transformers and friends)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llmline.errors import UserError

__all__ = ["quiet_loading", "require"]


def require(module: str) -> Any:
    """Import a ``tune``-extra module, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise UserError(
            f"evaluation needs {exc.name}, part of the tune extra: pip install 'llmline[tune]'"
        ) from None


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide transformers' "Loading weights" progress bars (noise in CLI output)."""
    hf_logging = require("transformers.utils.logging")
    were_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if were_enabled:
            hf_logging.enable_progress_bar()

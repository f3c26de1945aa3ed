"""Errors of the model registry, importer and loader.

Like every llmline user error they print as one line in the CLI (exit 1)
and also subclass the builtin that fits, for callers of the Python API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmline.errors import UserError

if TYPE_CHECKING:
    from llmline.models.gates import GateFailure

__all__ = ["DeviceUnavailableError", "GateFailedError", "ModelError", "ModelImportError"]


class ModelError(UserError, ValueError):
    """A model reference, alias, kind or promotion request is invalid."""


class ModelImportError(ModelError):
    """A model source cannot be imported; the message names the file."""


class DeviceUnavailableError(UserError, RuntimeError):
    """The device asked for explicitly (e.g. ``cuda``) is not available."""


class GateFailedError(ModelError):
    """A promotion gate failed; ``failures`` holds each failing gate."""

    def __init__(self, ref: str, failures: list[GateFailure]) -> None:
        self.ref = ref
        self.failures = failures
        detail = "; ".join(str(f) for f in failures)
        super().__init__(
            f"cannot promote {ref}: gate failed: {detail} (override with --force --reason TEXT)"
        )

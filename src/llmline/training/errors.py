"""Exceptions raised by the training stage.

They live here rather than in :mod:`llmline.errors` because only the tuning
extra uses them; each is a :class:`~llmline.errors.UserError` and subclasses
the builtin that describes it best, like every llmline error.
"""

from __future__ import annotations

from llmline.errors import DatasetError, UserError

__all__ = [
    "CheckpointError",
    "DeviceUnavailableError",
    "TrainingDataError",
    "TrainingDivergedError",
    "TrainingInputMissingError",
]


class TrainingDataError(DatasetError):
    """A training dataset cannot be used: bad JSONL, an empty split, no answer tokens."""


class TrainingInputMissingError(UserError, FileNotFoundError):
    """A dataset split, model folder or checkpoint file the run needs is missing."""


class TrainingDivergedError(UserError, ArithmeticError):
    """The loss or the gradients became NaN or infinite."""

    def __init__(self, message: str, *, step: int, last_checkpoint: str | None) -> None:
        self.step = step
        self.last_checkpoint = last_checkpoint
        super().__init__(message)


class DeviceUnavailableError(UserError, RuntimeError):
    """The configured device (``cuda``) is not available on this machine."""


class CheckpointError(UserError, OSError):
    """A checkpoint or the final adapter could not be written or read back."""

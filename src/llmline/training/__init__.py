"""Tuning a base model on a dataset version.

``LoraTuneConfig`` and the errors import without the ``tune`` extra, so a
config can be validated anywhere; ``train_lora`` and its result types load
torch, transformers and PEFT on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmline.training.errors import (
    CheckpointError,
    DeviceUnavailableError,
    TrainingDataError,
    TrainingDivergedError,
    TrainingInputMissingError,
)
from llmline.training.lora.config import LoraTuneConfig

if TYPE_CHECKING:
    from llmline.training.lora.report import ProgressEvent, TrainResult
    from llmline.training.lora.trainer import train_lora

__all__ = [
    "CheckpointError",
    "DeviceUnavailableError",
    "LoraTuneConfig",
    "ProgressEvent",
    "TrainResult",
    "TrainingDataError",
    "TrainingDivergedError",
    "TrainingInputMissingError",
    "train_lora",
]

_LAZY = {
    "ProgressEvent": "llmline.training.lora.report",
    "TrainResult": "llmline.training.lora.report",
    "train_lora": "llmline.training.lora.trainer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

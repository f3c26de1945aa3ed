"""Models: built-in and imported base models, the model registry with
gated promotion, and loading a version for inference or training.

Importing this package is cheap: torch and transformers load only when a
model is imported or loaded.
"""

from llmline.models.builtin import BUILTIN_MODELS
from llmline.models.errors import (
    DeviceUnavailableError,
    GateFailedError,
    ModelError,
    ModelImportError,
)
from llmline.models.gates import Gate, GateFailure, check_gates
from llmline.models.importer import import_model
from llmline.models.info import (
    CHAMPION,
    ModelEventInfo,
    ModelRef,
    ModelVersionInfo,
    Promotion,
    folder_publisher,
)
from llmline.models.loader import LoadedModel, load_model, verify_files
from llmline.models.registry import ModelRegistry

__all__ = [
    "BUILTIN_MODELS",
    "CHAMPION",
    "DeviceUnavailableError",
    "Gate",
    "GateFailedError",
    "GateFailure",
    "LoadedModel",
    "ModelError",
    "ModelEventInfo",
    "ModelImportError",
    "ModelRef",
    "ModelRegistry",
    "ModelVersionInfo",
    "Promotion",
    "check_gates",
    "folder_publisher",
    "import_model",
    "load_model",
    "verify_files",
]

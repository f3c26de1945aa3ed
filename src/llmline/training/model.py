"""Loading a base model for tuning: a transformers folder or a GGUF file.

Paths are checked before transformers sees them: a path that does not
exist would otherwise be taken for a model id on the Hugging Face Hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from llmline.training.errors import DeviceUnavailableError, TrainingInputMissingError

__all__ = ["ModelSource", "load_base_model", "resolve_device", "resolve_model_source"]


@dataclass(frozen=True)
class ModelSource:
    """Where transformers finds a model: a folder, and a GGUF file inside it if any."""

    folder: Path
    gguf_file: str | None = None

    def kwargs(self) -> dict[str, Any]:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without CUDA is an error."""
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "cuda":
        raise DeviceUnavailableError(
            "device 'cuda' was requested but CUDA is not available here "
            f"(torch {torch.__version__}); use device 'auto' or 'cpu'"
        )
    return torch.device("cpu")


def resolve_model_source(path: Path) -> ModelSource:
    """A transformers folder (``config.json``), a ``.gguf`` file, or a folder with one."""
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(path.parent, path.name)
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource(path)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(path, ggufs[0].name)
    raise TrainingInputMissingError(
        f"no model at {path}: expected a transformers folder with config.json, "
        "a .gguf file, or a folder holding exactly one .gguf file"
    )


def load_base_model(
    path: Path, device: torch.device
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model in float32 on ``device`` (GGUF weights are de-quantized) and its tokenizer."""
    source = resolve_model_source(path)
    tokenizer = AutoTokenizer.from_pretrained(str(source.folder), **source.kwargs())
    # float32 master weights: LoRA updates are small and bf16 would round them
    # away; CUDA runs use autocast for speed instead.
    model = AutoModelForCausalLM.from_pretrained(
        str(source.folder), dtype=torch.float32, **source.kwargs()
    )
    model.to(device)  # type: ignore[arg-type]
    return model, tokenizer

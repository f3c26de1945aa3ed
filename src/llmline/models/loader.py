"""Load a registered model version for inference or training.

Base versions are safetensors folders (seconds to load, no GGUF parsing);
tuned ``peft-lora`` versions load their base first, then the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmline.errors import IntegrityError
from llmline.models import _hf
from llmline.models.errors import ModelError
from llmline.models.info import ModelVersionInfo
from llmline.models.registry import ModelRegistry
from llmline.storage.artifacts import sha256_file

if TYPE_CHECKING:
    import torch

    from llmline.workspace import Workspace

__all__ = ["LoadedModel", "load_model", "local_path", "verify_files"]

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass
class LoadedModel:
    """A model ready to run: ``model(**tokenizer(text, return_tensors="pt"))``."""

    model: Any  # a transformers PreTrainedModel, or a peft PeftModel for adapters
    tokenizer: Any
    info: ModelVersionInfo
    device: str
    base: ModelVersionInfo | None = None  # a tuned version's base


def load_model(
    workspace: Workspace,
    ref: str,
    *,
    device: str = "auto",
    dtype: str | torch.dtype | None = None,
    verify: bool = False,
) -> LoadedModel:
    """Load the version ``ref`` names (``name``, ``name@3``, ``name@champion``).

    ``device="auto"`` uses CUDA when available; asking for ``cuda`` without
    it is an error.  ``dtype=None`` keeps the stored dtype.  ``verify``
    re-hashes every file against the registry first.
    """
    registry = ModelRegistry(workspace.metadata)
    info = registry.get(ref)
    target = _hf.resolve_device(device)
    torch_dtype = _hf.resolve_dtype(dtype)
    if info.format == "hf-safetensors":
        model, tokenizer = _load_hf(workspace, info, torch_dtype, verify=verify)
        base = None
    elif info.format == "peft-lora":
        if info.base is None:
            raise ModelError(f"{info.ref} is an adapter without a base version")
        base = registry.get(info.base)
        model, tokenizer = _load_adapter(workspace, info, base, torch_dtype, verify=verify)
    else:
        raise ModelError(f"{info.ref}: cannot load format {info.format!r}")
    model.to(target)
    model.eval()
    return LoadedModel(model, tokenizer, info, target, base)


def _load_hf(
    workspace: Workspace, info: ModelVersionInfo, dtype: Any, *, verify: bool
) -> tuple[Any, Any]:
    folder = local_path(workspace, info)
    if verify:
        verify_files(workspace, info)
    _hf.offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return model, tokenizer


def _load_adapter(
    workspace: Workspace,
    info: ModelVersionInfo,
    base: ModelVersionInfo,
    dtype: Any,
    *,
    verify: bool,
) -> tuple[Any, Any]:
    base_model, tokenizer = _load_hf(workspace, base, dtype, verify=verify)
    folder = local_path(workspace, info)
    if verify:
        verify_files(workspace, info)
    _hf.offline()
    from peft import PeftModel
    from transformers import AutoTokenizer

    model = PeftModel.from_pretrained(base_model, str(folder), is_trainable=False)
    # An adapter trained with added tokens ships its own tokenizer.
    if any((folder / name).is_file() for name in _TOKENIZER_FILES):
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return model, tokenizer


def local_path(workspace: Workspace, info: ModelVersionInfo) -> Path:
    """The version's folder on this machine."""
    if not workspace.artifacts.is_local:
        raise ModelError(
            f"{info.ref} lives in a remote artifact store ({info.uri}); "
            "loading models from remote stores is not supported yet"
        )
    folder = Path(info.uri.removeprefix("file://"))
    if not folder.is_dir():
        raise IntegrityError(f"{info.ref}: model folder {folder} is missing")
    return folder


def verify_files(workspace: Workspace, info: ModelVersionInfo) -> None:
    """Re-hash the version's files; a changed or missing file fails, named."""
    folder = local_path(workspace, info)
    files: dict[str, Any] = info.metadata.get("files") or {}
    for name, meta in sorted(files.items()):
        path = folder / name
        if not path.is_file():
            raise IntegrityError(f"{info.ref}: file {path} is missing")
        if sha256_file(path) != meta.get("sha256"):
            raise IntegrityError(f"{info.ref}: file {path} changed since it was registered")

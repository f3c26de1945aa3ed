"""Shared helpers for code that touches torch and transformers.

Importing this module is cheap; torch and transformers load inside the
functions, so ``llmline --help`` never pays for them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from llmline.models.errors import DeviceUnavailableError, ModelError

if TYPE_CHECKING:
    import torch

__all__ = ["offline", "resolve_device", "resolve_dtype"]

_DTYPES = ("float32", "float16", "bfloat16")


def offline() -> None:
    """Forbid model-hub downloads before transformers or huggingface_hub load.

    llmline runs offline by design; every ``from_pretrained`` call also passes
    ``local_files_only=True``, which still holds if the hub library was
    imported (and read its settings) before this ran.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; an explicit device
    that is not there is a user error, not a silent fallback."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return "cpu"
    if kind == "cuda" and (not index or index.isdigit()):
        if not torch.cuda.is_available():
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU build"
            raise DeviceUnavailableError(
                f"device {device!r} was asked for but CUDA is not available "
                f"(torch {torch.__version__} is {built}); use --device cpu or auto"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)"
            )
        return device
    if kind == "mps" and not index:
        if not torch.backends.mps.is_available():
            raise DeviceUnavailableError("device 'mps' was asked for but MPS is not available")
        return "mps"
    raise ModelError(f"invalid device {device!r}: auto, cpu, cuda, cuda:N or mps")


def resolve_dtype(dtype: str | torch.dtype | None) -> Any:
    """None → the dtype the weights are stored in (transformers' ``"auto"``)."""
    import torch

    if dtype is None or dtype == "auto":
        return "auto"
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ModelError(f"invalid dtype {dtype!r}: one of auto, {', '.join(_DTYPES)}")
    return getattr(torch, dtype)

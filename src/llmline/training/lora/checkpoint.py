"""Checkpoints that a kill or a full disk cannot leave half-written.

A checkpoint is written into a private staging folder (``.staging/<pid>-…``,
swept once its process is gone), flushed to disk, and renamed to
``step-N``: a folder with that name is complete by construction, so resume
never has to guess.  Older checkpoints are moved back into staging before
they are deleted, for the same reason.

Layout of ``step-N/``::

    adapter/            PEFT adapter (save_pretrained), usable on its own
    training_state.pt   optimizer, scheduler and RNG states
    state.json          step, metrics so far, config and data fingerprint
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel, set_peft_model_state_dict
from safetensors import SafetensorError
from safetensors.torch import load_file

from llmline.storage.scratch import scratch_dir, sweep
from llmline.training.errors import CheckpointError, TrainingInputMissingError

__all__ = [
    "KEEP_LAST",
    "checkpoint_steps",
    "clear_checkpoints",
    "latest_checkpoint",
    "load_checkpoint",
    "publish_dir",
    "read_state",
    "save_adapter",
    "save_checkpoint",
    "staging",
    "write_file_atomically",
]

KEEP_LAST = 2
STAGING = ".staging"
STATE_JSON = "state.json"
TRAINING_STATE = "training_state.pt"
_STEP_DIR = re.compile(r"step-(\d+)")
_WRITE_ERRORS = (OSError, SafetensorError)


@contextmanager
def staging(parent: Path) -> Iterator[Path]:
    """A private folder under ``parent/.staging`` (same filesystem, so rename is atomic).

    Folders left there by processes that died are removed first.
    """
    sweep(parent / STAGING)
    with scratch_dir(parent / STAGING) as path:
        yield path


def checkpoint_steps(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _STEP_DIR.fullmatch(entry.name)
        if match and (entry / STATE_JSON).is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def latest_checkpoint(root: Path) -> Path | None:
    steps = checkpoint_steps(root)
    return steps[-1][1] if steps else None


def save_checkpoint(
    root: Path,
    step: int,
    *,
    model: PeftModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: dict[str, Any],
) -> Path:
    """Write ``root/step-<step>`` atomically and keep only the last :data:`KEEP_LAST`."""
    target = root / f"step-{step}"
    try:
        with staging(root) as folder:
            save_adapter(model, folder / "adapter")
            _save_training_state(folder / TRAINING_STATE, _training_state(optimizer, scheduler))
            _write_json(folder / STATE_JSON, {**state, "step": step})
            publish_dir(folder, target)
    except _WRITE_ERRORS as exc:
        raise _write_error(f"checkpoint {target}", exc, latest_checkpoint(root)) from exc
    for _, old in checkpoint_steps(root)[:-KEEP_LAST]:
        _discard(old, root / STAGING)
    return target


def save_adapter(model: PeftModel, folder: Path) -> None:
    """PEFT ``save_pretrained``: adapter_config.json + adapter_model.safetensors."""
    # No full embedding matrices: llmline never resizes the vocabulary, and
    # PEFT's "auto" looks for a config.json that a GGUF model does not have.
    model.save_pretrained(str(folder), save_embedding_layers=False)


def read_state(path: Path) -> dict[str, Any]:
    """The ``state.json`` of a checkpoint: step, history, config, data fingerprint."""
    state: dict[str, Any] = json.loads((path / STATE_JSON).read_text(encoding="utf-8"))
    return state


def load_checkpoint(
    path: Path,
    *,
    model: PeftModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Restore adapter weights, optimizer, scheduler and RNG; return ``state.json``."""
    weights = path / "adapter" / "adapter_model.safetensors"
    try:
        result = set_peft_model_state_dict(model, load_file(str(weights)))
        payload = torch.load(path / TRAINING_STATE, map_location="cpu", weights_only=True)
        state = read_state(path)
    except FileNotFoundError as exc:
        raise TrainingInputMissingError(f"checkpoint {path} is incomplete: {exc}") from exc
    if getattr(result, "unexpected_keys", None):  # PEFT types the result loosely
        raise CheckpointError(f"checkpoint {path} does not match this LoRA configuration")
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["rng_cpu"])
    if payload.get("rng_cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["rng_cuda"])
    return state


def clear_checkpoints(root: Path) -> None:
    """Remove every checkpoint (a fresh run must not resume an old one later)."""
    for _, path in checkpoint_steps(root):
        _discard(path, root / STAGING)


def publish_dir(folder: Path, target: Path) -> None:
    """Flush ``folder`` to disk and rename it to ``target``, replacing what is there."""
    _fsync_tree(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        _discard(target, folder.parent)
    os.rename(folder, target)
    _fsync_dir(target.parent)


def write_file_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` then rename ``tmp`` over ``path``; readers see old or new."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- internals -----------------------------------------------------------------
def _training_state(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
) -> dict[str, Any]:
    # Only torch's generators matter: the data order is derived from the seed
    # and the step, and dropout is the only other randomness.
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _save_training_state(path: Path, payload: dict[str, Any]) -> None:
    torch.save(payload, path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def _write_error(what: str, exc: Exception, intact: Path | None) -> CheckpointError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    kept = f"the last complete checkpoint {intact} is intact" if intact else "no checkpoint yet"
    error = CheckpointError(f"could not write {what}: {reason}; {kept}")
    error.errno = exc.errno if isinstance(exc, OSError) else None
    return error


def _discard(path: Path, staging_dir: Path) -> None:
    """Delete a folder without ever leaving a partial one under its old name."""
    # The pid prefix lets sweep() finish the job if this process dies mid-rmtree.
    trash = staging_dir / f"{os.getpid()}-trash-{uuid.uuid4().hex}"
    trash.parent.mkdir(parents=True, exist_ok=True)
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
    for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

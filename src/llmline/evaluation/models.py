"""Evaluate a registered model version (or a local folder) on a dataset split.

:func:`evaluate_model` is what ``llmline eval run`` calls: it pins both
sides of the result to exact versions (``name@3`` of the model, the dataset
version's ``NAME@VERSION``), so a stored evaluation never records a moving
alias such as ``@champion`` or ``@latest`` that later points elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmline.errors import UserError
from llmline.evaluation._hf import quiet_loading, require
from llmline.evaluation.runner import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_NEW_TOKENS,
    EvalResult,
    evaluate,
    load_rows,
)

if TYPE_CHECKING:
    from llmline.evaluation.judge import Judge
    from llmline.evaluation.metrics import Embedder
    from llmline.workspace import Workspace

__all__ = ["evaluate_model"]


def evaluate_model(
    workspace: Workspace,
    model_ref: str | Path,
    *,
    dataset: str,
    split: str = "eval",
    limit: int | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    judge: Judge | None = None,
    semantic: bool = True,
    embedder: Embedder | None = None,
    device: str = "auto",
    save: bool = True,
) -> EvalResult:
    """Score ``model_ref`` on ``split`` of ``dataset`` and (``save``) record it.

    A string is a model-registry reference (``name``, ``name@3``,
    ``name@champion``, ``name@latest``; base versions and ``peft-lora``
    adapters alike) and the result names the version it resolved to.  A
    :class:`~pathlib.Path` is an unregistered local Hugging Face folder,
    recorded under its absolute path.  The rows are read before the model
    loads, so a wrong dataset or an empty split fails in milliseconds.
    """
    dataset_ref, rows = load_rows(workspace, dataset, split, limit=limit)
    if isinstance(model_ref, Path):
        model, tokenizer = _load_folder(model_ref, device)
        resolved = str(model_ref.resolve())
    else:
        from llmline.models import load_model

        with quiet_loading():
            loaded = load_model(workspace, model_ref, device=device)
        model, tokenizer, resolved = loaded.model, loaded.tokenizer, loaded.info.ref
    result = evaluate(
        model=model,
        tokenizer=tokenizer,
        rows=rows,
        model_ref=resolved,
        dataset_ref=dataset_ref,
        split=split,
        judge=judge,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        embedder=embedder,
        semantic=semantic,
    )
    if not save:
        return result
    from llmline.evaluation.store import EvalStore

    return EvalStore(workspace.metadata).save(result)


def _load_folder(model_dir: Path, device: str) -> tuple[Any, Any]:
    """A model folder that is not in the registry (e.g. a merged export)."""
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir} is not a Hugging Face model folder (no config.json)")
    from llmline.models._hf import resolve_device

    target = resolve_device(device)
    transformers = require("transformers")
    with quiet_loading():
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(model_dir), local_files_only=True
        )
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(model_dir), local_files_only=True
        )
    model.to(target)
    model.eval()
    return model, tokenizer

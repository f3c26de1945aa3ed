"""What each step of the ``tune`` pipeline does, as plain Python.

The KFP components in :mod:`llmline.pipelines.components` are thin: they
import this module inside the step's process and hand it their inputs and
the paths of their output artifacts.  Keeping the work here means the steps
are typed, linted and unit-testable like the rest of llmline, and the
component source that KFP hashes for its cache changes only when a step's
interface does.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from llmline.errors import UserError
from llmline.storage.artifacts import sha256_file
from llmline.workspace import Workspace

if TYPE_CHECKING:
    from llmline.evaluation import EvalResult
    from llmline.training import ProgressEvent

__all__ = [
    "CONSOLE_PREFIX",
    "ERRORS_ENV",
    "RUN_ID_ENV",
    "build_dataset",
    "evaluate",
    "register",
    "tune",
]

#: Set by the local runner for the step processes: the llmline run id.  It is
#: read from the environment, not passed as a parameter, so that it does not
#: enter KFP's cache key (every run has a new one).
RUN_ID_ENV = "LLMLINE_PIPELINE_RUN_ID"
#: A folder where a step that fails with a user error leaves its one-line
#: message, for the runner to report instead of KFP's "task failed".
ERRORS_ENV = "LLMLINE_PIPELINE_ERRORS"
#: Lines printed with this prefix are meant for the person watching the run.
CONSOLE_PREFIX = "[llmline] "

_Step = TypeVar("_Step", bound=Callable[..., Any])


def reports_errors(step: _Step) -> _Step:
    """Leave the step's error as one line where the runner looks for it, then
    re-raise (the step process still fails, so KFP marks the task failed)."""
    name = step.__name__.replace("_", "-")

    @functools.wraps(step)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return step(*args, **kwargs)
        except Exception as exc:
            folder = os.environ.get(ERRORS_ENV)
            if folder:
                text = " ".join(str(exc).split())
                if not isinstance(exc, UserError):  # a bug: the log has the traceback
                    text = f"internal error {type(exc).__name__}: {text}"
                Path(folder).mkdir(parents=True, exist_ok=True)
                (Path(folder) / f"{name}.txt").write_text(text, "utf-8")
            raise

    return run  # type: ignore[return-value]


def say(text: str) -> None:
    """Print a line for the console of whoever runs the pipeline."""
    print(f"{CONSOLE_PREFIX}{text}", flush=True)


def _workspace(root: str) -> Workspace:
    return Workspace(Path(root))


def run_id(fallback: str = "") -> str:
    """This run's id: llmline's when it runs the pipeline, else KFP's job name."""
    return os.environ.get(RUN_ID_ENV) or fallback or "unknown"


def write_json(path: str | Path, document: Any) -> None:
    """Write ``document`` to ``path`` (creating its folder), atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str) + "\n", "utf-8")
    os.replace(tmp, target)


# -- build-dataset -------------------------------------------------------------
@reports_errors
def build_dataset(workspace: str, dataset: str, *, eval_split: str = "eval") -> dict[str, Any]:
    """Resolve ``dataset`` to one exact version, building it when it names
    no version (``NAME`` or ``NAME@latest`` build from the warehouse now;
    an unchanged build reuses the existing version).  A version without
    rows to train on or to evaluate on stops the run here, before tuning."""
    from llmline.data.builder import build_dataset as build
    from llmline.data.catalog import get_version

    ws = _workspace(workspace)
    name, _, selector = dataset.partition("@")
    if selector and selector != "latest":
        info = get_version(ws, dataset)
        status = "existing"
    else:
        result = build(ws, name)
        info = get_version(ws, result.ref)
        status = result.status
    require_splits(info.ref, info.splits, ("train", eval_split))
    return {
        "ref": info.ref,
        "uri": info.uri,
        "content_hash": info.content_hash,
        "splits": info.splits,
        "status": status,
        "template": (info.manifest.get("template") or {}).get("resolved"),
    }


def require_splits(ref: str, splits: Mapping[str, int], names: Sequence[str]) -> None:
    """Raise a :class:`UserError` naming the first of ``names`` that is empty."""
    for name in names:
        if not splits.get(name):
            have = ", ".join(f"{k}={v}" for k, v in splits.items()) or "no rows"
            raise UserError(
                f"dataset {ref} has an empty {name!r} split ({have}); the tune pipeline "
                f"needs rows in 'train' and in its eval split: add data or change the "
                f"dataset's split fractions"
            )


# -- tune ----------------------------------------------------------------------
@reports_errors
def tune(
    workspace: str,
    *,
    base_model: str,
    dataset: str,
    config: Mapping[str, Any],
    adapter_dir: str,
    metrics_path: str,
    curve_path: str,
) -> dict[str, Any]:
    """Train a LoRA adapter; copy it and its report into the step's outputs.

    The run's checkpoints live in a work folder named after everything that
    decides the trajectory (base version, dataset version, settings), so a
    re-run of a killed pipeline resumes where the last checkpoint left it.
    """
    from llmline.data.catalog import get_version
    from llmline.models import ModelRegistry
    from llmline.models.loader import local_path
    from llmline.training import LoraTuneConfig, train_lora

    ws = _workspace(workspace)
    cfg = LoraTuneConfig.parse(config, source="tune parameters")
    base = ModelRegistry(ws.metadata).get(base_model)
    data = get_version(ws, dataset)
    work = ws.state_dir / "pipelines" / "work" / f"tune-{_trajectory_key(base, data.ref, cfg)}"
    result = train_lora(
        cfg,
        model_dir=local_path(ws, base),
        dataset_dir=Path(data.uri.removeprefix("file://")),
        output_dir=work,
        resume=True,
        on_progress=_print_progress(cfg.evaluation_interval),
    )
    _copy_tree(result.adapter_dir, Path(adapter_dir))
    shutil.copyfile(result.metrics_path, metrics_path)
    shutil.copyfile(result.curve_path, curve_path)
    return {
        "base_model": base.ref,
        "dataset": data.ref,
        "steps": result.steps,
        "final_train_loss": result.final_train_loss,
        "final_eval_loss": result.final_eval_loss,
        "tokens_per_s": result.tokens_per_s,
        "wall_time_s": result.wall_time_s,
        "device": result.device,
        "resumed_from_step": result.resumed_from_step,
        "work_dir": str(work),
    }


def _trajectory_key(base: Any, dataset_ref: str, cfg: Any) -> str:
    from llmline.training.lora.config import TRAJECTORY_FIELDS

    fields = {k: v for k, v in cfg.model_dump(mode="json").items() if k in TRAJECTORY_FIELDS}
    text = json.dumps([base.ref, base.content_hash, dataset_ref, fields], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _print_progress(every: int) -> Any:
    def show(event: ProgressEvent) -> None:
        if event.step == 1 or event.step % every == 0 or event.step == event.total:
            eval_loss = f"{event.eval_loss:.4f}" if event.eval_loss is not None else "-"
            say(
                f"step {event.step}/{event.total}  loss {event.loss:.4f}  eval_loss {eval_loss}  "
                f"{event.tokens_per_s:.0f} tokens/s  ETA {event.eta_s:.0f}s"
            )

    return show


def _copy_tree(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)


# -- evaluate ------------------------------------------------------------------
@reports_errors
def evaluate(
    workspace: str,
    *,
    base_model: str,
    dataset: str,
    split: str,
    limit: int,
    max_new_tokens: int,
    batch_size: int,
    result_path: str,
    adapter_dir: str | None = None,
) -> dict[str, float]:
    """Score the base model, or the base with ``adapter_dir`` on top.

    A base model's result is saved in the evaluation store at once (it is a
    registered version); a candidate adapter's result is written only to
    ``result_path``, and the register step saves it under the version
    number the registry gives the adapter.
    """
    from llmline.evaluation import EvalStore, load_rows
    from llmline.evaluation import evaluate as score
    from llmline.models import load_model

    ws = _workspace(workspace)
    dataset_ref, rows = load_rows(ws, dataset, split, limit=limit or None)
    loaded = load_model(ws, base_model)
    model = loaded.model
    label = loaded.info.ref
    if adapter_dir is not None:
        from peft import PeftModel

        # Merged into the base weights the adapter costs nothing per token.
        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
        model.eval()
        label = f"{label}+adapter"
    result = score(
        model=model,
        tokenizer=loaded.tokenizer,
        rows=rows,
        model_ref=label,
        dataset_ref=dataset_ref,
        split=split,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    if adapter_dir is None:
        result = EvalStore(ws.metadata).save(result)
    write_json(result_path, result.to_dict(with_samples=True))
    return dict(result.metrics)


def read_result(path: str | Path) -> EvalResult:
    """An :class:`EvalResult` written by :func:`evaluate`."""
    from llmline.evaluation import EvalResult

    doc = json.loads(Path(path).read_text("utf-8"))
    return EvalResult(
        model_ref=doc["model_ref"],
        dataset_ref=doc["dataset_ref"],
        split=doc["split"],
        metrics=doc["metrics"],
        config=doc.get("config") or {},
        samples=doc.get("samples") or [],
        created_at=datetime.fromisoformat(doc["created_at"]),
    )


# -- register ------------------------------------------------------------------
@reports_errors
def register(
    workspace: str,
    *,
    model_name: str,
    base_model: str,
    dataset: str,
    adapter_dir: str,
    training: Mapping[str, Any],
    tuned_result_path: str,
    gates: Sequence[str],
    promote: bool,
    run: str,
) -> dict[str, Any]:
    """Register the adapter as a version of ``model_name`` with its lineage,
    save its evaluation, make it the ``challenger``, and promote it to
    ``champion`` when ``promote`` and every gate passes.

    Registering the same adapter files again returns the existing version.
    """
    from llmline.evaluation import EvalStore

    ws = _workspace(workspace)
    info = _register_adapter(
        ws,
        model_name,
        base_model=base_model,
        dataset=dataset,
        adapter=Path(adapter_dir),
        training=training,
        run=run,
    )
    store = EvalStore(ws.metadata)
    tuned = read_result(tuned_result_path)
    tuned.model_ref = info.ref
    if info.created:
        store.save(tuned)
    _link_run(ws, run, dataset, base_model)
    from llmline.models import ModelRegistry

    registry = ModelRegistry(ws.metadata)
    registry.set_alias(info.ref, "challenger", reason=f"pipeline run {run}")
    outcome: dict[str, Any] = {"model_ref": info.ref, "created": info.created}
    outcome |= _maybe_promote(
        ws, info.ref, dataset=dataset, split=tuned.split, gates=gates, promote=promote, run=run
    )
    return outcome


def _register_adapter(
    ws: Workspace,
    name: str,
    *,
    base_model: str,
    dataset: str,
    adapter: Path,
    training: Mapping[str, Any],
    run: str,
) -> Any:
    from llmline.data.catalog import get_version
    from llmline.models import ModelRegistry, folder_publisher

    files = {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(adapter.iterdir())
        if p.is_file()
    }
    content_hash = hashlib.sha256(
        json.dumps({k: v["sha256"] for k, v in files.items()}, sort_keys=True).encode()
    ).hexdigest()
    registry = ModelRegistry(ws.metadata)
    existing = registry.find_by_hash(name, content_hash)
    if existing is not None:
        return existing
    template = (get_version(ws, dataset).manifest.get("template") or {}).get("resolved")
    metadata = {
        "run": run,
        "dataset": dataset,
        "template": template,
        "training": dict(training),
        "files": files,
    }
    with ws.artifacts.stage() as staging:
        _copy_tree(adapter, staging / "adapter")
        for item in (staging / "adapter").iterdir():
            item.rename(staging / item.name)
        (staging / "adapter").rmdir()
        info = registry.register(
            name,
            kind="tuned",
            uri=folder_publisher(ws.artifacts, staging, name),
            format="peft-lora",
            source=f"pipeline run {run}",
            base=base_model,
            metadata=metadata,
            content_hash=content_hash,
            description=f"LoRA adapter on {base_model}, tuned on {dataset}",
        )
    try:  # the gateway cites training answers from this index; a model without one still serves
        from llmline.gateway.citations import build_citation_index

        build_citation_index(ws, dataset)
    except Exception as exc:
        say(f"warning: no citation index for {dataset}: {type(exc).__name__}: {exc}")
    return info


def _link_run(ws: Workspace, run: str, dataset: str, base_model: str) -> None:
    from llmline.storage.lineage import ArtifactRef, add_edge

    with ws.metadata.session() as session:
        me = ArtifactRef("run", run)
        add_edge(session, ArtifactRef("dataset", dataset), me, "input_of")
        add_edge(session, ArtifactRef("model", base_model), me, "input_of")


def _maybe_promote(
    ws: Workspace,
    ref: str,
    *,
    dataset: str,
    split: str,
    gates: Sequence[str],
    promote: bool,
    run: str,
) -> dict[str, Any]:
    if not promote:
        return {"promoted": False, "failures": [], "reason": "promotion not requested"}
    from llmline.evaluation import EvalStore, evaluation_gate
    from llmline.models import Gate, GateFailedError, ModelRegistry

    parsed = [Gate.parse(text) for text in gates]
    check = evaluation_gate(EvalStore(ws.metadata), parsed, dataset_ref=dataset, split=split)
    try:
        result = ModelRegistry(ws.metadata).promote(
            ref, gates=check, reason=f"pipeline run {run}: gates {', '.join(gates) or 'none'}"
        )
    except GateFailedError as exc:
        failures = [f.to_dict() for f in exc.failures]
        return {"promoted": False, "failures": failures, "reason": str(exc)}
    return {"promoted": True, "failures": [], "champion": result.version.ref}

"""LoRA supervised fine-tuning: a plain torch loop around a PEFT model.

Written by hand rather than with ``transformers.Trainer`` so that resume is
exact (the batch of a step is a function of the seed and the step, and the
checkpoint holds every other piece of state), checkpoints are atomic, and a
step runs the LM head only on answer positions.

Determinism: on CPU, a run resumed from any checkpoint ends with the same
adapter, bit for bit, as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel

from llmline.errors import ConfigError
from llmline.training.data import (
    Batch,
    BatchSchedule,
    EncodedSplit,
    collate,
    encode_rows,
    eval_batches,
    read_split,
    split_fingerprint,
)
from llmline.training.errors import TrainingDataError, TrainingDivergedError
from llmline.training.lora.checkpoint import (
    clear_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    read_state,
    save_checkpoint,
)
from llmline.training.lora.config import TRAJECTORY_FIELDS, LoraTuneConfig
from llmline.training.lora.finish import finish_run
from llmline.training.lora.report import ProgressEvent, TrainResult
from llmline.training.model import load_base_model, resolve_device

__all__ = ["ProgressCallback", "train_lora"]

ProgressCallback = Callable[[ProgressEvent], None]
CHECKPOINTS = "checkpoints"


def train_lora(
    config: LoraTuneConfig,
    *,
    model_dir: Path,
    dataset_dir: Path,
    output_dir: Path,
    resume: bool = True,
    on_progress: ProgressCallback | None = None,
) -> TrainResult:
    """Tune a LoRA adapter on ``dataset_dir`` and write it to ``output_dir``.

    ``model_dir`` is a transformers folder or a GGUF file.  Writes
    ``adapter/``, ``metrics.json``, ``training_curve.png`` and
    ``checkpoints/step-N/`` (the last two kept).  With ``resume`` the run
    continues from the latest checkpoint; otherwise old checkpoints are
    removed first.  An exception raised by ``on_progress`` stops the run,
    keeping its checkpoints.
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    train_rows, eval_rows, fingerprint = _read_dataset(dataset_dir)
    model, tokenizer = load_base_model(model_dir, device)
    train = _encode(tokenizer, train_rows, config, "train")
    evaluation = _encode(tokenizer, eval_rows, config, "eval")
    run = _Run(config, _attach_lora(model, config), train, evaluation, device)
    run.fingerprint, run.started = fingerprint, started
    root = output_dir / CHECKPOINTS
    resumed_from = run.restore(root) if resume else None
    if not resume:
        clear_checkpoints(root)
    run.loop(root, on_progress)
    inputs = {
        "model": str(model_dir),
        "dataset": str(dataset_dir),
        "train": train,
        "eval": evaluation,
        "resumed_from_step": resumed_from,
    }
    return finish_run(
        run.model,
        output_dir,
        config=config,
        history=run.history,
        wall_time_s=run.elapsed(),
        device=_device_name(device),
        inputs=inputs,
    )


def _read_dataset(dataset_dir: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]], str]:
    paths = [dataset_dir / "train.jsonl", dataset_dir / "eval.jsonl"]
    train_rows, eval_rows = read_split(paths[0]), read_split(paths[1])
    if not train_rows:
        raise TrainingDataError(f"{paths[0]} has no rows: nothing to train on")
    if not eval_rows:
        raise TrainingDataError(
            f"{paths[1]} has no rows: eval loss needs an eval split (give the dataset one)"
        )
    return train_rows, eval_rows, split_fingerprint(paths)


def _encode(
    tokenizer: Any, rows: list[tuple[str, str]], config: LoraTuneConfig, name: str
) -> EncodedSplit:
    split = encode_rows(tokenizer, rows, config.max_seq_length)
    if not split.examples:
        raise TrainingDataError(
            f"no {name} example keeps an answer token within max_seq_length="
            f"{config.max_seq_length}: every prompt is at least that long"
        )
    return split


def _attach_lora(model: PreTrainedModel, config: LoraTuneConfig) -> PeftModel:
    # Packing relies on transformers deriving per-example masks from the
    # position ids, which it only does when no KV cache is being built.
    model.config.use_cache = False
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(config.seed)  # LoRA A matrices are drawn from torch's generator
    try:
        with warnings.catch_warnings():
            # PEFT 0.21 probes an attribute that transformers 5 deprecates;
            # nothing a user of llmline could act on.
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
            peft_model = get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(f"target_modules {list(config.target_modules)}: {exc}") from exc
    return peft_model


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def _lr_factor(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up to the peak, then linear decay; never 0 on a step that runs."""

    def factor(done: int) -> float:  # ``done`` optimizer steps so far
        step = done + 1
        if step <= warmup:
            return step / warmup
        # After the last step the scheduler asks once more; with warm-up
        # covering every step there is no decay phase to divide by.
        return max(0.0, (total - step + 1) / max(1, total - warmup))

    return factor


@dataclass
class _Tally:
    """Throughput of this process (a resumed run restarts the clock)."""

    started: float
    steps: int = 0
    tokens: int = 0
    step_time_s: float = 0.0


class _Run:
    """The state of one training run and the steps that advance it."""

    def __init__(
        self,
        config: LoraTuneConfig,
        model: PeftModel,
        train: EncodedSplit,
        evaluation: EncodedSplit,
        device: torch.device,
    ) -> None:
        self.config = config
        self.model = model
        self.device = device
        self.train = train
        self.eval_batches = eval_batches(
            evaluation,
            config.batch_size,
            packing=config.packing,
            max_seq_length=config.max_seq_length,
        )
        self.schedule = BatchSchedule(
            [len(ex) for ex in train.examples],
            config.batch_size,
            config.seed,
            group_by_length=not config.packing,
        )
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        warmup = min(config.warmup_steps, config.train_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_factor(warmup, config.train_steps)
        )
        self.history: list[dict[str, Any]] = []
        self.step = 0
        self.elapsed_before = 0.0
        self.fingerprint = ""  # of the train/eval files, checked on resume
        self.started = time.perf_counter()  # when this process began the run
        self.last_checkpoint: Path | None = None

    def elapsed(self) -> float:
        """Wall seconds of the run, over every process that worked on it."""
        return self.elapsed_before + time.perf_counter() - self.started

    # -- resume ------------------------------------------------------------------
    def restore(self, root: Path) -> int | None:
        """Load the latest checkpoint under ``root``; return its step (None: none)."""
        path = latest_checkpoint(root)
        if path is None:
            return None
        # Check first: weights of another rank would not even load.
        self._check_compatible(path, read_state(path))
        state = load_checkpoint(
            path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler
        )
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.elapsed_before = float(state["elapsed_s"])
        self.last_checkpoint = path
        return self.step

    def _check_compatible(self, path: Path, state: dict[str, Any]) -> None:
        saved, current = state["config"], self.config.model_dump(mode="json")
        changed = sorted(k for k in TRAJECTORY_FIELDS if saved.get(k) != current[k])
        if changed:
            raise ConfigError(
                f"checkpoint {path} was written with other settings ({', '.join(changed)}); "
                "resume with the same settings or pass resume=False to start over"
            )
        if state["data_fingerprint"] != self.fingerprint:
            raise TrainingDataError(
                f"checkpoint {path} was written for other train/eval data; "
                "pass resume=False to start over"
            )

    # -- the loop ----------------------------------------------------------------
    def loop(self, root: Path, on_progress: ProgressCallback | None) -> None:
        config = self.config
        tally = _Tally(started=time.perf_counter())
        self.model.train()
        while self.step < config.train_steps:
            self.step += 1
            record = self._train_step(self.step)
            tally.steps += 1
            tally.tokens += record["tokens"]
            tally.step_time_s += record["step_time_s"]
            if self.step % config.evaluation_interval == 0 or self.step == config.train_steps:
                record["eval_loss"] = self._evaluate()
            self.history.append(record)
            if self.step % config.checkpoint_every == 0 or self.step == config.train_steps:
                self._checkpoint(root)
            if on_progress is not None:
                on_progress(self._event(record, tally))

    def _train_step(self, step: int) -> dict[str, Any]:
        started = time.perf_counter()
        examples = [self.train.examples[i] for i in self.schedule.batch(step)]
        batch = collate(examples, self.config.packing, self.config.max_seq_length)
        batch = batch.to(self.device)
        learning_rate = self.scheduler.get_last_lr()[0]
        loss = _loss_sum(self.model, batch) / batch.targets.numel()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.optimizer.param_groups[0]["params"], self.config.max_grad_norm
        )
        loss_value, norm_value = loss.item(), grad_norm.item()
        if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
            what = "loss" if not math.isfinite(loss_value) else "gradient norm"
            self._diverged(step, f"the {what} is {loss_value if what == 'loss' else norm_value}")
        self.optimizer.step()
        self.scheduler.step()
        elapsed = time.perf_counter() - started
        return {
            "step": step,
            "train_loss": loss_value,
            "learning_rate": learning_rate,
            "grad_norm": norm_value,
            "tokens": batch.num_tokens,
            "step_time_s": elapsed,
            "tokens_per_s": batch.num_tokens / elapsed,
        }

    def _evaluate(self) -> float:
        self.model.eval()
        total, count = 0.0, 0
        with torch.inference_mode():
            for batch in self.eval_batches:
                total += _loss_sum(self.model, batch.to(self.device)).item()
                count += batch.targets.numel()
        self.model.train()
        loss = total / count
        if not math.isfinite(loss):
            self._diverged(self.step, f"the eval loss is {loss}")
        return loss

    def _diverged(self, step: int, what: str) -> None:
        kept = self.last_checkpoint
        raise TrainingDivergedError(
            f"training diverged at step {step}: {what} (learning_rate "
            f"{self.config.learning_rate:g}); "
            + (f"the last good checkpoint {kept} was kept" if kept else "no checkpoint was kept")
            + "; lower learning_rate or max_grad_norm and start again",
            step=step,
            last_checkpoint=str(kept) if kept else None,
        )

    def _checkpoint(self, root: Path) -> None:
        for param in self.optimizer.param_groups[0]["params"]:
            if not torch.isfinite(param).all():  # never save weights a resume cannot use
                self._diverged(self.step, "an adapter weight is not finite")
        state = {
            "format": 1,
            "config": self.config.model_dump(mode="json"),
            "data_fingerprint": self.fingerprint,
            "history": self.history,
            "elapsed_s": self.elapsed(),
        }
        self.last_checkpoint = save_checkpoint(
            root,
            self.step,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            state=state,
        )

    def _event(self, record: dict[str, Any], tally: _Tally) -> ProgressEvent:
        per_step = (time.perf_counter() - tally.started) / tally.steps
        return ProgressEvent(
            step=self.step,
            total=self.config.train_steps,
            loss=record["train_loss"],
            eval_loss=next(
                (r["eval_loss"] for r in reversed(self.history) if "eval_loss" in r), None
            ),
            tokens_per_s=tally.tokens / tally.step_time_s if tally.step_time_s else 0.0,
            eta_s=per_step * (self.config.train_steps - self.step),
            learning_rate=record["learning_rate"],
        )


def _loss_sum(model: PeftModel, batch: Batch) -> torch.Tensor:
    """Summed cross-entropy of the batch's targets (the caller divides)."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=batch.input_ids.is_cuda):
        output = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
            # A boolean mask selects positions before the LM head, which is
            # most of a small model's compute; models that ignore it return
            # every position, and the mask is applied here instead.
            logits_to_keep=batch.keep,
        )
    logits = output.logits
    if logits.dim() == 3:
        logits = logits[batch.keep]
    return F.cross_entropy(logits.float(), batch.targets, reduction="sum")

"""Benchmark llmline's LoRA loop against a plain ``transformers.Trainer`` + PEFT.

Every mode trains the same LoRA (rank 8, alpha 16, dropout 0.05, q_proj and
v_proj) with the same hyper-parameters (AdamW, lr 3e-4, linear warm-up and
decay, grad clipping 1.0, float32) on the same tokenized examples (answer-only
labels from :func:`llmline.training.data.encode_rows`):

* ``llmline-packed``: :func:`llmline.training.train_lora`, ``packing=True``
  (a step's examples in one row, LM head on answer positions only);
* ``llmline-padded``: the same with ``packing=False`` (length-grouped
  dynamic padding);
* ``hf-trainer``: ``Trainer`` with ``DataCollatorForSeq2Seq`` dynamic
  padding, as a quick script would write it (neither tuned nor sabotaged).

Data: the bundled CPython FAQ, question title -> first 33 words of the
accepted answer, about 85 tokens per example with SmolLM2's chat template.

Each mode runs in a fresh process, modes interleaved over ``--repeats``.
Medians are the headline: on a shared machine other processes add spikes
that inflate means.  Timed: the optimizer steps only (for
llmline its per-step ``step_time_s``; for the Trainer the interval between
consecutive ``on_step_end`` callbacks), skipping the first ``--skip`` steps
(allocator and kernel warm-up).  Evaluation, checkpoints, loading and
imports are not timed.  tokens/s counts real (non-padding) tokens.

Usage::

    .venv/bin/python bench/train_throughput.py --model tiny --steps 40
    .venv/bin/python bench/train_throughput.py --model smollm2 --steps 12 \\
        --output bench/results/train_throughput_smollm2.json

``--model smollm2`` de-quantizes the bundled GGUF once into a safetensors
folder so that no mode pays the GGUF conversion.  Figures are reported,
never asserted by the test suite.
"""

from __future__ import annotations

import argparse
import html
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
FAQ = ROOT / "src" / "llmline" / "resources" / "cpython_faq"
MODES = ("llmline-packed", "llmline-padded", "hf-trainer")
LORA: dict[str, Any] = {
    "r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "target_modules": ["q_proj", "v_proj"],
}
HYPER: dict[str, Any] = {
    "learning_rate": 3e-4,
    "warmup_steps": 2,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
}


# -- set-up (parent process) -----------------------------------------------------
def write_faq_dataset(folder: Path, answer_words: int = 33) -> Path:
    questions = [json.loads(line) for line in (FAQ / "posts_questions.jsonl").open()]
    answers = {}
    for line in (FAQ / "posts_answers.jsonl").open():
        row = json.loads(line)
        answers[row["id"]] = row
    rows = []
    for question in questions:
        answer = answers.get(question["accepted_answer_id"])
        if answer:
            text = html.unescape(re.sub(r"<[^>]+>", " ", answer["body"]))
            rows.append(
                {
                    "input_text": question["title"],
                    "output_text": " ".join(text.split()[:answer_words]),
                }
            )
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", rows[:160]), ("eval", rows[160:])):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return folder


def prepare_model(kind: str, workdir: Path) -> Path:
    if kind == "tiny":
        from llmline.testing.models import tiny_causal_lm

        return tiny_causal_lm(workdir / "tiny")
    if kind == "smollm2":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from llmline.testing.models import smollm2_gguf_path

        gguf = smollm2_gguf_path()
        target = workdir / "smollm2"
        loaded = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # A GGUF-loaded model counts as quantized and refuses save_pretrained:
        # copy its de-quantized weights into a plain model of the same config.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model: Any = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
        model.load_state_dict(loaded.state_dict())
        model.save_pretrained(target)
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(target)
        return target
    return Path(kind)


# -- the modes (child processes) ---------------------------------------------------
def run_llmline(args: argparse.Namespace, packing: bool) -> dict[str, Any]:
    from llmline.training import LoraTuneConfig, train_lora

    config = LoraTuneConfig(
        train_steps=args.steps,
        evaluation_interval=args.steps,
        checkpoint_every=args.steps,
        batch_size=args.batch_size,
        lora_rank=LORA["r"],
        lora_alpha=LORA["lora_alpha"],
        lora_dropout=LORA["lora_dropout"],
        target_modules=LORA["target_modules"],
        device="cpu",
        packing=packing,
        **HYPER,
    )
    out = args.scratch / args.child
    result = train_lora(
        config, model_dir=args.model_dir, dataset_dir=args.dataset, output_dir=out, resume=False
    )
    history = json.loads(result.metrics_path.read_text())["history"]
    return {
        "step_times": [r["step_time_s"] for r in history],
        "step_tokens": [r["tokens"] for r in history],
        "final_train_loss": result.final_train_loss,
    }


def run_hf_trainer(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from llmline.training.data import encode_rows, read_split

    tokenizer = AutoTokenizer.from_pretrained(str(args.model_dir))
    model: Any = AutoModelForCausalLM.from_pretrained(str(args.model_dir), dtype=torch.float32)
    split = encode_rows(tokenizer, read_split(args.dataset / "train.jsonl"), 256)
    dataset = [
        {"input_ids": e.input_ids, "labels": e.labels, "attention_mask": [1] * len(e)}
        for e in split.examples
    ]
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", bias="none", **LORA))
    padder = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    step_tokens: list[int] = []
    ends: list[float] = []

    def collate(features: list[dict[str, Any]]) -> Any:
        batch = padder(features)
        step_tokens.append(int(batch["attention_mask"].sum()))
        return batch

    class Timer(TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            ends.append(time.perf_counter())

        def on_step_end(self, *_: Any, **__: Any) -> None:
            ends.append(time.perf_counter())

    training_args = TrainingArguments(
        output_dir=str(args.scratch / "hf-trainer"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        lr_scheduler_type="linear",
        logging_steps=args.steps,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        seed=42,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
        remove_unused_columns=False,
        **HYPER,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=collate,
        callbacks=[Timer()],
    )
    output = trainer.train()
    return {
        "step_times": [b - a for a, b in itertools.pairwise(ends)],
        "step_tokens": step_tokens[: args.steps],
        "final_train_loss": output.training_loss,
    }


def child(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    mode = args.child
    raw = (
        run_hf_trainer(args)
        if mode == "hf-trainer"
        else run_llmline(args, mode == "llmline-packed")
    )
    times, tokens = raw["step_times"][args.skip :], raw["step_tokens"][args.skip :]
    print(
        "RESULT "
        + json.dumps(
            {
                "mode": mode,
                "timed_steps": len(times),
                "mean_seconds_per_step": statistics.mean(times),
                "median_seconds_per_step": statistics.median(times),
                "min_seconds_per_step": min(times),
                "tokens_per_step": statistics.mean(tokens),
                "mean_tokens_per_s": sum(tokens) / sum(times),
                # robust to the spikes other processes cause on a shared machine
                "median_tokens_per_s": statistics.median(
                    n / t for n, t in zip(tokens, times, strict=True)
                ),
                "final_train_loss": raw["final_train_loss"],
                "threads": torch.get_num_threads(),
            }
        ),
        flush=True,
    )


# -- driver ------------------------------------------------------------------------
def run_mode(mode: str, args: argparse.Namespace, model_dir: Path, dataset: Path) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "--child", mode, "--model-dir", str(model_dir),
        "--dataset", str(dataset), "--steps", str(args.steps), "--skip", str(args.skip),
        "--batch-size", str(args.batch_size), "--threads", str(args.threads),
        "--scratch", str(dataset.parent / f"out-{mode}"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(lines[-1][len("RESULT ") :]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny", help="tiny, smollm2, or a transformers folder")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--skip", type=int, default=3, help="untimed warm-up steps")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        workdir = Path(tmp)
        model_dir = prepare_model(args.model, workdir)
        dataset = write_faq_dataset(workdir / "data")
        runs = []
        for repeat in range(args.repeats):
            for mode in args.modes:
                load = os.getloadavg()[0]
                result = run_mode(mode, args, model_dir, dataset)
                runs.append({**result, "repeat": repeat, "loadavg_1m_before": load})
                print(
                    f"{mode:16s} median {result['median_seconds_per_step']:7.3f} s/step "
                    f"{result['median_tokens_per_s']:8.0f} tokens/s   "
                    f"mean {result['mean_seconds_per_step']:7.3f} s/step "
                    f"({result['tokens_per_step']:.0f} tokens/step, load {load:.1f})",
                    flush=True,
                )
    report = {
        "model": args.model,
        "steps": args.steps,
        "skip": args.skip,
        "batch_size": args.batch_size,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "runs": runs,
    }
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

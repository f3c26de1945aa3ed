"""Speed and CUDA code-path check of LoRA tuning and embedded serving.

Builds a model with SmolLM2-135M's architecture and RANDOM weights (plus a
real SmolLM2 tokenizer folder), then

1. tunes a LoRA adapter on a small synthetic instruction set through
   :func:`llmline.training.train_lora` (the trainer llmline runs itself);
2. checks that a padded and a packed batch give the same loss through the
   trainer's own loss function (on CUDA this runs under bf16 autocast);
3. generates through the embedded provider's dynamic-batching engine
   (:class:`llmline.gateway.providers._batching.BatchEngine`) with the model
   loaded as the provider loads it (stored dtype, float32), and also in
   bfloat16: one request alone, then ``--gen-batch`` requests at once.

Random weights measure speed and exercise the code paths; they say nothing
about quality.  Results go to ``--out`` as JSON and a summary is printed.

Make the tokenizer folder once (a few MB, from the built-in GGUF)::

    python scripts/cuda_check.py --export-tokenizer .cuda_check/tokenizer

Then::

    python scripts/cuda_check.py --device cpu --steps 4    # a smoke test
    python scripts/cuda_check.py --device cuda --out "$OUT/cuda_check.json"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

# SmolLM2-135M-Instruct's dimensions, as its GGUF declares them.
SMOLLM2_135M: dict[str, Any] = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
    "tie_word_embeddings": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
}
_NAMES = ["Ada", "Brook", "Cyra", "Dov", "Emil", "Fenna", "Gus", "Hira", "Ivo", "Jun"]
_THINGS = ["apples", "books", "coins", "lamps", "maps", "pens", "shells", "tiles"]


# -- inputs ------------------------------------------------------------------
def export_tokenizer(folder: Path) -> None:
    """Save the built-in SmolLM2 GGUF's tokenizer as plain files in ``folder``."""
    from transformers import AutoTokenizer

    from llmline.models.builtin import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.save_pretrained(str(folder))


def build_model(folder: Path, tokenizer_dir: Path, seed: int) -> None:
    """A SmolLM2-135M-shaped Llama with random weights, saved as llmline imports
    models (float32 safetensors, tokenizer files beside them)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(**SMOLLM2_135M)
    model = LlamaForCausalLM(config)  # float32, initialised from the seed
    model.save_pretrained(str(folder))
    for item in tokenizer_dir.iterdir():
        if item.is_file():
            shutil.copy2(item, folder / item.name)


def synthetic_rows(count: int, seed: int) -> list[dict[str, str]]:
    """Short arithmetic questions with templated answers (about 60-70 tokens each)."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
        a, b = rng.randint(2, 60), rng.randint(2, 60)
        question = f"{name} has {a} {thing} and buys {b} more. How many {thing} now?"
        answer = f"{name} had {a} {thing} and bought {b}, so {name} now has {a + b} {thing}."
        rows.append({"input_text": question, "output_text": answer})
    return rows


def write_dataset(folder: Path, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, count, offset in (("train", 512, 0), ("eval", 32, 1)):
        lines = [json.dumps(row) for row in synthetic_rows(count, seed + offset)]
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- measuring helpers ---------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


# -- (1) training --------------------------------------------------------------
def check_training(
    model_dir: Path, data_dir: Path, work: Path, device: torch.device, args: argparse.Namespace
) -> dict[str, Any]:
    from llmline.training import LoraTuneConfig, train_lora

    config = LoraTuneConfig(
        train_steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=min(3, args.steps),
        evaluation_interval=args.steps,
        checkpoint_every=args.steps,
        target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
        device=device.type,
        seed=args.seed,
    )
    reset_peak(device)
    started = time.perf_counter()
    result = train_lora(
        config, model_dir=model_dir, dataset_dir=data_dir, output_dir=work / "run", resume=False
    )
    sync(device)
    wall = time.perf_counter() - started
    metrics = json.loads(result.metrics_path.read_text(encoding="utf-8"))
    history = metrics["history"]
    losses = [row["train_loss"] for row in history]
    # Steady state: every step after the first (which pays for CUDA's warm-up),
    # excluding the last (which also evaluates and writes a checkpoint).
    steady = history[1:-1] if len(history) > 2 else history
    steady_s = sum(row["step_time_s"] for row in steady)
    steady_tokens = sum(row["tokens"] for row in steady)
    head = statistics.fmean(losses[: max(1, len(losses) // 5)])
    tail = statistics.fmean(losses[-max(1, len(losses) // 5) :])
    return {
        "config": config.model_dump(mode="json"),
        "device": result.device,
        "steps": result.steps,
        "wall_time_s": round(wall, 2),
        "trainer_tokens_per_s": round(result.tokens_per_s, 1),
        "steady_steps": len(steady),
        "steady_steps_per_s": round(len(steady) / steady_s, 3) if steady_s else None,
        "steady_tokens_per_s": round(steady_tokens / steady_s, 1) if steady_s else None,
        "first_step_s": round(history[0]["step_time_s"], 3),
        "tokens_per_step": round(statistics.fmean(row["tokens"] for row in history), 1),
        "loss_first": round(losses[0], 4),
        "loss_last": round(losses[-1], 4),
        "loss_mean_first_fifth": round(head, 4),
        "loss_mean_last_fifth": round(tail, 4),
        "loss_went_down": tail < head,
        "final_eval_loss": result.final_eval_loss,
        "peak_gpu_mib": peak_mib(device),
        "trainable_parameters": metrics["parameters"]["trainable"],
        "loss_curve": [round(x, 4) for x in losses],
    }


# -- (2) packed and padded batches agree ----------------------------------------
def check_packing(model_dir: Path, data_dir: Path, device: torch.device) -> dict[str, Any]:
    from llmline.training.data import collate_packed, collate_padded, encode_rows, read_split
    from llmline.training.lora.trainer import _loss_sum
    from llmline.training.model import load_base_model

    loaded, tokenizer = load_base_model(model_dir, device)
    model: Any = loaded
    model.config.use_cache = False
    model.eval()
    rows = read_split(data_dir / "eval.jsonl")[:8]
    examples = encode_rows(tokenizer, rows, 256).examples
    with torch.inference_mode():
        padded_batch = collate_padded(examples).to(device)
        packed_batch = collate_packed(examples, 256).to(device)
        padded = _loss_sum(model, padded_batch).item() / padded_batch.targets.numel()
        packed = _loss_sum(model, packed_batch).item() / packed_batch.targets.numel()
    del model, loaded
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "padded_loss": round(padded, 5),
        "packed_loss": round(packed, 5),
        "abs_diff": round(abs(padded - packed), 5),
        "packed_rows": int(packed_batch.input_ids.shape[0]),
        "autocast_bf16": device.type == "cuda",
    }


# -- (3) serving through the batching engine ----------------------------------------
@dataclass
class _Done:
    completion_tokens: int
    finish_reason: str
    ttft_ms: float | None


def check_generation(
    model_dir: Path, device: torch.device, dtype: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmline.gateway.providers._batching import BatchEngine, Row, RowDone, SamplingParams
    from llmline.models import _hf

    # What llmline.models.load_model does for the embedded provider.
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=_hf.resolve_dtype(dtype), local_files_only=True
    )
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model.to(_hf.resolve_device(device.type))
    model.eval()
    engine = BatchEngine(
        model, tokenizer, max_batch_size=args.gen_batch, batch_wait_s=0.05, name="cuda-check"
    )
    # Random weights may pick end-of-sequence early; every row runs to max_tokens.
    engine.eos_ids = frozenset()
    prompts = []
    for row in synthetic_rows(args.gen_batch, args.seed + 7):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": row["input_text"]}],
            tokenize=False,
            add_generation_prompt=True,
        )
        prompts.append(list(tokenizer(str(text), add_special_tokens=False)["input_ids"]))

    def run(batch: list[list[int]]) -> tuple[float, list[_Done]]:
        events: queue.Queue[Any] = queue.Queue()
        params = SamplingParams(max_tokens=args.new_tokens)
        rows = [Row(ids, params, sink=events.put) for ids in batch]
        started = time.perf_counter()
        for row in rows:
            engine.submit(row)
        done: list[_Done] = []
        while len(done) < len(rows):
            event = events.get(timeout=600)
            if isinstance(event, BaseException):
                raise event
            if isinstance(event, RowDone):
                done.append(_Done(event.completion_tokens, event.finish_reason, event.ttft_ms))
        return time.perf_counter() - started, done

    def measure(batch: list[list[int]]) -> dict[str, Any]:
        run(batch)  # warm-up (CUDA kernels, allocator)
        times: list[float] = []
        ttfts: list[float] = []
        tokens = 0
        for _ in range(args.repeats):
            elapsed, done = run(batch)
            times.append(elapsed)
            tokens = sum(d.completion_tokens for d in done)
            ttfts.extend(d.ttft_ms for d in done if d.ttft_ms is not None)
        median = statistics.median(times)
        return {
            "rows": len(batch),
            "new_tokens_total": tokens,
            "median_s": round(median, 4),
            "tokens_per_s": round(tokens / median, 1),
            "ttft_ms_median": round(statistics.median(ttfts), 2) if ttfts else None,
            "finish_reasons": sorted({d.finish_reason for d in done}),
        }

    reset_peak(device)
    try:
        single = measure(prompts[:1])
        batched = measure(prompts)
        stats = engine.stats
    finally:
        engine.close()
    result = {
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "new_tokens_per_row": args.new_tokens,
        "prompt_tokens": [len(p) for p in prompts],
        "single": single,
        "batched": batched,
        "batched_speedup": round(batched["tokens_per_s"] / single["tokens_per_s"], 2),
        "max_batch_seen": stats.max_batch_seen,
        "peak_gpu_mib": peak_mib(device),
    }
    if device.type == "cuda":
        model.to("cpu")
        torch.cuda.empty_cache()
    return result


# -- the machine -----------------------------------------------------------------
def machine(device: torch.device) -> dict[str, Any]:
    import peft
    import transformers

    info: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        # Other work on the machine slows the CPU figures; recorded to judge them.
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "device": device.type,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_mib"] = props.total_memory // 2**20
        info["gpu_capability"] = f"{props.major}.{props.minor}"
        info["gpu_sms"] = props.multi_processor_count
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
        smi = shutil.which("nvidia-smi")
        if smi:
            query = "--query-gpu=name,driver_version,memory.total"
            out = subprocess.run(
                [smi, query, "--format=csv,noheader"], capture_output=True, text=True, check=False
            )
            info["nvidia_smi"] = out.stdout.strip()
    return info


# -- the command -------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    out_dir = os.environ.get("OUT")
    default_out = Path(out_dir) / "cuda_check.json" if out_dir else Path("cuda_check.json")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--tokenizer", type=Path, default=Path(".cuda_check/tokenizer"))
    parser.add_argument("--export-tokenizer", type=Path, metavar="DIR", help="make it; exit")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--gen-batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], choices=("train", "packing", "generate"))
    parser.add_argument("--out", type=Path, default=default_out)
    return parser.parse_args(argv)


def summary_lines(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    where = m.get("gpu") or f"CPU ({m['cpu_threads']} threads)"
    lines = [f"cuda_check on {where}, torch {m['torch']}, transformers {m['transformers']}"]
    if t := report.get("training"):
        lines.append(
            f"train: {t['steps']} steps x batch {t['config']['batch_size']}: "
            f"{t['steady_steps_per_s']} steps/s, {t['steady_tokens_per_s']} tok/s (steady), "
            f"first step {t['first_step_s']} s, loss {t['loss_first']} -> {t['loss_last']} "
            f"(down: {t['loss_went_down']}), peak GPU {t['peak_gpu_mib']} MiB"
        )
    if p := report.get("packing"):
        lines.append(
            f"packing: padded {p['padded_loss']} vs packed {p['packed_loss']} "
            f"(|diff| {p['abs_diff']})"
        )
    for g in report.get("generation", []):
        lines.append(
            f"generate {g['dtype']}: single {g['single']['tokens_per_s']} tok/s, "
            f"batch {g['batched']['rows']} {g['batched']['tokens_per_s']} tok/s "
            f"(x{g['batched_speedup']}), peak GPU {g['peak_gpu_mib']} MiB"
        )
    lines.extend(f"ERROR {e}" for e in report["errors"])
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.export_tokenizer:
        export_tokenizer(args.export_tokenizer)
        print(f"tokenizer saved in {args.export_tokenizer}")
        return 0
    if not (args.tokenizer / "tokenizer.json").is_file():
        print(f"no tokenizer.json in {args.tokenizer}: run --export-tokenizer first")
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"CUDA is not available here (torch {torch.__version__}): use --device cpu")
        return 2
    device = torch.device(args.device)
    report: dict[str, Any] = {"machine": machine(device), "errors": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="llmline-cuda-check-") as tmp:
        work = Path(tmp)
        model_dir, data_dir = work / "model", work / "data"
        build_model(model_dir, args.tokenizer, args.seed)
        write_dataset(data_dir, args.seed)
        checks: list[tuple[str, str, Callable[[], Any]]] = [
            ("train", "training", lambda: check_training(model_dir, data_dir, work, device, args)),
            ("packing", "packing", lambda: check_packing(model_dir, data_dir, device)),
            (
                "generate",
                "generation",
                lambda: [
                    check_generation(model_dir, device, dtype, args) for dtype in (None, "bfloat16")
                ],
            ),
        ]
        for name, key, check in checks:
            if name in args.skip:
                continue
            try:
                report[key] = check()
            except Exception as exc:  # record it and go on: device time is scarce
                report["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
            args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print("\n".join(summary_lines(report)))
    print(f"results in {args.out}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

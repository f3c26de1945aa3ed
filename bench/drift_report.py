"""Time ``llmline monitor drift`` on 100k logged prompts.

Builds a temporary workspace (synthetic warehouse → python-faq dataset → a
tuned model version recorded as trained on it), writes ``--rows`` request
rows into the last 24 h of its request log (prompts are the dataset's
questions with their digits redrawn, answers its answers with 2 % refusals, stored
toxicity scores as the gateway writes them), then times the report, each
scenario in a fresh Python process:

- ``cold``: empty caches: MiniLM loads, both samples are embedded, the
  tuning answers scored;
- ``new prompts``: only the reference sample is cached (as after the first
  report against a dataset version), every sampled prompt is new;
- ``hourly``: the report of the window one hour earlier ran before (as
  when it is scheduled hourly): the consistent sample shares most prompts;
- ``warm``: the same window again: everything is cached.

    .venv/bin/python bench/drift_report.py --rows 100000 --output bench/results/drift_report.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def prepare(root: Path, rows: int, end: datetime) -> None:
    from llmline.monitoring.drift_data import load_reference
    from llmline.testing.drift import REFUSAL, log_requests, tuned_workspace

    ws, dataset = tuned_workspace(root, 1200)
    reference = load_reference(ws, dataset)
    rng = random.Random(0)
    prompts = [_vary(rng.choice(reference.inputs), rng) for _ in range(rows)]
    answers = [
        REFUSAL if rng.random() < 0.02 else rng.choice(reference.outputs) for _ in range(rows)
    ]
    log_requests(
        ws,
        prompts,
        answers,
        start=end - timedelta(hours=24),
        step=timedelta(seconds=86_000 / rows),
        # What the gateway stores when its toxicity scanner ran on the answer.
        safety={"input": {}, "output": {"scores": {"toxic": 0.01}}},
    )
    ws.close()


def _vary(text: str, rng: random.Random) -> str:
    """The text with its digits redrawn: unique, of the same length and kind."""
    return re.sub(r"\d", lambda _: str(rng.randrange(10)), text)


def cache_reference_only(root: Path, sample: int) -> None:
    """Leave only the reference sample's embeddings in the cache."""
    from llmline.monitoring import drift_stats
    from llmline.monitoring.drift import drift_dir
    from llmline.monitoring.drift_data import EmbeddingCache, load_reference
    from llmline.rag.encoder import MiniLMEncoder
    from llmline.workspace import Workspace

    ws = Workspace(root / "ws")
    shutil.rmtree(drift_dir(ws) / "cache", ignore_errors=True)
    info = load_reference(ws, "python-faq")
    chosen = drift_stats.subsample(len(info.inputs), sample, 1)
    cache = EmbeddingCache(drift_dir(ws) / "cache", MiniLMEncoder(batch_size=64))
    cache.embed([info.inputs[i][:2000] for i in chosen])
    cache.save()
    ws.close()


def run_report(root: Path, sample: int, end: datetime) -> dict[str, Any]:
    """One report, timed inside this (fresh) process."""
    from llmline.monitoring.drift import DriftOptions, drift_report
    from llmline.workspace import Workspace

    ws = Workspace(root / "ws")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    report = drift_report(
        ws, "faq", window="24h", end=end, options=DriftOptions(embed_sample=sample)
    )
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    ws.close()
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "n_current": report.n_current,
        "status": report.status,
        "tests": {t.name: [t.statistic, t.p_value, t.status] for t in report.tests},
    }


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--samples", type=int, nargs="+", default=[250])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--output", default="")
    parser.add_argument("--child", nargs=3, metavar=("ROOT", "SAMPLE", "END"), default=None)
    parser.add_argument("--cache-reference", nargs=2, metavar=("ROOT", "SAMPLE"), default=None)
    args = parser.parse_args()
    if args.cache_reference:
        cache_reference_only(Path(args.cache_reference[0]), int(args.cache_reference[1]))
        print("{}")
        return
    if args.child:
        root, sample, end = Path(args.child[0]), int(args.child[1]), args.child[2]
        print(json.dumps(run_report(root, sample, datetime.fromisoformat(end))))
        return
    from llmline.monitoring.drift import drift_dir
    from llmline.workspace import Workspace

    root = args.workdir or Path(tempfile.mkdtemp(prefix="llmline-drift-"))
    end = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    prepare(root, args.rows, end)
    results: dict[str, Any] = {
        "rows": args.rows,
        "prepare_s": round(time.perf_counter() - started, 1),
        "date": f"{datetime.now(UTC):%Y-%m-%d}",
        "end": end.isoformat(),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(),
        "load_before": os.getloadavg()[0],
        "runs": [],
    }
    cache = drift_dir(Workspace(root / "ws")) / "cache"
    for sample in args.samples:
        for scenario in ("cold", "new prompts", "hourly", "warm"):
            if scenario != "warm":
                shutil.rmtree(cache, ignore_errors=True)
            if scenario == "new prompts":
                _child("--cache-reference", str(root), str(sample))
            if scenario == "hourly":  # last hour's report ran; not timed
                _child("--child", str(root), str(sample), (end - timedelta(hours=1)).isoformat())
            run = _child("--child", str(root), str(sample), end.isoformat())
            results["runs"].append({"scenario": scenario, "sample": sample, **run})
            print(
                f"sample {sample:4d} {scenario:11s} {run['wall_s']:6.2f} s wall "
                f"{run['cpu_s']:6.2f} s CPU  {run['status']}",
                flush=True,
            )
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

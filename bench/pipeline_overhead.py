"""Pipeline orchestration overhead of kfp's local runner, and a cached quickstart.

Two measurements, in one run:

* ``noop``: a chain of ``--steps`` no-op KFP components run with
  ``kfp.local`` (subprocess runner, current interpreter), exactly as llmline
  runs its pipelines; first with an empty cache, then again fully cached.
  Wall time / steps is the per-step cost of orchestration alone (process
  start, kfp's executor, artifact bookkeeping) next to a bare
  ``python -c pass`` process, the floor any subprocess runner pays.
* ``quickstart``: ``llmline quickstart WORKSPACE`` re-run as a console
  command on a workspace where it already ran (``--workspace``), so every
  step is a cache hit: the end-to-end time a user waits, interpreter start
  and imports included.

Usage::

    .venv/bin/python bench/pipeline_overhead.py --steps 5 --workspace demo-workspace

Figures are reported (markdown table and ``--output`` JSON), never asserted.
"""

# No `from __future__ import annotations`: KFP reads the components' annotations at runtime.

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _timed(command: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def noop_pipeline_seconds(steps: int, root: Path) -> dict[str, float]:
    """Wall times of one uncached and one cached run of a ``steps``-long chain."""
    from kfp import dsl, local

    @dsl.component(install_kfp_package=False)
    def bump(value: int) -> int:
        return value + 1

    @dsl.pipeline(name="noop-chain")
    def chain(start: int = 0) -> int:
        task = bump(value=start)
        for _ in range(steps - 1):
            task = bump(value=task.output)
        out: int = task.output
        return out

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root / "root"),
        enable_caching=True,
        cache_root=str(root / "cache"),
    )
    times = {}
    for label in ("uncached", "cached"):
        start = time.perf_counter()
        result = chain(start=0)  # the second run finds every step cached
        times[label] = time.perf_counter() - start
        assert result.output == steps
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--workspace", type=Path, help="a workspace where quickstart ran")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    bare = min(_timed([sys.executable, "-c", "pass"]) for _ in range(args.repeat))
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(noop_pipeline_seconds(args.steps, Path(tmp)))
    uncached = min(r["uncached"] for r in runs) / args.steps
    cached = min(r["cached"] for r in runs) / args.steps
    rows = [
        ("bare `python -c pass` process", bare),
        ("kfp.local no-op step, uncached", uncached),
        ("kfp.local no-op step, cached", cached),
    ]
    quickstart = None
    if args.workspace is not None:
        script = Path(sys.executable).with_name("llmline")
        env_cmd = [str(script), "quickstart", str(args.workspace), "--json"]
        quickstart = min(_timed(env_cmd) for _ in range(args.repeat))
        rows.append(("`llmline quickstart` fully cached (end to end)", quickstart))

    print(f"| measurement (best of {args.repeat}) | seconds |\n|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.2f} |")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        document: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "python": sys.version.split()[0],
            "steps": args.steps,
            "bare_process_s": bare,
            "noop_step_uncached_s": uncached,
            "noop_step_cached_s": cached,
            "quickstart_cached_s": quickstart,
            "runs": runs,
        }
        args.output.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Benchmark ``llmline data build`` against a naive pandas export.

For every size (number of synthetic questions) the script

1. generates a Stack-Overflow-shaped DuckDB warehouse inside a fresh llmline
   workspace (``llmline.testing.workspace.synthetic_workspace``; not timed);
2. runs, each in its own fresh Python process so that peak RSS belongs to that
   run alone,

   * **llmline**: ``llmline.data.build(...)`` with the default ``python-faq``
     spec and a LIMIT no size reaches (so every python-tagged question
     flows): HTML
     clean-up, PII scrubbing, template, deterministic split, exact and
     MinHash/LSH near de-duplication, JSONL + Parquet per split, manifest,
     version record;
   * **naive**: what a quick script would do.  DuckDB runs the same join and
     filter and hands the whole result to pandas (``.df()``); the prompt
     template is applied with ``str.format`` row by row; the two columns
     ``input_text`` / ``output_text`` are written with
     ``DataFrame.to_json(orient="records", lines=True)``.  No cleaning, no
     PII scrubbing, no de-duplication, no split, no Parquet: it does strictly
     less work than llmline, and is deliberately left as a plain, reasonable
     implementation (neither tuned nor sabotaged);

3. records, per run, rows read from the warehouse, wall seconds of the timed
   call, rows/s (rows read / wall seconds) and the process's peak RSS
   (``getrusage(RUSAGE_SELF).ru_maxrss``, the kernel's high-water mark, which
   includes the interpreter and imported libraries).

The timed window is the work itself: for llmline the ``data.build`` call, for
the naive path connect → query → template → ``to_json``.  Process start-up and
imports are excluded from it and reported separately (``import_s``), as is the
RSS before the timed call (``rss_before_mb``).

Usage::

    .venv/bin/python bench/data_build.py --sizes 100000 1000000 \\
        --output bench/results/data_build.json

Performance is measured and reported here, never asserted by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_T0 = time.perf_counter()

DATASET = "bench-python-faq"
RESULT_PREFIX = "BENCH-RESULT "

# What ``filters: {limit: 2**62}`` renders to, minus the LIMIT: for llmline
# versions without FilterSpec (used for the before/after comparison).
LEGACY_SQL = """\
SELECT
  q.id AS id,
  CONCAT(q.title, '\\n\\n', q.body) AS question,
  a.body AS answer,
  q.tags AS tags,
  q.creation_date AS creation_date
FROM `bigquery-public-data.stackoverflow.posts_questions` AS q
INNER JOIN `bigquery-public-data.stackoverflow.posts_answers` AS a
  ON q.accepted_answer_id = a.id
WHERE REGEXP_CONTAINS(q.tags, r'python')
  AND q.creation_date >= TIMESTAMP '2000-01-01'
"""

# The same join and filter, written by hand for DuckDB, as the naive script would.
NAIVE_SQL = """\
SELECT q.id, q.title || chr(10) || chr(10) || q.body AS question, a.body AS answer
FROM posts_questions AS q
JOIN posts_answers AS a ON q.accepted_answer_id = a.id
WHERE regexp_matches(q.tags, 'python') AND q.creation_date >= TIMESTAMP '2000-01-01'
"""

TARGET_THROUGHPUT = 3.0  # llmline rows/s ≥ 3 × naive rows/s
TARGET_RSS_RATIO = 0.25  # llmline peak RSS ≤ 1/4 of naive, at the largest size
TARGET_RSS_SPREAD = 0.20  # llmline peak RSS within ±20 % between smallest and largest size


# -- child processes -----------------------------------------------------------------------


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


def _current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - not Linux
        return float("nan")


def _child_generate(workdir: Path, size: int, seed: int) -> dict[str, Any]:
    from llmline.prompts.registry import PromptRegistry
    from llmline.testing.workspace import synthetic_workspace

    root = workdir / "workspace"
    if root.exists():
        shutil.rmtree(root)
    started = time.perf_counter()
    ws = synthetic_workspace(root, size, seed=seed)
    spec = ws.settings.datasets["python-faq"]
    template = PromptRegistry(ws.metadata).get(spec.template).template.text
    warehouse = ws.settings.warehouse_url.removeprefix("duckdb:///")
    ws.close()
    info = {
        "size": size,
        "seed": seed,
        "workspace": str(root),
        "warehouse": str(Path(warehouse).resolve()),
        "warehouse_bytes": Path(warehouse).stat().st_size,
        "template": template,
        "generate_s": round(time.perf_counter() - started, 2),
    }
    (workdir / "bench.json").write_text(json.dumps(info, indent=2) + "\n", "utf-8")
    return info


def _child_llmline(info: dict[str, Any], profile: Path | None) -> dict[str, Any]:
    import llmline.data
    import llmline.data.builder  # import cost is not part of the timed call
    from llmline.data.spec import DatasetSpec
    from llmline.workspace import Workspace

    import_s = time.perf_counter() - _T0
    ws = Workspace(Path(info["workspace"]))
    # The default python-faq extraction (BigQuery dialect) with a LIMIT no
    # size reaches, so that every matching row flows.
    try:
        spec = DatasetSpec.model_validate({"filters": {"limit": 2**62}})
    except ValueError:  # an llmline from before FilterSpec: the same SQL, spelled out
        spec = DatasetSpec.model_validate({"sql": LEGACY_SQL})
    rss_before = _current_rss_mb()
    load = _load()
    cpu = _cpu_s()
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        started = time.perf_counter()
        result = profiler.runcall(llmline.data.build, DATASET, spec, workspace=ws)
        wall = time.perf_counter() - started
        _write_profile(profiler, profile)
    else:
        started = time.perf_counter()
        result = llmline.data.build(DATASET, spec, workspace=ws)
        wall = time.perf_counter() - started
    cpu = _cpu_s() - cpu
    peak = _peak_rss_mb()
    folder = Path(result.uri)
    out_bytes = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    ws.close()
    return {
        "rows_read": result.report.rows_read,
        "rows_written": result.report.rows_written,
        "wall_s": wall,
        "cpu_s": cpu,
        "load_before": load,
        "peak_rss_mb": peak,
        "rss_before_mb": rss_before,
        "import_s": import_s,
        "output_bytes": out_bytes,
        "status": result.status,
        "content_hash": result.content_hash,
        "report": result.to_dict()["report"],
    }


def _write_profile(profiler: Any, path: Path) -> None:
    import io
    import pstats

    profiler.dump_stats(str(path.with_suffix(".prof")))
    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf).strip_dirs()
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)
    path.write_text(buf.getvalue(), "utf-8")


def _child_naive(info: dict[str, Any], workdir: Path) -> dict[str, Any]:
    import duckdb
    import pandas as pd

    import_s = time.perf_counter() - _T0
    template: str = info["template"]
    out = workdir / "naive.jsonl"
    rss_before = _current_rss_mb()
    load = _load()
    cpu = _cpu_s()
    started = time.perf_counter()
    con = duckdb.connect(info["warehouse"], read_only=True)
    df = con.sql(NAIVE_SQL).df()
    con.close()
    frame = pd.DataFrame(
        {
            "input_text": [template.format(question=q) for q in df["question"]],
            "output_text": df["answer"],
        }
    )
    frame.to_json(out, orient="records", lines=True)
    wall = time.perf_counter() - started
    cpu = _cpu_s() - cpu
    return {
        "rows_read": len(df),
        "rows_written": len(frame),
        "wall_s": wall,
        "cpu_s": cpu,
        "load_before": load,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_mb": rss_before,
        "import_s": import_s,
        "output_bytes": out.stat().st_size,
    }


def _child(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir)
    if args.child == "generate":
        print(RESULT_PREFIX + json.dumps(_child_generate(workdir, args.child_size, args.seed)))
        return
    info = json.loads((workdir / "bench.json").read_text("utf-8"))
    started = time.perf_counter()
    try:
        if args.child == "llmline":
            profile = Path(args.child_profile) if args.child_profile else None
            result = _child_llmline(info, profile)
        else:
            result = _child_naive(info, workdir)
    except Exception as exc:  # a failed run is a result too (e.g. out of memory)
        failure = {
            "failed": True,
            "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
            "after_s": time.perf_counter() - started,
            "peak_rss_mb": _peak_rss_mb(),
        }
        print(RESULT_PREFIX + json.dumps(failure), flush=True)
        raise
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# -- orchestration ---------------------------------------------------------------------------


def _spawn(mode: str, workdir: Path, extra: list[str] | None = None) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--workdir",
        str(workdir),
    ]
    started = time.perf_counter()
    proc = subprocess.run(cmd + (extra or []), capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - started
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line.removeprefix(RESULT_PREFIX))
            result["process_s"] = process_s
            return result
    sys.stderr.write(proc.stdout + proc.stderr)
    if mode == "generate":
        raise SystemExit(f"generating the warehouse in {workdir} failed ({proc.returncode})")
    # Killed before it could report (the kernel's OOM killer, say).
    return {"failed": True, "error": f"exit status {proc.returncode}", "process_s": process_s}


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if not r.get("failed")]
    if not ok:
        return {
            "failed": True,
            "error": runs[0]["error"],
            "peak_rss_mb": max((r.get("peak_rss_mb", 0.0) for r in runs), default=0.0),
        }
    walls = [r["wall_s"] for r in ok]
    rows = ok[0]["rows_read"]
    wall = statistics.median(walls)
    return {
        "rows_read": rows,
        "rows_written": ok[0]["rows_written"],
        "wall_s": round(wall, 2),
        "wall_s_all": [round(w, 2) for w in walls],
        "cpu_s": round(statistics.median(r["cpu_s"] for r in ok), 2),
        "load_before": [round(r["load_before"], 2) for r in ok],
        "rows_per_s": round(rows / wall, 1),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in ok), 1),
        "rss_before_mb": round(statistics.median(r["rss_before_mb"] for r in ok), 1),
        "import_s": round(statistics.median(r["import_s"] for r in ok), 2),
        "output_bytes": ok[0]["output_bytes"],
        "failed_runs": len(runs) - len(ok),
    }


def _machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    cpu = ""
    mem_gib = float("nan")
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem_gib = round(kib / 2**20, 1)
    except (OSError, StopIteration):  # pragma: no cover - not Linux
        cpu = platform.processor()
    versions = {}
    for pkg in ("llmline", "duckdb", "pyarrow", "pandas", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            versions[pkg] = "not installed"
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": mem_gib,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _ratios(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios per size, and the verdict against each target (None: not measurable)."""
    for r in results:
        both = not r["llmline"].get("failed") and not r["naive"].get("failed")
        r["throughput_ratio"] = (
            round(r["llmline"]["rows_per_s"] / r["naive"]["rows_per_s"], 3) if both else None
        )
        r["rss_ratio"] = (
            round(r["llmline"]["peak_rss_mb"] / r["naive"]["peak_rss_mb"], 3) if both else None
        )
    small, large = results[0], results[-1]
    throughput = [r["throughput_ratio"] for r in results]
    spread = None
    if (
        len(results) > 1
        and not small["llmline"].get("failed")
        and not large["llmline"].get("failed")
    ):
        spread = round(large["llmline"]["peak_rss_mb"] / small["llmline"]["peak_rss_mb"] - 1, 3)
    return {
        "throughput": {
            "target": f">= {TARGET_THROUGHPUT}x naive rows/s",
            "measured": {str(r["size"]): r["throughput_ratio"] for r in results},
            "met": all(t is not None and t >= TARGET_THROUGHPUT for t in throughput),
        },
        "peak_rss_vs_naive": {
            "target": f"<= {TARGET_RSS_RATIO} x naive peak RSS at {large['size']} questions",
            "measured": large["rss_ratio"],
            "met": large["rss_ratio"] is not None and large["rss_ratio"] <= TARGET_RSS_RATIO,
        },
        "peak_rss_streaming": {
            "target": f"llmline peak RSS within +/-{TARGET_RSS_SPREAD:.0%} between "
            f"{small['size']} and {large['size']} questions",
            "measured": spread,
            # None: not measurable (one size only, or a failed run).
            "met": None if spread is None else abs(spread) <= TARGET_RSS_SPREAD,
        },
    }


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| questions | rows read | path | wall s | CPU s | rows/s | peak RSS MB "
        "| throughput ×naive | RSS ×naive |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for path in ("llmline", "naive"):
            s = r[path]
            if s.get("failed"):
                lines.append(
                    f"| {r['size']:,} | | {path} | failed: {s['error'][:60]} | | | "
                    f"{s['peak_rss_mb']:,.0f} | | |"
                )
                continue
            tp = rss = ""
            if path == "llmline" and r["throughput_ratio"] is not None:
                tp, rss = f"{r['throughput_ratio']:.2f}", f"{r['rss_ratio']:.2f}"
            lines.append(
                f"| {r['size']:,} | {s['rows_read']:,} | {path} | {s['wall_s']:.1f} | "
                f"{s['cpu_s']:.1f} | {s['rows_per_s']:,.0f} | {s['peak_rss_mb']:,.0f} | "
                f"{tp} | {rss} |"
            )
    return "\n".join(lines)


def _orchestrate(args: argparse.Namespace) -> None:
    workroot = Path(args.workdir or Path(tempfile.gettempdir()) / "llmline-bench").resolve()
    workroot.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for size in args.sizes:
        workdir = workroot / f"so-{size}-seed{args.seed}"
        workdir.mkdir(exist_ok=True)
        marker = workdir / "bench.json"
        if args.reuse and marker.exists():
            info = json.loads(marker.read_text("utf-8"))
            print(f"[{size:,}] reusing warehouse {info['warehouse']}", file=sys.stderr)
        else:
            print(f"[{size:,}] generating warehouse …", file=sys.stderr)
            info = _spawn(
                "generate", workdir, ["--child-size", str(size), "--seed", str(args.seed)]
            )
            print(f"[{size:,}] generated in {info['generate_s']} s", file=sys.stderr)
        per_path: dict[str, list[dict[str, Any]]] = {"llmline": [], "naive": []}
        for rep in range(args.repeat):
            # Alternate the order so neither path always runs on a warmer cache.
            order = ("llmline", "naive") if rep % 2 == 0 else ("naive", "llmline")
            for path in order:
                run = _spawn(path, workdir)
                run.update(size=size, path=path, repeat=rep)
                runs.append(run)
                per_path[path].append(run)
                print(
                    f"[{size:,}] {path:8s} run {rep + 1}/{args.repeat}: {_describe(run)}",
                    file=sys.stderr,
                )
        summary = {path: _summarise(per_path[path]) for path in ("llmline", "naive")}
        counts = {summary[p].get("rows_read") for p in summary if not summary[p].get("failed")}
        if len(counts) > 1:
            print(f"[{size:,}] WARNING: the two paths read different row counts", file=sys.stderr)
        if args.profile:
            prof = workdir / "llmline-profile.txt"
            _spawn("llmline", workdir, ["--child-profile", str(prof)])
            print(f"[{size:,}] cProfile of llmline written to {prof}", file=sys.stderr)
        results.append(
            {
                "size": size,
                "generate_s": info["generate_s"],
                "warehouse_bytes": info["warehouse_bytes"],
                **summary,
            }
        )
    targets = _ratios(results)
    table = _table(results)
    report = {
        "benchmark": "data_build",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": _machine(),
        "repeat": args.repeat,
        "seed": args.seed,
        "results": results,
        "targets": targets,
        "runs": runs,
    }
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", "utf-8")
        print(f"results written to {out}", file=sys.stderr)
    print(table)
    print()
    for name, target in targets.items():
        verdict = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        print(f"- {name}: {target['target']}: measured {target['measured']} → {verdict}")


def _describe(run: dict[str, Any]) -> str:
    if run.get("failed"):
        rss = f", peak RSS {run['peak_rss_mb']:,.0f} MB" if "peak_rss_mb" in run else ""
        return f"FAILED ({run['error']}){rss}"
    return (
        f"{run['wall_s']:.1f} s, {run['rows_read'] / run['wall_s']:,.0f} rows/s, "
        f"cpu {run['cpu_s']:.1f} s, peak RSS {run['peak_rss_mb']:,.0f} MB, "
        f"load before {run['load_before']:.1f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="questions per warehouse"
    )
    parser.add_argument(
        "--workdir", help="where warehouses and outputs go (default: $TMPDIR/llmline-bench)"
    )
    parser.add_argument(
        "--output", default="bench/results/data_build.json", help="JSON results file ('' for none)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per path and size")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse warehouses already generated in --workdir"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the timed runs, one more llmline run under cProfile (not timed)",
    )
    parser.add_argument("--child", choices=["generate", "llmline", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--child-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-profile", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.child:
        _child(args)
    else:
        _orchestrate(args)


if __name__ == "__main__":
    main()

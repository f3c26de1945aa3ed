"""Model drift: re-evaluating a (tiny, real) registered model on a canary
eval set, comparing with its stored evaluation, and the drift report
picking the outcome up."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from llmline.errors import NotFoundError
from llmline.evaluation import EvalStore
from llmline.monitoring.drift import DriftOptions, NoReferenceError, drift_report
from llmline.monitoring.drift_reeval import latest_reeval, reevaluate_champion
from llmline.testing.drift import log_requests, off_topic_prompts
from llmline.workspace import Workspace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHEAP = {"limit": 3, "max_new_tokens": 4, "semantic": False, "device": "cpu"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """``tiny@1`` (a tiny random Llama, imported as a base model) and a
    built python-faq dataset."""
    from llmline.data import build
    from llmline.models import import_model
    from llmline.testing.models import tiny_causal_lm
    from llmline.testing.workspace import synthetic_workspace

    root = tmp_path_factory.mktemp("reeval")
    ws = synthetic_workspace(root / "ws", 80)
    import_model(ws, tiny_causal_lm(root / "tiny"), name="tiny", verify=False)
    build("python-faq", workspace=ws)
    yield ws
    ws.close()


def test_first_run_is_the_baseline_then_unchanged_scores_are_ok(workspace: Workspace) -> None:
    first = reevaluate_champion(workspace, "tiny", eval_set="python-faq", **CHEAP)  # type: ignore[arg-type]
    assert first.model_version == "tiny@1"
    assert first.status == "insufficient data"
    assert first.tests and {t.kind for t in first.tests} == {"model"}
    assert any("baseline" in note for note in first.notes)

    second = reevaluate_champion(workspace, "tiny", eval_set="python-faq", **CHEAP)  # type: ignore[arg-type]
    assert second.status == "ok", second.tests
    chrf = next(t for t in second.tests if t.name == "eval_chrf")
    assert chrf.statistic == 0.0  # greedy decoding of the same model: the same answers
    assert len(EvalStore(workspace.metadata).list("tiny@1")) == 2
    stored = latest_reeval(workspace, "tiny@1")
    assert stored is not None and stored.created_at == second.created_at


def test_a_drop_against_the_stored_evaluation_is_drift(workspace: Workspace) -> None:
    store = EvalStore(workspace.metadata)
    newest = store.list("tiny@1")[-1]
    better = {**newest.metrics, "chrf": newest.metrics["chrf"] * 2 + 10}
    store.save(replace(newest, id=None, metrics=better, created_at=datetime.now(UTC)))

    report = reevaluate_champion(workspace, "tiny", eval_set="python-faq", **CHEAP)  # type: ignore[arg-type]
    chrf = next(t for t in report.tests if t.name == "eval_chrf")
    assert chrf.status == "drift" and chrf.statistic is not None and chrf.statistic < -0.1
    assert report.status == "drift"


def test_the_drift_report_includes_the_latest_reeval(workspace: Workspace) -> None:
    end = datetime.now(UTC)
    log_requests(
        workspace,
        off_topic_prompts(40),
        ["ok"] * 40,
        start=end - timedelta(minutes=30),
        model_version="tiny@1",
    )
    report = drift_report(
        workspace,
        "faq",
        end=end,
        reference="python-faq",
        options=DriftOptions(embed_sample=40),
        plot=False,
        save=False,
    )
    model_tests = [t for t in report.tests if t.kind == "model"]
    assert model_tests and "re-evaluated" in model_tests[0].detail
    assert report.status == "drift"


def test_user_errors(workspace: Workspace) -> None:
    with pytest.raises(NoReferenceError, match="--eval-set"):
        reevaluate_champion(workspace, "tiny", **CHEAP)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        reevaluate_champion(workspace, "no-such-model", eval_set="python-faq", **CHEAP)  # type: ignore[arg-type]


def test_a_deployment_is_reevaluated_through_its_live_model(workspace: Workspace) -> None:
    from llmline.gateway.deployments.api import create_deployment
    from llmline.gateway.deployments.spec import DeploymentSpec

    create_deployment(workspace, DeploymentSpec(name="faq-live", models=["tiny@1"]))
    report = reevaluate_champion(workspace, "faq-live", eval_set="python-faq", **CHEAP)  # type: ignore[arg-type]
    assert (report.deployment, report.model_version) == ("faq-live", "tiny@1")
    assert {t.kind for t in report.tests} == {"model"}

"""SLO reports over a seeded request log: who counts, good and bad,
attainment, error budget, multi-window burn rates and the status they give."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from llmline.errors import ConfigError
from llmline.monitoring.config import SloSpec
from llmline.monitoring.slo import CONDITIONS, slo_report, slo_status
from llmline.settings import Settings
from llmline.workspace import Workspace, init_workspace
from tests.monitoring.ops_support import NOW, add_config, many, seed

M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws", load_sample_data=False)


def _latency_rows() -> list[dict[str, object]]:
    return [
        *many(5, M, latency_ms=100.0),
        *many(5, 2 * M, latency_ms=900.0),  # slow: bad
        *many(40, 30 * M, latency_ms=499.0),
        *many(50, 3 * H, latency_ms=500.0),  # at the threshold: still good
        *many(7, 2 * M, latency_ms=900.0, status=429),  # refused: not in a latency SLO
        *many(3, 2 * M, latency_ms=900.0, deployment="other"),  # another deployment
        *many(9, 8 * D, latency_ms=900.0),  # outside the 7-day window
    ]


FAST = SloSpec(
    name="fast", kind="latency", objective=0.9, threshold_ms=500, deployment="faq", window="7d"
)


def test_latency_slo_counts_successful_requests_of_its_deployment(ws: Workspace) -> None:
    seed(ws, _latency_rows())
    status = slo_status(ws.metadata, FAST, now=NOW)
    assert (status.total, status.good, status.bad) == (100, 95, 5)
    assert status.attainment == 0.95
    assert status.error_budget_remaining == 0.5  # 10 bad allowed, 5 spent
    # 5 of 10 bad in the last 5 minutes: 0.5 / 0.1 budget; 5 of 50 over 1 h; 5 of 100 over 6 h.
    assert status.burn_rates == {
        "5m": 5.0, "30m": 1.0, "1h": 1.0, "6h": 0.5, "24h": 0.5, "3d": 0.5,
    }  # fmt: skip
    # For a 7-day SLO the workbook's thresholds scale: 3.36 (1h), 1.4 (6h), 0.2333 (3d).
    assert status.firing == ["ticket: burn rate 0.5 over 3d and 0.5 over 6h > 0.233333"]
    assert status.status == "at-risk"


def test_error_rate_and_availability_judge_statuses_differently(ws: Workspace) -> None:
    seed(
        ws,
        [
            *many(90, H),
            *many(4, H, status=500),
            *many(3, H, status=503),
            *many(3, H, status=404),  # the caller's mistake: good for both
        ],
    )
    errors = SloSpec(name="errors", kind="error_rate", objective=0.95)
    available = SloSpec(name="up", kind="availability", objective=0.95)
    by_name = {s.name: s for s in slo_report(ws, now=NOW, slos=[errors, available])}
    assert (by_name["errors"].bad, by_name["errors"].attainment) == (7, 0.93)
    assert by_name["errors"].status == "breached"
    assert by_name["errors"].error_budget_remaining == pytest.approx(-0.4)
    assert (by_name["up"].bad, by_name["up"].attainment) == (3, 0.97)
    assert by_name["up"].error_budget_remaining == pytest.approx(0.4)


def test_fast_burn_pages_while_the_month_is_still_within_budget(ws: Workspace) -> None:
    seed(ws, [*many(5000, 10 * D), *many(18, 2 * M), *many(2, 2 * M, status=500)])
    slo = SloSpec(name="errors", kind="error_rate", objective=0.999, window="30d")
    status = slo_status(ws.metadata, slo, now=NOW)
    assert status.attainment == pytest.approx(5018 / 5020, abs=1e-6)
    assert status.error_budget_remaining is not None and status.error_budget_remaining > 0
    assert status.burn_rates["1h"] == status.burn_rates["5m"] == 100.0  # 10 % bad / 0.1 %
    assert status.firing[0].startswith("page: burn rate 100 over 1h and 100 over 5m > 14.4")
    assert status.status == "at-risk"


def test_ok_and_no_data(ws: Workspace) -> None:
    seed(ws, [*many(1000, 2 * D), *many(1, 2 * D, status=500)])
    slo = SloSpec(name="errors", kind="error_rate", objective=0.99)
    status = slo_status(ws.metadata, slo, now=NOW)
    assert (status.status, status.firing, status.burn_rates["1h"]) == ("ok", [], None)
    empty = slo_status(ws.metadata, slo.model_copy(update={"deployment": "none"}), now=NOW)
    assert (empty.total, empty.attainment, empty.status) == (0, None, "no-data")
    assert empty.to_dict()["error_budget_remaining"] is None


def test_workbook_thresholds_for_a_30_day_slo() -> None:
    assert [round(c.threshold(30 * D), 6) for c in CONDITIONS] == [14.4, 6.0, 1.0]


def test_report_reads_the_workspace_slos(ws: Workspace) -> None:
    ws = add_config(
        ws,
        "monitoring:\n  slos:\n"
        "    - {name: fast, kind: latency, objective: 0.9, threshold_ms: 500, window: 7d}\n"
        "    - {name: errors, kind: error_rate, objective: 0.99}\n",
    )
    seed(ws, _latency_rows())
    assert [s.name for s in slo_report(ws, now=NOW)] == ["fast", "errors"]


@pytest.mark.parametrize(
    ("slo", "message"),
    [
        ("{name: a, kind: latency, objective: 0.9}", "a latency SLO needs threshold_ms"),
        ("{name: a, kind: error_rate, objective: 0.9, threshold_ms: 5}", "latency SLOs only"),
        ("{name: a, kind: error_rate, objective: 1.5}", "less than 1"),
        ("{name: a, kind: error_rate, objective: 0.9, window: 1 month}", "invalid duration"),
        ("{name: a, kind: p99, objective: 0.9}", "monitoring.slos.0.kind"),
    ],
)
def test_bad_slos_fail_at_load(ws: Workspace, slo: str, message: str) -> None:
    (ws.root / "llmline.yaml").write_text(f"monitoring:\n  slos:\n    - {slo}\n")
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.load(ws.root)
    assert str(caught.value).startswith(f"{ws.root / 'llmline.yaml'}: monitoring.slos")


def test_duplicate_slo_names_fail_at_load(ws: Workspace) -> None:
    (ws.root / "llmline.yaml").write_text(
        "monitoring:\n  slos:\n"
        "    - {name: a, kind: error_rate, objective: 0.9}\n"
        "    - {name: a, kind: availability, objective: 0.9}\n"
    )
    with pytest.raises(ConfigError, match="SLO names must be unique: a repeated"):
        Settings.load(ws.root)


@pytest.mark.postgres
def test_same_figures_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    from llmline.monitoring.alert_rules import latency_percentile

    root = tmp_path / "pg"
    init_workspace(root, load_sample_data=False)
    settings = Settings.load(root).model_copy(update={"metadata_url": postgres_url})
    workspace = Workspace(root, settings)
    seed(workspace, _latency_rows())
    status = slo_status(workspace.metadata, FAST, now=NOW)
    assert (status.total, status.bad, status.attainment, status.status) == (
        100, 5, 0.95, "at-risk",
    )  # fmt: skip
    assert status.burn_rates["5m"] == 5.0
    p95, count = latency_percentile(
        workspace.metadata, 95, since=NOW - H, until=NOW, deployment="faq"
    )
    assert (p95, count) == (900.0, 50)  # rank 48 of 50: among the 5 slow ones
    workspace.close()

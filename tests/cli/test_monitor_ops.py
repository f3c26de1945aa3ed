"""``llmline monitor cost | slo | alerts`` and ``llmline loadtest``: output
(tables and ``--json``) over a seeded request log, and one-line user errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmline.gateway.deployments.spec import DeploymentSpec
from llmline.guard.keys import KeyStore
from llmline.workspace import Workspace, init_workspace
from tests.cli.conftest import CLI
from tests.monitoring.ops_support import add_config, row, seed, serve_gateway

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "alerts" / "llmline-alerts.example.yaml"
H = timedelta(hours=1)
SLOS = """monitoring:
  slos:
    - {name: chat-latency, kind: latency, objective: 0.95, threshold_ms: 2000}
    - {name: chat-errors, kind: error_rate, objective: 0.99}
"""


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = init_workspace(tmp_path / "ws", load_sample_data=False)
    now = datetime.now(UTC)
    seed(
        workspace,
        [
            row(H, now=now, key_id="k1", prompt_tokens=10, completion_tokens=5, cost_usd=0.25),
            row(H, now=now, key_id="k1", status=500, cost_usd=0.0),
            row(2 * H, now=now, key_id="k2", deployment="support", cost_usd=1.5),
            row(40 * 24 * H, now=now, key_id="k2", cost_usd=99.0),  # outside 30 days
        ],
    )
    return workspace


def _one_line_error(result, *parts: str) -> None:
    assert result.code == 1, result.out + result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    for part in parts:
        assert part in result.err


def test_cost_json_and_table(cli: CLI, ws: Workspace) -> None:
    report = cli("monitor", "cost", "--by", "key", "--json").json()
    assert [(r["group"], r["requests"], r["cost_usd"]) for r in report["rows"]] == [
        ("k2", 1, 1.5), ("k1", 2, 0.25),
    ]  # fmt: skip
    assert report["total"] == {
        "group": None, "requests": 3, "errors": 1, "prompt_tokens": 10,
        "completion_tokens": 5, "cost_usd": 1.75, "tokens": 15,
    }  # fmt: skip
    recent = cli("monitor", "cost", "--since", "90m", "--json").json()
    assert [(r["group"], r["requests"]) for r in recent["rows"]] == [("faq", 2)]
    table = cli("monitor", "cost", "--by", "deployment", "--window", "60d")
    assert table.code == 0
    assert "cost by deployment over 60d" in table.out
    assert "$99.25" in table.out and "$100.75" in table.out  # faq, then the total
    empty = cli("monitor", "cost", "--window", "1m")
    assert "no requests in this window" in empty.out


def test_cost_user_errors(cli: CLI, ws: Workspace) -> None:
    _one_line_error(cli("monitor", "cost", "--by", "user"), "--by must be one of key, deployment")
    _one_line_error(cli("monitor", "cost", "--window", "soon"), "invalid duration 'soon'")


def test_slo_without_and_with_slos(cli: CLI, ws: Workspace) -> None:
    none = cli("monitor", "slo")
    assert none.code == 0 and "no SLOs configured" in none.out
    assert cli("monitor", "slo", "--json").json() == []
    add_config(ws, SLOS)
    statuses = {s["name"]: s for s in cli("monitor", "slo", "--json").json()}
    errors = statuses["chat-errors"]
    assert (errors["total"], errors["bad"], errors["status"]) == (3, 1, "breached")
    assert statuses["chat-latency"]["total"] == 2  # the 500 is not in a latency SLO
    table = cli("monitor", "slo")
    assert "chat-errors" in table.out and "breached" in table.out


def test_alerts_check_evaluate_and_errors(cli: CLI, ws: Workspace, tmp_path: Path) -> None:
    _one_line_error(cli("monitor", "alerts"), "no alert rules: set monitoring.alert_rules")
    # The example names SLOs this workspace does not have yet.
    _one_line_error(cli("monitor", "alerts", "--check", str(EXAMPLE)), "slo: no SLO 'chat-errors'")
    add_config(ws, SLOS + f"  alert_rules: {EXAMPLE}\n")
    checked = cli("monitor", "alerts", "--check", str(EXAMPLE))
    assert checked.code == 0 and checked.out.strip() == f"{EXAMPLE}: 7 valid rule(s)"
    states = {s["name"]: s for s in cli("monitor", "alerts", "--json").json()}
    assert len(states) == 7
    assert states["DailySpend"]["state"] == "inactive" and states["DailySpend"]["value"] == 1.75
    assert states["PromptDrift"]["detail"].startswith("no drift report yet")
    rules = tmp_path / "mine.yaml"
    rules.write_text("- {name: spend, expr: cost_usd, window: 24h, threshold: 1}\n")
    (state,) = cli("monitor", "alerts", "--rules", str(rules), "--json").json()
    assert (state["state"], state["transition"]) == ("firing", "firing")
    assert "spend" in cli("monitor", "alerts", "--rules", str(rules)).out
    rules.write_text("- {name: spend, expr: cost_usd, window: 24h}\n")
    _one_line_error(
        cli("monitor", "alerts", "--check", str(rules)),
        f"{rules}: rules[0] ('spend'): threshold: Field required",
    )


def test_check_outside_a_workspace(cli: CLI, tmp_path: Path) -> None:
    result = cli("monitor", "alerts", "--check", str(EXAMPLE), workspace=tmp_path / "none")
    assert result.code == 0 and "7 valid rule(s)" in result.out


def test_reports_need_metrics_read(
    cli: CLI, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, _ = KeyStore(ws.metadata).create("app", "user")
    monkeypatch.setenv("LLMLINE_API_KEY", token)
    for command in (("cost",), ("slo",)):
        _one_line_error(cli("monitor", *command), "has role user, which may not metrics read")
    viewer, _ = KeyStore(ws.metadata).create("grafana", "viewer")
    monkeypatch.setenv("LLMLINE_API_KEY", viewer)
    assert cli("monitor", "cost", "--json").code == 0


def test_loadtest_command(cli: CLI, tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "lt", load_sample_data=False)
    with serve_gateway(ws, DeploymentSpec(name="echo", models=["fake:echo"])) as gw:
        args = ("loadtest", "echo", "--url", gw.url, "--rps", "10", "--duration", "0.5")
        data = cli(*args, "--json", workspace=ws.root).json()
        assert (data["sent"], data["ok"], data["error_count"]) == (5, 5, 0)
        assert set(data["latency_ms"]) == {"p50", "p90", "p99", "mean", "max"}
        text = cli(*args, "--stream", "--prompt", "hello {n}", workspace=ws.root).out
    assert "load test of echo" in text and "5 ok, 0 errors" in text
    assert "latency ms" in text and "TTFT ms" in text
    _one_line_error(
        cli("loadtest", "echo", "--rps", "1000", "--duration", "3600"),
        "refusing to send 3600000 requests",
    )

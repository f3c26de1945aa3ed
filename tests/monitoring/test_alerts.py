"""Alert rules: validation at load (file, rule and field in one line), each
kind of rule over a seeded request log, the pending → firing → resolved
state machine, the webhook (a real loopback receiver), and the gateway
evaluating rules in its lifespan."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from llmline.errors import ConfigError
from llmline.gateway.deployments.spec import DeploymentSpec
from llmline.monitoring.alert_rules import load_rules
from llmline.monitoring.alerts import AlertEvaluator, load_snapshot, snapshot_path
from llmline.monitoring.config import SloSpec
from llmline.testing import ServerThread, free_port
from llmline.workspace import Workspace, init_workspace
from tests.monitoring.ops_support import NOW, add_config, many, seed, serve_gateway

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "alerts" / "llmline-alerts.example.yaml"
M = timedelta(minutes=1)
SLOS = [
    SloSpec(name="chat-latency", kind="latency", objective=0.95, threshold_ms=2000),
    SloSpec(name="chat-errors", kind="error_rate", objective=0.99),
]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws", load_sample_data=False)


class Receiver:
    """A webhook receiver on loopback that keeps what it is sent."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            self.bodies.append(await request.json())
            return Response(status_code=status)

        self.server = ServerThread(app)

    @property
    def url(self) -> str:
        return self.server.url + "/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    with hook.server:
        yield hook


def _rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def _evaluator(ws: Workspace, tmp_path: Path, text: str, **options: Any) -> AlertEvaluator:
    rules = load_rules(_rules(tmp_path, text), slos=SLOS)
    return AlertEvaluator(ws, rules, slos=SLOS, **options)


# -- loading -------------------------------------------------------------------------------


def test_the_shipped_example_is_valid() -> None:
    rules = load_rules(EXAMPLE, slos=SLOS)
    assert [r.expr for r in rules] == [
        "slo_burn_rate", "slo_burn_rate", "slo_burn_rate", "error_rate", "latency_p95_ms",
        "cost_usd", "drift_status",
    ]  # fmt: skip
    assert rules[3].for_td == timedelta(minutes=5) and rules[3].labels == {"team": "ml-platform"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - {name: a, threshold: 1}", "rules[0] ('a'): expr: missing; choose one of"),
        ("- {name: a, expr: qps, threshold: 1}", "rules[0] ('a'): expr: 'qps'; choose one of"),
        (
            "- {name: ok, expr: cost_usd, threshold: 1}\n- {name: b, expr: cost_usd}",
            "rules[1] ('b'): threshold: Field required",
        ),
        ("- {name: a, expr: error_rate, threshold: 2}", "rules[0] ('a'): threshold: Input should"),
        ("- {name: a, expr: cost_usd, threshold: x}", "threshold: Input should be a valid number"),
        ("- {name: a, expr: cost_usd, threshold: 1, window: 1w}", "window: invalid duration '1w'"),
        ("- {name: a, expr: cost_usd, threshold: 1, for: soon}", "for: invalid duration 'soon'"),
        ("- {name: a, expr: cost_usd, threshold: 1, treshold: 2}", "treshold: Extra inputs"),
        ("- {name: a b, expr: cost_usd, threshold: 1}", "rules[0] ('a b'): name: String should"),
        (
            "- {name: a, expr: cost_usd, threshold: 1}\n- {name: a, expr: cost_usd, threshold: 0}",
            "rules[1] ('a'): name: another rule already has this name",
        ),
        (
            "- {name: a, expr: slo_burn_rate, slo: nope, threshold: 1}",
            "slo: no SLO 'nope' in monitoring.slos (chat-errors, chat-latency)",
        ),
        ("- just a string", "rules[0]: expected a mapping"),
        ("rules: {name: a}", "expected `rules:` with a list of rules"),
        ("rules:\n  - {name: a\n", ":3: invalid YAML"),
    ],
)
def test_malformed_rules_name_the_file_rule_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _rules(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_rules(path, slos=SLOS)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="alert rules file does not exist"):
        load_rules(tmp_path / "nope.yaml")
    assert load_rules(_rules(tmp_path, "rules: []\n")) == []
    assert load_rules(_rules(tmp_path, "")) == []


# -- each kind of rule ------------------------------------------------------------------------


def test_each_kind_measures_the_request_log(ws: Workspace, tmp_path: Path) -> None:
    seed(
        ws,
        [
            *many(18, M, latency_ms=100.0, cost_usd=0.5),
            *many(2, M, latency_ms=5000.0, status=502, cost_usd=0.0),
            *many(2, M, latency_ms=3000.0, deployment="other", cost_usd=1.0, key_id="k9"),
            *many(50, 2 * timedelta(hours=1), status=500),  # outside every window below
        ],
    )
    evaluator = _evaluator(
        ws,
        tmp_path,
        """
rules:
  - {name: errors, expr: error_rate, window: 10m, threshold: 0.05}
  - {name: errors-faq, expr: error_rate, deployment: faq, window: 10m, threshold: 0.1}
  - {name: quiet, expr: error_rate, window: 10m, threshold: 0.05, min_requests: 100}
  - {name: p95, expr: latency_p95_ms, window: 10m, threshold: 2000}
  - {name: p50, expr: latency_p95_ms, percentile: 50, window: 10m, threshold: 2000}
  - {name: spend, expr: cost_usd, window: 10m, threshold: 10}
  - {name: spend-k9, expr: cost_usd, key_id: k9, window: 10m, threshold: 10}
  - {name: burn, expr: slo_burn_rate, slo: chat-errors, window: 10m, threshold: 5}
""",
    )
    states = {s.name: s for s in evaluator.evaluate_once(now=NOW)}
    # 2 of 22 requests failed; on faq 2 of 20.
    assert (states["errors"].value, states["errors"].state) == (round(2 / 22, 6), "firing")
    assert (states["errors-faq"].value, states["errors-faq"].state) == (0.1, "inactive")  # not >
    assert (states["quiet"].value, states["quiet"].state) == (None, "inactive")
    assert "too few to judge" in states["quiet"].detail
    # Successful requests only: 18 at 100 ms and 2 at 3000 ms → p95 is rank 19 of 20.
    assert (states["p95"].value, states["p95"].state) == (3000.0, "firing")
    assert (states["p50"].value, states["p50"].state) == (100.0, "inactive")
    assert (states["spend"].value, states["spend"].state) == (11.0, "firing")
    assert (states["spend-k9"].value, states["spend-k9"].state) == (2.0, "inactive")
    # (2 / 22) / 0.01 budget
    assert states["burn"].value == round((2 / 22) / 0.01, 6) and states["burn"].state == "firing"


def test_drift_status_reads_the_latest_report(ws: Workspace, tmp_path: Path) -> None:
    text = """
- {name: drift, expr: drift_status}
- {name: warned, expr: drift_status, statuses: [warn, drift], deployment: faq}
- {name: fresh, expr: drift_status, max_age: 1h}
"""
    evaluator = _evaluator(ws, tmp_path, text)
    states = evaluator.evaluate_once(now=NOW)
    assert {s.state for s in states} == {"inactive"}
    assert states[0].detail == "no drift report yet (llmline monitor drift)"
    report = ws.state_dir / "monitoring" / "drift" / "latest.json"
    report.parent.mkdir(parents=True)
    created = (NOW - 2 * timedelta(hours=1)).isoformat()
    report.write_text(json.dumps({"status": "drift", "deployment": "faq", "created_at": created}))
    by_name = {s.name: s for s in evaluator.evaluate_once(now=NOW)}
    assert (by_name["drift"].state, by_name["drift"].value) == ("firing", "drift")
    assert by_name["warned"].state == "firing"
    assert by_name["fresh"].state == "inactive" and "older than 1h" in by_name["fresh"].detail


# -- the state machine and notifications ----------------------------------------------------------


RULE_FOR = "- {name: errors, expr: error_rate, window: 10m, threshold: 0.1, for: 5m, "
RULE_FOR += "severity: page, labels: {team: ml}, summary: too many errors}\n"


def test_pending_then_firing_then_resolved_posts_to_the_webhook(
    ws: Workspace, tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    seed(ws, [*many(5, M), *many(5, M, status=500)])
    evaluator = _evaluator(ws, tmp_path, RULE_FOR, webhook_url=receiver.url)
    caplog.set_level(logging.INFO, logger="llmline.alerts")

    (first,) = evaluator.evaluate_once(now=NOW)
    assert (first.state, first.transition, first.active_since) == ("pending", None, NOW)
    assert receiver.bodies == []
    (held,) = evaluator.evaluate_once(now=NOW + 4 * M)
    assert held.state == "pending"
    (fired,) = evaluator.evaluate_once(now=NOW + 5 * M)
    assert (fired.state, fired.transition, fired.active_since) == ("firing", "firing", NOW)
    (still,) = evaluator.evaluate_once(now=NOW + 6 * M)
    assert (still.state, still.transition) == ("firing", None)  # no repeat notification
    # 20 minutes on, the failures have left the 10-minute window.
    (resolved,) = evaluator.evaluate_once(now=NOW + 20 * M)
    assert (resolved.state, resolved.transition, resolved.value) == ("inactive", "resolved", None)

    firing, done = receiver.bodies
    assert firing["status"] == "firing" and firing["version"] == "4"
    (alert,) = firing["alerts"]
    assert alert["labels"] == {"alertname": "errors", "severity": "page", "team": "ml"}
    assert alert["annotations"]["summary"] == "too many errors"
    assert alert["annotations"]["value"] == "0.5"
    assert alert["startsAt"] == NOW.isoformat() and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert done["status"] == "resolved"
    assert done["alerts"][0]["endsAt"] == (NOW + 20 * M).isoformat()
    messages = [r.getMessage() for r in caplog.records if r.name == "llmline.alerts"]
    assert messages == [
        "alert firing: errors [page] 5xx share over 10m 0.5 > 0.1",
        "alert resolved: errors [page] 0 requests in 10m: too few to judge",
    ]


def test_webhook_failures_are_logged_not_raised(
    ws: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed(ws, many(3, M, status=500))
    rule = "- {name: errors, expr: error_rate, window: 10m, threshold: 0.1}\n"
    refusing = Receiver(status=500)
    with refusing.server:
        evaluator = _evaluator(ws, tmp_path, rule, webhook_url=refusing.url)
        (state,) = evaluator.evaluate_once(now=NOW)
    assert state.transition == "firing" and len(refusing.bodies) == 1
    closed = _evaluator(ws, tmp_path, rule, webhook_url=f"http://127.0.0.1:{free_port()}/hook")
    (again,) = closed.evaluate_once(now=NOW)
    assert again.state == "firing"
    assert (evaluator.webhook_failures, closed.webhook_failures) == (1, 1)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("500 Internal Server Error" in m for m in errors)
    assert any(m.startswith("alert webhook http://127.0.0.1:") for m in errors)


def test_snapshot_carries_for_durations_to_the_next_evaluator(
    ws: Workspace, tmp_path: Path
) -> None:
    seed(ws, many(3, M, status=500))
    path = snapshot_path(ws)
    gateway_side = _evaluator(ws, tmp_path, RULE_FOR, snapshot=path)
    gateway_side.evaluate_once(now=NOW)
    assert load_snapshot(path)["errors"].state == "pending"
    # A later evaluator (the CLI) starts from it: the 5 minutes have passed.
    cli_side = _evaluator(ws, tmp_path, RULE_FOR, previous=load_snapshot(path), notify=False)
    (state,) = cli_side.evaluate_once(now=NOW + 5 * M)
    assert (state.state, state.active_since) == ("firing", NOW)


def test_one_evaluator_holds_the_lock(ws: Workspace, tmp_path: Path) -> None:
    lock = tmp_path / "evaluator.lock"
    first = _evaluator(ws, tmp_path, RULE_FOR, lock=lock)
    second = _evaluator(ws, tmp_path, RULE_FOR, lock=lock)
    assert first._leader() and not second._leader()
    first._release()
    assert second._leader()
    second._release()


# -- in the gateway -------------------------------------------------------------------------------


def test_gateway_evaluates_rules_and_fires_the_webhook(ws: Workspace, receiver: Receiver) -> None:
    (ws.root / "alerts.yaml").write_text(
        "rules:\n  - {name: backend-errors, expr: error_rate, window: 1h, threshold: 0.5}\n"
    )
    ws = add_config(
        ws,
        "monitoring:\n  alert_rules: alerts.yaml\n"
        f"  alert_webhook: {receiver.url}\n  alert_interval_s: 0.2\n",
    )
    broken = DeploymentSpec(name="broken", models=["fake:x?fail=error"])
    with serve_gateway(ws, broken) as gw:
        with httpx.Client(base_url=gw.url, timeout=30) as http:
            for _ in range(3):
                body = {"model": "broken", "messages": [{"role": "user", "content": "hi"}]}
                assert http.post("/v1/chat/completions", json=body).status_code >= 500
        deadline = time.monotonic() + 60
        while not receiver.bodies and time.monotonic() < deadline:
            time.sleep(0.1)
    (body,) = receiver.bodies[:1]
    assert body["alerts"][0]["labels"]["alertname"] == "backend-errors"
    assert body["alerts"][0]["annotations"]["value"] == "1.0"
    assert load_snapshot(snapshot_path(ws))["backend-errors"].state == "firing"


def test_gateway_refuses_malformed_rules_at_build(ws: Workspace) -> None:
    from llmline.gateway import build_app

    (ws.root / "alerts.yaml").write_text("- {name: a, expr: error_rate, threshold: 0.1, for: x}\n")
    ws = add_config(ws, "monitoring:\n  alert_rules: alerts.yaml\n")
    with pytest.raises(ConfigError, match=r"alerts\.yaml: rules\[0\] \('a'\): for: invalid"):
        build_app(ws)
    ws.close()

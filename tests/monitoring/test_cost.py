"""Cost reports: exact sums per key, deployment, model and UTC day over a
window, on SQLite and PostgreSQL, and the per-request pricing of a real
gateway summed back from its request log."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import openai
import pytest

from llmline.errors import UserError
from llmline.gateway.deployments.spec import DeploymentSpec
from llmline.monitoring.cost import cost_report
from llmline.settings import Settings
from llmline.testing import ServerThread
from llmline.testing.upstream import StubBehaviour, stub_upstream_app
from llmline.workspace import Workspace, init_workspace
from tests.monitoring.ops_support import NOW, add_config, row, seed, serve_gateway

H = timedelta(hours=1)
D = timedelta(days=1)


def _rows() -> list[dict[str, object]]:
    return [
        # today (2026-03-10): two keys on faq, one on support
        row(H, key_id="k1", model_version="upstream:gpt", prompt_tokens=100,
            completion_tokens=50, cost_usd=0.25),
        row(2 * H, key_id="k1", model_version="upstream:gpt", prompt_tokens=10,
            completion_tokens=5, cost_usd=0.05, status=500),
        row(3 * H, key_id="k2", deployment="support", model_version="ft@3",
            prompt_tokens=7, completion_tokens=3, cost_usd=0.001),
        # 2026-03-09 and 2026-03-08 (11:00 UTC is still the 8th: 49 h before noon on the 10th)
        row(D, key_id="k2", model_version="upstream:gpt", prompt_tokens=20,
            completion_tokens=20, cost_usd=0.5),
        row(2 * D + H, key_id=None, deployment=None, status=401),
        # 40 days ago: outside a 30-day window
        row(40 * D, key_id="k1", cost_usd=100.0, prompt_tokens=1, completion_tokens=1),
    ]  # fmt: skip


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = init_workspace(tmp_path / "ws", load_sample_data=False)
    seed(workspace, _rows())
    return workspace


def _by(report, field: str = "cost_usd") -> dict[str | None, object]:
    return {r.group: getattr(r, field) for r in report.rows}


def test_by_key_sums_the_window_only(ws: Workspace) -> None:
    report = cost_report(ws, by="key", since="30d", until=NOW)
    assert [r.group for r in report.rows] == ["k2", "k1", None]  # most expensive first
    k1 = report.rows[1]
    assert (k1.requests, k1.errors, k1.prompt_tokens, k1.completion_tokens, k1.tokens) == (
        2, 1, 110, 55, 165,
    )  # fmt: skip
    assert k1.cost_usd == pytest.approx(0.30)
    assert _by(report) == {"k2": pytest.approx(0.501), "k1": pytest.approx(0.30), None: 0.0}
    total = report.total
    assert (total.requests, total.errors, total.tokens) == (5, 2, 215)
    assert total.cost_usd == pytest.approx(0.801)
    assert report.since == NOW - 30 * D


def test_by_deployment_model_and_day(ws: Workspace) -> None:
    deployments = cost_report(ws, by="deployment", since="30d", until=NOW)
    assert _by(deployments, "requests") == {"faq": 3, "support": 1, None: 1}
    models = cost_report(ws, by="model", since="30d", until=NOW)
    assert _by(models) == {"upstream:gpt": pytest.approx(0.8), "ft@3": 0.001, None: 0.0}
    days = cost_report(ws, by="day", since="30d", until=NOW)
    assert [(r.group, r.requests) for r in days.rows] == [
        ("2026-03-08", 1), ("2026-03-09", 1), ("2026-03-10", 3),
    ]  # fmt: skip


def test_window_and_since_forms(ws: Workspace) -> None:
    assert cost_report(ws, since="6h", until=NOW).total.requests == 3
    assert cost_report(ws, since=timedelta(days=60), until=NOW).total.cost_usd == pytest.approx(
        100.801
    )
    since = NOW - 25 * H
    assert cost_report(ws, since=since, until=NOW).total.requests == 4
    empty = cost_report(ws, since="1m", until=NOW)
    assert (empty.rows, empty.total.requests, empty.total.cost_usd) == ([], 0, 0.0)


def test_bad_grouping_or_window_is_a_user_error(ws: Workspace) -> None:
    with pytest.raises(UserError, match="cannot group costs by 'user'"):
        cost_report(ws, by="user")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="invalid duration '7 weeks'"):
        cost_report(ws, since="7 weeks")


@pytest.mark.postgres
def test_postgres_groups_by_utc_day(tmp_path: Path, postgres_url: str) -> None:
    root = tmp_path / "pg"
    init_workspace(root, load_sample_data=False)
    workspace = Workspace(
        root, Settings.load(root).model_copy(update={"metadata_url": postgres_url})
    )
    seed(workspace, _rows())
    days = cost_report(workspace, by="day", since="30d", until=NOW)
    assert [(r.group, r.requests) for r in days.rows] == [
        ("2026-03-08", 1), ("2026-03-09", 1), ("2026-03-10", 3),
    ]  # fmt: skip
    keys = cost_report(workspace, by="key", since="30d", until=NOW)
    assert keys.total.cost_usd == pytest.approx(0.801)
    assert keys.total.errors == 2
    workspace.close()


def test_gateway_prices_upstream_tokens_and_the_report_sums_them(tmp_path: Path) -> None:
    """Real requests through a gateway in front of a priced upstream: the
    stored cost is tokens × price, and the report adds it up per deployment."""
    with ServerThread(stub_upstream_app(StubBehaviour())) as stub:
        workspace = add_config(
            init_workspace(tmp_path / "gw", load_sample_data=False),
            f"upstreams:\n  priced:\n    base_url: {stub.url}/v1\n    model: stub\n"
            "    input_usd_per_1k: 1.0\n    output_usd_per_1k: 2.0\n",
        )
        paid = DeploymentSpec(name="paid", models=["upstream:priced"])
        with serve_gateway(workspace, paid) as gw:
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key="-", max_retries=0)
            for question in ("one two three", "four five", "six"):
                client.chat.completions.create(
                    model="paid", messages=[{"role": "user", "content": question}], max_tokens=8
                )
    # Stopping the gateway flushed its request log.
    (row_,) = cost_report(workspace, by="deployment", since="1h").rows
    assert row_.group == "paid" and row_.requests == 3 and row_.prompt_tokens > 0
    expected = (row_.prompt_tokens * 1.0 + row_.completion_tokens * 2.0) / 1000
    assert row_.cost_usd == pytest.approx(expected, rel=1e-9)

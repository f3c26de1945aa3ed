"""``llmline loadtest``'s engine against a real gateway on loopback
(``fake:`` backends): counts, percentiles, TTFT, errors by status, the
concurrency bound and the refusal of unbounded runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from llmline.errors import UserError
from llmline.gateway.deployments.spec import DeploymentSpec
from llmline.guard.keys import KeyStore
from llmline.monitoring.cost import cost_report
from llmline.monitoring.loadtest import MAX_REQUESTS, load_test
from llmline.workspace import Workspace, init_workspace
from tests.monitoring.ops_support import serve_gateway


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws", load_sample_data=False)


@pytest.fixture
def gateway(ws: Workspace) -> Iterator[SimpleNamespace]:
    specs = (
        DeploymentSpec(name="echo", models=["fake:echo"]),
        # Each answer takes 4 tokens x 0.5 s: far longer than the whole schedule below.
        DeploymentSpec(name="slow", models=["fake:slow?delay_ms=500"]),
    )
    with serve_gateway(ws, *specs) as gw:
        yield gw


def test_fixed_rate_through_the_gateway(gateway: SimpleNamespace, ws: Workspace) -> None:
    result = load_test(gateway.url, "echo", rps=20, duration_s=1.0, max_tokens=4)
    assert (result.scheduled, result.sent, result.skipped, result.ok) == (20, 20, 0, 20)
    assert result.errors == {} and result.error_count == 0
    assert result.latency_ms is not None and result.ttft_ms is None
    assert 0 < result.latency_ms.p50 <= result.latency_ms.p90 <= result.latency_ms.p99
    assert result.latency_ms.p99 <= result.latency_ms.max
    assert result.sent_rps > 0 and result.achieved_rps > 0
    # "echo says: Load test request 3 ..." cut to 4 words: 4 tokens each.
    assert result.completion_tokens == 80
    gateway.server.stop()  # flushes the request log: every request reached it
    assert cost_report(ws, by="deployment", since="1h").total.requests == 20


def test_streaming_measures_ttft(gateway: SimpleNamespace) -> None:
    result = load_test(
        gateway.url + "/v1", "echo", rps=10, duration_s=0.5, stream=True, max_tokens=3
    )
    assert (result.sent, result.ok, result.errors) == (5, 5, {})
    assert result.ttft_ms is not None and result.latency_ms is not None
    assert result.ttft_ms.p50 <= result.latency_ms.max
    assert result.completion_tokens == 15  # from the final chunk's usage


def test_errors_are_counted_by_status(gateway: SimpleNamespace) -> None:
    result = load_test(gateway.url, "no-such-deployment", rps=10, duration_s=0.4)
    assert (result.sent, result.ok, result.errors) == (4, 0, {"404": 4})
    assert result.latency_ms is None


def test_requests_beyond_the_concurrency_limit_are_skipped_not_queued(
    gateway: SimpleNamespace,
) -> None:
    result = load_test(gateway.url, "slow", rps=10, duration_s=0.4, concurrency=1, max_tokens=4)
    assert (result.scheduled, result.sent, result.skipped, result.ok) == (4, 1, 3, 1)
    assert result.max_in_flight == 1
    assert "3 requests were skipped" in result.notes[0]


def test_api_key_is_sent(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "auth", load_sample_data=False)
    token, _ = KeyStore(ws.metadata).create("load", "user")
    with serve_gateway(ws, DeploymentSpec(name="echo", models=["fake:echo"]), auth=True) as gw:
        denied = load_test(gw.url, "echo", rps=10, duration_s=0.2)
        allowed = load_test(gw.url, "echo", rps=10, duration_s=0.2, api_key=token)
    assert denied.errors == {"401": 2}
    assert (allowed.ok, allowed.errors) == (2, {})


def test_connection_errors_are_counted_by_name() -> None:
    from llmline.testing import free_port

    result = load_test(f"http://127.0.0.1:{free_port()}", "echo", rps=10, duration_s=0.2)
    assert (result.ok, result.errors, result.achieved_rps) == (0, {"ConnectError": 2}, 0.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rps": 1000, "duration_s": 200}, "refusing to send 200000 requests"),
        ({"rps": 0, "duration_s": 1}, "--rps must be a positive number"),
        ({"rps": 1, "duration_s": 4000}, "--duration must be over 0 and at most 3600"),
        ({"rps": 1, "duration_s": 0.5}, "less than one request"),
        ({"rps": 1, "duration_s": 1, "concurrency": 0}, "--concurrency must be at least 1"),
    ],
)
def test_unbounded_or_empty_runs_are_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_test("http://127.0.0.1:9", "echo", **options)
    assert MAX_REQUESTS == 100_000

"""Strategies and rollouts through the running gateway: hot reload without
restart, canary auto-promotion / rollback persisted, shadow never returned,
blue-green switch, sticky routing, seeded reproducibility."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from llmline.gateway.deployments import DeploymentStore
from llmline.gateway.deployments.api import (
    create_deployment,
    promote_deployment,
    rollback_deployment,
)
from tests.gateway.conftest import spec


def ask(http, model: str, *, user: str | None = None, content: str = "hello", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 3}
    if user is not None:
        body["user"] = user
    r = http.post("/v1/chat/completions", json=body | extra)
    assert r.status_code == 200, r.text
    return r.json()


def served(http, model: str, n: int, **kwargs) -> Counter[str]:
    # temperature > 0 and no seed: not cacheable, so every request is routed.
    return Counter(
        ask(http, model, temperature=0.5, **kwargs)["llmline"]["model_version"] for _ in range(n)
    )


def wait_for(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_random_is_seeded_and_spreads(start_gateway, gateway_ws) -> None:
    gw = start_gateway(spec("lb", "fake:a", "fake:b", "fake:c", seed=7))
    with gw.http() as http:
        first = [ask(http, "lb", temperature=0.5)["llmline"]["model_version"] for _ in range(60)]
    counts = Counter(first)
    assert set(counts) == {"fake:a", "fake:b", "fake:c"}
    assert min(counts.values()) >= 10  # 60 uniform draws: each of 3 well above 10
    # The same seed routes the same sequence (a fresh gateway, same deployment).
    again = start_gateway(workspace=gateway_ws)
    with again.http() as http:
        second = [ask(http, "lb", temperature=0.5)["llmline"]["model_version"] for _ in range(60)]
    assert first == second


def test_weighted_split(start_gateway) -> None:
    gw = start_gateway(
        spec("w", "fake:big", "fake:small", strategy="weighted", weights=[80, 20], seed=1)
    )
    with gw.http() as http:
        counts = served(http, "w", 300)
    assert 0.70 < counts["fake:big"] / 300 < 0.90


def test_strategy_change_applies_without_restart_or_dropping_requests(
    start_gateway, gateway_ws
) -> None:
    gw = start_gateway(spec("live", "fake:old?delay_ms=20", "fake:other", seed=1))
    results: dict[str, str] = {}
    # No redacting output scanner: tokens are relayed one by one (none held back).
    unbuffered = {"output": {"pii": {"action": "flag"}, "secrets": {"action": "flag"}}}

    def long_stream() -> None:
        body = {
            "model": "live",
            "messages": [{"role": "user", "content": "w " * 60}],
            "max_tokens": 60,
            "stream": True,
            "temperature": 0.5,
        }
        with gw.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
            results["text"] = "".join(line for line in r.iter_lines())

    # Make sure the long request lands on the slow target: pin it first.
    create_deployment(
        gateway_ws, spec("live", "fake:old?delay_ms=20", guard=unbuffered), replace=True
    )
    wait_for(lambda: gw.service.engine.deployments["live"].spec.models == ["fake:old?delay_ms=20"])
    worker = threading.Thread(target=long_stream)
    worker.start()
    wait_for(lambda: gw.service.engine.in_flight("fake:old?delay_ms=20") == 1)
    create_deployment(
        gateway_ws, spec("live", "fake:blue", "fake:green", strategy="blue-green"), replace=True
    )
    wait_for(lambda: gw.service.engine.deployments["live"].spec.strategy == "blue-green")
    with gw.http() as http:
        assert served(http, "live", 10) == Counter({"fake:blue": 10})
    worker.join(timeout=30)
    assert "[DONE]" in results["text"]
    assert results["text"].count('"content"') >= 60  # every token of the old request arrived


def test_blue_green_promote_and_rollback(start_gateway, gateway_ws) -> None:
    gw = start_gateway(spec("bg", "fake:blue", "fake:green", strategy="blue-green"))
    with gw.http() as http:
        assert served(http, "bg", 5) == Counter({"fake:blue": 5})
        promote_deployment(gateway_ws, "bg")
        wait_for(lambda: gw.service.engine.deployments["bg"].state.live == 1)
        assert served(http, "bg", 5) == Counter({"fake:green": 5})
        reply = ask(http, "bg", temperature=0.5)
        assert "green" in reply["llmline"]["route_reason"]
        rollback_deployment(gateway_ws, "bg")
        wait_for(lambda: gw.service.engine.deployments["bg"].state.live == 0)
        assert served(http, "bg", 5) == Counter({"fake:blue": 5})


def test_canary_rolls_back_automatically(start_gateway, gateway_ws) -> None:
    canary = {"percent": 50, "min_requests": 5, "max_error_rate": 0.2, "window": 10}
    gw = start_gateway(
        spec("c", "fake:stable", "fake:bad?fail=error", strategy="canary", seed=3, canary=canary)
    )
    with gw.http() as http:
        # Failing challenger calls fall back to stable: clients never see the errors.
        counts = served(http, "c", 40)
    assert counts == Counter({"fake:stable": 40})
    info = DeploymentStore(gateway_ws.metadata).get("c")
    assert info.state.phase == "rolled-back"
    assert "error rate" in info.state.reason
    actions = [e.action for e in DeploymentStore(gateway_ws.metadata).events("c")]
    assert actions == ["create", "auto-rollback"]
    challenger_calls = gw.service.engine.provider("fake:bad?fail=error").calls
    with gw.http() as http:
        served(http, "c", 20)
    assert gw.service.engine.provider("fake:bad?fail=error").calls == challenger_calls


def test_canary_promotes_automatically(start_gateway, gateway_ws) -> None:
    canary = {"percent": 30, "promote_after": 8, "min_requests": 3, "window": 8}
    gw = start_gateway(
        spec("c", "fake:stable", "fake:new", strategy="canary", seed=5, canary=canary)
    )
    with gw.http() as http:
        counts = served(http, "c", 80)
        assert 0 < counts["fake:new"] < 80
        info = DeploymentStore(gateway_ws.metadata).get("c")
        assert info.state.phase == "promoted"
        wait_for(lambda: gw.service.engine.deployments["c"].state.phase == "promoted")
        assert served(http, "c", 10) == Counter({"fake:new": 10})
    assert [e.action for e in DeploymentStore(gateway_ws.metadata).events("c")] == [
        "create",
        "auto-promote",
    ]


def test_shadow_copy_is_compared_and_never_returned(start_gateway, caplog) -> None:
    gw = start_gateway(spec("s", "fake:primary", "fake:shadow", strategy="shadow"))
    caplog.set_level(logging.INFO, logger="llmline.gateway.shadow")
    with gw.http() as http:
        assert served(http, "s", 12) == Counter({"fake:primary": 12})
        wait_for(lambda: gw.service.engine.provider("fake:shadow").calls == 12)
        wait_for(
            lambda: (
                'llmline_shadow_comparisons_total{deployment="s",model_version="fake:shadow"} 12.0'
                in http.get("/metrics").text
            )
        )
    records = [r.getMessage() for r in caplog.records if '"event": "shadow"' in r.getMessage()]
    assert len(records) == 12
    assert '"similarity"' in records[0]


def test_sticky_routing_by_user(start_gateway) -> None:
    gw = start_gateway(spec("st", "fake:a", "fake:b", "fake:c", sticky="user", seed=1))
    with gw.http() as http:
        for user in ("ann", "bob", "cyd"):
            assert len(served(http, "st", 8, user=user)) == 1
        per_user = Counter(
            ask(http, "st", user=f"user-{i}", temperature=0.5)["llmline"]["model_version"]
            for i in range(60)
        )
    assert len(per_user) == 3


def test_deployments_declared_in_llmline_yaml(start_gateway, gateway_ws) -> None:
    from tests.gateway.test_upstreams_and_safety import configure

    ws = configure(
        gateway_ws,
        deployments={"declared": {"models": ["fake:x", "fake:y"], "strategy": "blue-green"}},
    )
    gw = start_gateway(workspace=ws)
    with gw.http() as http:
        assert served(http, "declared", 3) == Counter({"fake:x": 3})
    info = DeploymentStore(ws.metadata).get("declared")
    assert info.source == "config"

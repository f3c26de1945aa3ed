"""``llmline agent run|tools`` against a gateway on loopback."""

from __future__ import annotations

from collections.abc import Callable

from tests.agents.conftest import Running, call, scripted, spec
from tests.cli.conftest import CLI

Start = Callable[..., Running]


def test_agent_run_prints_steps_and_the_answer(cli: CLI, start_gateway: Start) -> None:
    target = scripted("bot", call("calculator", expression="12 * 12"), "12 squared is 144.")
    gw = start_gateway(spec("helper", target))
    args = ("agent", "run", "What is 12 squared?", "-d", "helper", "--url", gw.url, "--no-guard")

    result = cli(*args, "--tools", "calculator", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["answer"] == "12 squared is 144." and data["finish_reason"] == "stop"
    assert data["tool_calls"] == 1
    assert data["steps"][1] == {
        "step": 1,
        "kind": "tool",
        "ms": data["steps"][1]["ms"],
        "content": "144.0",
        "tool": "calculator",
        "arguments": '{"expression": "12 * 12"}',
    }

    result = cli(*args)
    assert result.code == 0, result.err
    assert "step 1  model calls calculator" in result.out
    assert 'calculator({"expression": "12 * 12"}) → 144.0' in result.out
    assert "finish_reason: stop" in result.out and "12 squared is 144." in result.out


def test_agent_quota_from_the_command_line(cli: CLI, start_gateway: Start) -> None:
    gw = start_gateway(spec("looper", scripted("loop", call("calories", food="egg"))))
    result = cli(
        "agent",
        "run",
        "count",
        "-d",
        "looper",
        "--url",
        gw.url,
        "--no-guard",
        "--max-steps",
        "2",
        "--json",
    )
    assert result.code == 0, result.err
    data = result.json()
    assert data["finish_reason"] == "max_steps" and data["tool_calls"] == 2
    assert data["answer"] == ""


def test_agent_user_errors_and_tool_listing(cli: CLI) -> None:
    unknown = cli("agent", "run", "x", "-d", "d", "--tools", "calculator,shell", "--no-guard")
    assert unknown.code == 1
    assert unknown.err.strip() == (
        "error: unknown tool 'shell': the tools are calculator, calories"
    )
    tools = cli("agent", "tools", "--json")
    assert tools.code == 0
    assert [t["function"]["name"] for t in tools.json()] == ["calories", "calculator"]
    assert "calculator" in cli("agent", "tools").out

"""Running chains: the calorie example end to end through a real gateway
(the model's reply is the fake provider's), each step kind, and the errors
that name the step that failed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from llmline.agents import OpenAIChatClient, ToolRegistry, tool
from llmline.chains import (
    ChainError,
    ChainSpec,
    ChainStepError,
    find_chain,
    load_chain,
    run_chain,
)
from llmline.workspace import Workspace
from tests.chains.conftest import Running, spec

pytestmark = pytest.mark.anyio

Start = Callable[..., Running]


def says(name: str, text: str) -> str:
    return f"fake:{name}?text={quote(text, safe='')}"


@pytest.fixture
async def client() -> AsyncIterator[Callable[[Running], OpenAIChatClient]]:
    made: list[OpenAIChatClient] = []

    def make(gw: Running) -> OpenAIChatClient:
        made.append(OpenAIChatClient(gw.url + "/v1"))
        return made[-1]

    yield make
    for c in made:
        await c.aclose()


def chain(*steps: dict[str, Any], inputs: dict[str, str] | None = None) -> ChainSpec:
    return ChainSpec.model_validate(
        {"name": "t", "inputs": inputs or {"text": "str"}, "steps": list(steps)}
    )


async def test_the_calorie_chain_extracts_looks_up_and_sums(
    start_gateway: Start, client: Callable[[Running], OpenAIChatClient]
) -> None:
    reply = 'Foods: ["2 eggs", "a slice of toast", "an apple", "caviar"] and that is all.'
    gw = start_gateway(spec("extractor", says("x", reply)))
    calories = load_chain(find_chain("calories"))

    result = await run_chain(
        calories,
        {"meal": "Two eggs, a slice of toast, an apple and some caviar"},
        client=client(gw),
        deployment="extractor",
    )

    assert result.value == pytest.approx(156 + 72 + 95)
    assert isinstance(result.value, float)
    steps = {s.id: s for s in result.steps}
    assert "Meal: Two eggs, a slice of toast, an apple and some caviar" in steps["ask"].value
    assert steps["extract"].value == reply
    assert steps["extract"].model == "extractor"
    assert steps["extract"].prompt_tokens > 0 and steps["extract"].completion_tokens > 0
    assert steps["foods"].value == ["2 eggs", "a slice of toast", "an apple", "caviar"]
    assert [i["matched"] for i in steps["lookup"].value] == ["egg", "toast", "apple"]
    assert steps["lookup"].skipped == ["caviar: no calorie data for 'caviar'"]
    assert result.outputs["total_kcal"] == result.value
    data = result.to_dict()
    assert data["usage"]["total_tokens"] == result.prompt_tokens + result.completion_tokens
    assert [s["id"] for s in data["steps"]] == ["ask", "extract", "foods", "lookup", "total"]


async def test_a_reply_that_does_not_parse_names_the_step(
    start_gateway: Start, client: Callable[[Running], OpenAIChatClient]
) -> None:
    gw = start_gateway(spec("chatty", says("x", "I think you ate eggs.")))
    calories = load_chain(find_chain("calories"))
    with pytest.raises(ChainStepError) as info:
        await run_chain(calories, {"meal": "eggs"}, client=client(gw), deployment="chatty")
    assert str(info.value) == (
        "step 'foods' (parse json): no JSON value in 'I think you ate eggs.'"
    )
    assert info.value.step_id == "foods"
    assert info.value.result is not None
    assert [s.id for s in info.value.result.steps] == ["ask", "extract"]


async def test_a_parsed_value_of_the_wrong_type_names_the_step(
    start_gateway: Start, client: Callable[[Running], OpenAIChatClient]
) -> None:
    gw = start_gateway(spec("objects", says("x", '{"food": "eggs"}')))
    calories = load_chain(find_chain("calories"))
    with pytest.raises(ChainStepError, match=r"step 'foods' \(parse json\): the value is not list"):
        await run_chain(calories, {"meal": "eggs"}, client=client(gw), deployment="objects")


async def test_model_steps_name_their_own_deployments(
    start_gateway: Start, client: Callable[[Running], OpenAIChatClient]
) -> None:
    gw = start_gateway(spec("one", says("a", "first")), spec("two", says("b", "second")))
    two_models = chain(
        {"id": "a", "model": "one"},
        {"id": "b", "input": "text", "model": {"deployment": "two", "max_tokens": 1}},
        {"id": "both", "prompt": "{a} then {b}"},
    )
    result = await run_chain(two_models, {"text": "go"}, client=client(gw))
    assert result.value == "first then second"
    assert result.steps[1].completion_tokens == 1


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        ({"parse": "list"}, "- eggs\n- toast\n\n* tea", ["eggs", "toast", "tea"]),
        ({"parse": "list"}, "eggs, toast and tea", ["eggs", "toast", "tea"]),
        ({"parse": "list"}, '["a", "b"]', ["a", "b"]),
        ({"parse": "number"}, "About 1,5 litres", 1.5),
        ({"parse": "number", "schema": "int"}, "42 apples", 42),
        ({"parse": "regex", "pattern": r"(\d+) kcal"}, "10 kcal, 20 kcal", ["10", "20"]),
        ({"parse": "regex", "pattern": r"(\d+) kcal", "schema": "list[int]"}, "5 kcal", [5]),
        ({"parse": "json"}, '```json\n{"a": [1, 2]}\n```', {"a": [1, 2]}),
        ({"parse": "json", "schema": "dict[str, list[float]]"}, '{"a": [1]}', {"a": [1.0]}),
    ],
)
async def test_parse_steps(parse: dict[str, Any], text: str, expected: Any) -> None:
    result = await run_chain(chain({"id": "p", **parse}), {"text": text})
    assert result.value == expected


async def test_parse_failures_say_what_was_wrong() -> None:
    with pytest.raises(ChainStepError, match=r"step 'n' \(parse number\): no number in 'none'"):
        await run_chain(chain({"id": "n", "parse": "number"}), {"text": "none"})
    with pytest.raises(ChainStepError, match=r"step 'r' \(parse regex\): no match of"):
        await run_chain(chain({"id": "r", "parse": "regex", "pattern": "x+"}), {"text": "y"})


async def test_tool_steps_map_over_items_and_fail_or_skip() -> None:
    @tool
    def double(n: int) -> int:
        """Twice n."""
        if n < 0:
            raise ValueError("negative")
        return 2 * n

    tools = ToolRegistry([double])
    steps = [{"id": "ns", "parse": "json"}, {"id": "d", "tool": "double", "map": True}]
    mapped = chain(*steps, {"id": "s", "aggregate": "sum"})
    result = await run_chain(mapped, {"text": "[1, 2, 3]"}, tools=tools)
    assert result.outputs["d"] == [2, 4, 6] and result.value == 12

    with pytest.raises(ChainStepError, match=r"step 'd' \(tool\): double failed on -1: negative"):
        await run_chain(mapped, {"text": "[1, -1]"}, tools=tools)
    skipping = chain(steps[0], {**steps[1], "on_error": "skip"}, {"id": "s", "aggregate": "sum"})
    result = await run_chain(skipping, {"text": "[1, -1, 5]"}, tools=tools)
    assert result.value == 12 and result.steps[1].skipped == ["-1: negative"]

    with pytest.raises(ChainStepError, match="map: true needs a list, got str"):
        await run_chain(
            chain({"id": "d", "tool": "double", "map": True}), {"text": "1"}, tools=tools
        )
    with pytest.raises(ChainStepError, match=r"no tool named 'calories' \(tools: double\)"):
        await run_chain(chain({"id": "c", "tool": "calories"}), {"text": "x"}, tools=tools)


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [
        ({"aggregate": "sum", "field": "k"}, 6),
        ({"aggregate": "mean", "field": "k"}, 2),
        ({"aggregate": "max", "field": "k"}, 3),
        ({"aggregate": "count"}, 3),
        ({"aggregate": "join", "field": "n", "separator": "+"}, "a+b+c"),
    ],
)
async def test_aggregate_steps(aggregate: dict[str, Any], expected: Any) -> None:
    items = '[{"n": "a", "k": 1}, {"n": "b", "k": 2}, {"n": "c", "k": 3}]'
    spec_ = chain({"id": "items", "parse": "json"}, {"id": "a", **aggregate})
    assert (await run_chain(spec_, {"text": items})).value == expected


async def test_aggregate_errors_name_the_step() -> None:
    summing = chain({"id": "items", "parse": "json"}, {"id": "t", "aggregate": "sum", "field": "k"})
    with pytest.raises(ChainStepError, match=r"step 't' \(aggregate\): item .* has no k"):
        await run_chain(summing, {"text": '[{"j": 1}]'})
    with pytest.raises(ChainStepError, match="sum needs numbers"):
        await run_chain(summing, {"text": '[{"k": "many"}]'})


async def test_inputs_are_checked_against_their_types() -> None:
    typed = chain({"id": "p", "prompt": "{n} items"}, inputs={"n": "int"})
    assert (await run_chain(typed, {"n": "3"})).value == "3 items"
    with pytest.raises(ChainError, match="input n must be int"):
        await run_chain(typed, {"n": "three"})
    with pytest.raises(ChainError, match=r"chain t needs the input n \(int\)"):
        await run_chain(typed, {})
    with pytest.raises(ChainError, match=r"chain t has no input m \(inputs: n\)"):
        await run_chain(typed, {"n": 1, "m": 2})
    with pytest.raises(ChainError, match="give a client"):
        await run_chain(chain({"id": "m", "model": {}}), {"text": "x"})


async def test_prompt_steps_can_use_the_prompt_registry(gateway_ws: Workspace) -> None:
    from llmline.prompts import PromptRegistry

    PromptRegistry(gateway_ws.metadata).create("greet", "Say hello to {text}.")
    spec_ = chain({"id": "p", "template": "greet@latest"})
    result = await run_chain(spec_, {"text": "Ada"}, workspace=gateway_ws)
    assert result.value == "Say hello to Ada."
    with pytest.raises(ChainStepError, match="needs a workspace"):
        await run_chain(spec_, {"text": "Ada"})


def test_chain_files_are_found_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "m", "inputs": {"x": "str"}, "steps": [{"id": "p", "prompt": "{x}!"}]}
        )
    )
    assert find_chain("mine.yaml", tmp_path) == path
    assert load_chain(find_chain(str(path))).name == "m"


async def test_model_steps_send_system_and_examples_as_chat_turns(
    start_gateway: Start,
    gateway_ws: Workspace,
    stubs: Any,
    client: Callable[[Running], OpenAIChatClient],
) -> None:
    from tests.gateway.test_upstreams_and_safety import configure, upstream

    stub, url = stubs("up", text='["tea"]')
    ws = configure(gateway_ws, upstreams={"up": upstream(url)})
    gw = start_gateway(spec("up", "upstream:up"), workspace=ws)
    few_shot = chain(
        {
            "id": "m",
            "model": {
                "system": "Be brief.",
                "examples": [{"user": "Meal: rice", "assistant": '["rice"]'}],
                "max_tokens": 9,
            },
        }
    )
    result = await run_chain(few_shot, {"text": "Meal: tea"}, client=client(gw), deployment="up")
    assert result.value == '["tea"]'
    assert stub.last_body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Meal: rice"},
        {"role": "assistant", "content": '["rice"]'},
        {"role": "user", "content": "Meal: tea"},
    ]
    assert stub.last_body["max_tokens"] == 9 and stub.last_body["temperature"] == 0.0

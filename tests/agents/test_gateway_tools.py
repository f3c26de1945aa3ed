"""The gateway passes OpenAI's tool-call format through: ``tools`` in the
request, ``tool_calls`` in the answer, ``role: tool`` messages back, to the
fake provider and to an OpenAI-compatible upstream."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.agents.conftest import Running, call, scripted, spec
from tests.gateway.test_upstreams_and_safety import configure, upstream

Start = Callable[..., Running]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Arithmetic.",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
            },
        },
    }
]


def test_tool_calls_round_trip_through_the_sdk(start_gateway: Start) -> None:
    target = scripted("bot", call("calculator", expression="2 + 2"), "It is 4.")
    client = start_gateway(spec("tools", target)).openai()
    messages: list[Any] = [{"role": "user", "content": "What is 2 + 2?"}]

    first = client.chat.completions.create(model="tools", messages=messages, tools=TOOLS)

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == ""
    (tool_call,) = choice.message.tool_calls or []
    assert tool_call.type == "function" and tool_call.function.name == "calculator"
    assert json.loads(tool_call.function.arguments) == {"expression": "2 + 2"}
    assert first.usage is not None and first.usage.completion_tokens > 0

    messages += [
        {"role": "assistant", "content": None, "tool_calls": [tool_call.model_dump()]},
        {"role": "tool", "tool_call_id": tool_call.id, "content": "4.0"},
    ]
    second = client.chat.completions.create(model="tools", messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "It is 4."
    assert second.choices[0].message.tool_calls is None


def test_streaming_with_tools_is_refused_clearly(start_gateway: Start) -> None:
    client = start_gateway(spec("tools", scripted("bot", "hi"))).openai()
    with pytest.raises(openai.BadRequestError, match="streaming with tools is not supported"):
        client.chat.completions.create(
            model="tools", messages=[{"role": "user", "content": "hi"}], tools=TOOLS, stream=True
        )


def test_upstream_receives_tools_and_returns_tool_calls(
    start_gateway: Start, gateway_ws: Any, stubs: Any
) -> None:
    answer = {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_up_1",
                            "type": "function",
                            "function": {"name": "calculator", "arguments": '{"expression":"9"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    }
    stub, url = stubs("up", raw=json.dumps(answer).encode())
    ws = configure(gateway_ws, upstreams={"up": upstream(url)})
    client = start_gateway(spec("up", "upstream:up"), workspace=ws).openai()
    history: list[Any] = [
        {"role": "user", "content": "nine?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": answer["choices"][0]["message"]["tool_calls"],
        },
        {"role": "tool", "tool_call_id": "call_up_1", "content": "9.0"},
    ]

    reply = client.chat.completions.create(
        model="up", messages=history, tools=TOOLS, tool_choice="auto"
    )

    sent = stub.last_body
    assert sent["tools"] == TOOLS and sent["tool_choice"] == "auto"
    assert sent["messages"][1]["tool_calls"][0]["id"] == "call_up_1"
    assert sent["messages"][2] == {"role": "tool", "content": "9.0", "tool_call_id": "call_up_1"}
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert (choice.message.tool_calls or [])[0].function.arguments == '{"expression":"9"}'
    assert reply.usage is not None and reply.usage.prompt_tokens == 12

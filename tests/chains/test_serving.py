"""``kind: chain`` deployments through the gateway with the ``openai`` SDK."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

import openai
import pytest
import yaml

from llmline.gateway.deployments.spec import DeploymentSpec
from llmline.workspace import Workspace
from tests.chains.conftest import Running

Start = Callable[..., Running]


def says(text: str) -> str:
    return f"fake:x?text={quote(text, safe='')}"


def chain_deployment(name: str, chain: str, reply: str) -> DeploymentSpec:
    return DeploymentSpec(name=name, kind="chain", chain=chain, models=[says(reply)])


def test_the_calorie_chain_served_as_a_deployment(start_gateway: Start) -> None:
    gw = start_gateway(chain_deployment("calories", "calories", '["2 eggs", "toast"]'))
    reply = gw.openai().chat.completions.create(
        model="calories", messages=[{"role": "user", "content": "two eggs and toast"}]
    )
    choice = reply.choices[0]
    assert choice.message.content == "228.0"
    assert choice.finish_reason == "stop"
    assert (
        reply.usage is not None and reply.usage.completion_tokens == 3
    )  # the fake: one token per word
    info = reply.model_extra["llmline"] if reply.model_extra else {}
    assert info["model_version"] == "chain:calories"
    assert info["route_reason"].startswith("chain calories: 5 steps (models: fake:x?text=")


def test_a_workspace_chain_file_with_a_text_output(
    start_gateway: Start, gateway_ws: Workspace
) -> None:
    document = {
        "name": "shout",
        "inputs": {"question": "str"},
        "steps": [
            {"id": "ask", "prompt": "Answer briefly: {question}"},
            {"id": "answer", "model": {"max_tokens": 8}},
            {"id": "words", "parse": "list"},
            {"id": "joined", "aggregate": "join", "separator": " | "},
        ],
    }
    (gw_path := gateway_ws.root / "chains").mkdir()
    (gw_path / "shout.yaml").write_text(yaml.safe_dump(document))
    gw = start_gateway(chain_deployment("shout", "chains/shout.yaml", "yes, no and maybe"))
    reply = gw.openai().chat.completions.create(
        model="shout", messages=[{"role": "user", "content": "well?"}]
    )
    assert reply.choices[0].message.content == "yes | no | maybe"


def test_chain_failures_and_streams_are_clear_errors(start_gateway: Start) -> None:
    gw = start_gateway(
        chain_deployment("broken", "calories", "no json here"),
        chain_deployment("missing", "nowhere.yaml", "x"),
    )
    client = gw.openai()
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": "eggs"}
    ]
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="broken", messages=messages)
    assert info.value.status_code == 502
    assert "step 'foods' (parse json): no JSON value in 'no json here'" in str(info.value)
    with pytest.raises(openai.APIStatusError, match=r"no chain file nowhere\.yaml"):
        client.chat.completions.create(model="missing", messages=messages)
    with pytest.raises(openai.BadRequestError, match="chain deployment, which answers whole"):
        client.chat.completions.create(model="broken", messages=messages, stream=True)


def test_plain_http_clients_get_the_chain_output(start_gateway: Start) -> None:
    gw = start_gateway(chain_deployment("calories", "calories", '["an apple"]'))
    http = gw.http()
    r = http.post(
        "/v1/chat/completions",
        json={"model": "calories", "messages": [{"role": "user", "content": "an apple"}]},
    )
    assert r.status_code == 200, r.text
    assert json.loads(r.text)["choices"][0]["message"]["content"] == "95.0"

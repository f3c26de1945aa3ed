"""Prompt-based tool calling for the embedded provider.

Rendering runs real ``transformers`` chat templates on a word-level
tokenizer built here (cheap); one test serves the tiny random model through
the embedded provider, and one slow test asks the shipped SmolLM2 through a
real gateway with the openai SDK.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llmline.gateway.providers.tool_prompting import (
    offered_tools,
    parse_tool_calls,
    render_tool_prompt,
    with_tools_as_text,
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALC = {"type": "function", "function": {"name": "calculator", "parameters": {"type": "object"}}}
NAMES = ("weather", "calculator")

# SmolLM2's own template (it ignores tools and tool calls).
SMOL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are SmolLM<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# A template that knows tools (like Qwen's or Hermes'), much simplified.
TOOL_TEMPLATE = (
    "{% if tools %}<tools>{% for t in tools %}{{ t.function.name }};{% endfor %}</tools>\n"
    "{% endif %}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}"
    "{% for c in m.tool_calls or [] %}CALL {{ c.function.name }} "
    "{{ c.function.arguments | tojson }}{% endfor %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
# One that knows no tools and refuses a tool turn, as strict templates do.
STRICT_TEMPLATE = (
    "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tool role') }}"
    "{% endif %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
)


def template_of(chat_template: str) -> Callable[[list[dict[str, Any]], Any], str]:
    """A real transformers tokenizer with ``chat_template``, as the provider calls it."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]")  # type: ignore[no-untyped-call]
    tokenizer.chat_template = chat_template

    def render(messages: list[dict[str, Any]], tools: Any) -> str:
        return str(
            tokenizer.apply_chat_template(
                messages, tools=tools, tokenize=False, add_generation_prompt=True
            )
        )

    return render


def call(name: str, **arguments: Any) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def functions(answer: Any) -> list[tuple[str, Any]]:
    return [
        (c["function"]["name"], json.loads(c["function"]["arguments"])) for c in answer.tool_calls
    ]


# -- which tools ----------------------------------------------------------------------
def test_offered_tools_follow_tool_choice() -> None:
    both = {"tools": [WEATHER, CALC]}
    assert offered_tools(both) == [WEATHER, CALC]
    assert offered_tools({**both, "tool_choice": "none"}) == []
    assert offered_tools({**both, "tool_choice": "required"}) == [WEATHER, CALC]
    named = {"type": "function", "function": {"name": "calculator"}}
    assert offered_tools({**both, "tool_choice": named}) == [CALC]
    unknown = {"type": "function", "function": {"name": "nope"}}
    assert offered_tools({**both, "tool_choice": unknown}) == [WEATHER, CALC]
    assert offered_tools({"tools": [{"type": "retrieval"}, {"function": {}}, CALC]}) == [CALC]
    assert offered_tools({}) == []


# -- parsing --------------------------------------------------------------------------
def test_one_block_is_a_call_with_json_string_arguments() -> None:
    answer = parse_tool_calls(call("weather", city="Zürich"), NAMES)
    assert answer.text == ""
    assert functions(answer) == [("weather", {"city": "Zürich"})]
    only = answer.tool_calls[0]
    assert only["type"] == "function" and only["id"].startswith("call_")
    assert "Zürich" in only["function"]["arguments"]  # not \\u-escaped


def test_several_blocks_and_the_text_around_them() -> None:
    text = f"Let me check.\n{call('weather', city='Oslo')}\n{call('calculator', x='1+1')}\nDone."
    answer = parse_tool_calls(text, NAMES)
    assert functions(answer) == [("weather", {"city": "Oslo"}), ("calculator", {"x": "1+1"})]
    assert answer.text == "Let me check.\nDone."
    ids = {c["id"] for c in answer.tool_calls}
    assert len(ids) == 2


def test_a_last_unclosed_block_counts() -> None:
    text = '<tool_call>\n{"name": "weather", "arguments": {"city": "Rome"}}\n'
    assert functions(parse_tool_calls(text, NAMES)) == [("weather", {"city": "Rome"})]


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "weather", "arguments": {"city": </tool_call>',  # malformed
        call("stock_price", ticker="ACME"),  # unknown tool
        call("weather", city="Oslo") + '<tool_call>{"oops"}</tool_call>',  # one bad of two
        '<tool_call>{"name": "weather", "arguments": [1, 2]}</tool_call>',  # not an object
        '<tool_call>{"name": "weather", "arguments": "{not json"}</tool_call>',
        '<tool_call>["weather"]</tool_call>',
        '{"name": "weather"}',  # bare, but no arguments: a JSON answer, not a call
        '{"name": "nope", "arguments": {}}',
        "It is sunny in Oslo.",
        "",
    ],
)
def test_anything_else_stays_the_text_answer(text: str) -> None:
    answer = parse_tool_calls(text, NAMES)
    assert answer.tool_calls == () and answer.text == text


def test_bare_json_and_its_variants_are_calls() -> None:
    bare = '  {"name": "weather", "arguments": {"city": "Lima"}}\n'
    assert functions(parse_tool_calls(bare, NAMES)) == [("weather", {"city": "Lima"})]
    fenced = '```json\n{"name": "weather", "parameters": {"city": "Lima"}}\n```'
    assert functions(parse_tool_calls(fenced, NAMES)) == [("weather", {"city": "Lima"})]
    as_string = '{"name": "calculator", "arguments": "{\\"x\\": \\"2*3\\"}"}'
    assert functions(parse_tool_calls(as_string, NAMES)) == [("calculator", {"x": "2*3"})]
    assert parse_tool_calls(bare, NAMES).text == ""


# -- rendering ------------------------------------------------------------------------
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Oslo and Rome?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "a",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
            },
            {
                "id": "b",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "a", "content": "rain"},
    {"role": "tool", "tool_call_id": "b", "content": "sun"},
]


def test_a_template_that_ignores_tools_gets_them_as_a_system_turn() -> None:
    question = [{"role": "user", "content": "Weather in Oslo?"}]
    prompt = render_tool_prompt(template_of(SMOL_TEMPLATE), question, [WEATHER])
    assert prompt.startswith("<|im_start|>system\nYou can call these tools")
    assert "You are SmolLM" not in prompt  # our system turn replaces the default one
    assert json.dumps(WEATHER["function"]) in prompt
    assert "<tool_call>" in prompt and "otherwise answer the user normally" in prompt
    assert '<tool_call>{"name": "weather", "arguments": {"city": "..."}}</tool_call>' in prompt
    assert prompt.endswith("<|im_start|>user\nWeather in Oslo?<|im_end|>\n<|im_start|>assistant\n")


def test_an_existing_system_turn_keeps_its_text_and_gains_the_tools() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    prompt = render_tool_prompt(template_of(SMOL_TEMPLATE), messages, [WEATHER], "required")
    assert prompt.startswith("<|im_start|>system\nBe brief.\n\nYou can call these tools")
    assert "You must call a tool" in prompt
    assert prompt.count("<|im_start|>system") == 1


def test_history_with_tool_calls_and_results_renders_as_text_turns() -> None:
    prompt = render_tool_prompt(template_of(SMOL_TEMPLATE), HISTORY, [WEATHER])
    assert (
        '<|im_start|>assistant\n<tool_call>{"name": "weather", "arguments": {"city": "Oslo"}}'
        '</tool_call>\n<tool_call>{"name": "weather", "arguments": {"city": "Rome"}}</tool_call>'
        "<|im_end|>"
    ) in prompt
    merged = "<|im_start|>user\n<tool_response>\nrain\n</tool_response>\n<tool_response>\nsun"
    assert merged in prompt
    assert "<|im_start|>tool" not in prompt


def test_a_template_that_knows_tools_renders_them_itself() -> None:
    prompt = render_tool_prompt(template_of(TOOL_TEMPLATE), HISTORY, [WEATHER, CALC])
    assert prompt.startswith("<tools>weather;calculator;</tools>\n")
    assert "You can call these tools" not in prompt
    # the template got the arguments as a mapping, which is what HF templates expect
    assert 'CALL weather {"city": "Oslo"}' in prompt
    assert "<|tool|>rain" in prompt


def test_a_template_that_rejects_tool_turns_falls_back_to_text() -> None:
    prompt = render_tool_prompt(template_of(STRICT_TEMPLATE), HISTORY, [WEATHER])
    assert prompt.startswith("[system] You can call these tools")
    assert "[user] <tool_response>\nrain" in prompt


def test_no_template_joins_the_text_turns() -> None:
    prompt = render_tool_prompt(None, [{"role": "user", "content": "hi"}], [WEATHER])
    assert prompt.startswith("You can call these tools") and prompt.endswith("\nhi")


def test_text_fallback_leaves_the_callers_messages_alone() -> None:
    before = json.dumps(HISTORY)
    with_tools_as_text(HISTORY, [WEATHER])
    assert json.dumps(HISTORY) == before


# -- through the embedded provider (tiny random model) ------------------------------
@pytest.fixture(scope="module")
def tiny_ws(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from llmline.models import import_model
    from llmline.testing.models import tiny_causal_lm
    from llmline.workspace import init_workspace

    root = tmp_path_factory.mktemp("tools-tiny")
    workspace = init_workspace(root / "ws", load_sample_data=False)
    import_model(workspace, tiny_causal_lm(root / "model"), name="tiny", verify=False)
    return workspace


@pytest.mark.anyio
async def test_the_embedded_provider_offers_tools_unless_told_not_to(
    anyio_backend: str, tiny_ws: Any
) -> None:
    from llmline.gateway.providers import ProviderContext
    from llmline.gateway.providers.base import GenerationRequest
    from llmline.gateway.providers.embedded import create

    provider = create("embedded:tiny@1", ProviderContext(tiny_ws, {}))
    await provider.start()
    assert provider.health().ready, provider.health()
    try:
        messages = ({"role": "user", "content": "Weather in Oslo?"},)

        async def ask(**extra: Any) -> Any:
            request = GenerationRequest(messages=messages, max_tokens=6, temperature=0, extra=extra)
            return await provider.generate(request)

        plain, offered = await ask(), await ask(tools=[WEATHER])
        declined = await ask(tools=[WEATHER], tool_choice="none")
        schema_tokens = provider.count_tokens(json.dumps(WEATHER["function"]))
        assert offered.prompt_tokens > plain.prompt_tokens + schema_tokens
        assert declined.prompt_tokens == plain.prompt_tokens and declined.text == plain.text
        # a random model writes no valid call: its answer is the text, as generated
        assert offered.tool_calls == () and offered.finish_reason in ("stop", "length")
    finally:
        await provider.close()


# -- the shipped SmolLM2 through a real gateway --------------------------------------
@pytest.mark.slow
def test_smollm2_answers_a_tool_request_well_formed(start_gateway: Any, gateway_ws: Any) -> None:
    from llmline.agents.builtin import calories
    from llmline.models import import_model
    from tests.gateway.conftest import spec

    import_model(gateway_ws, "smollm2-135m-instruct")
    gateway = start_gateway(spec("smol", "smollm2-135m-instruct@1", raw=True))
    _wait_ready(gateway.http())
    reply = gateway.openai().chat.completions.create(
        model="smol",
        messages=[{"role": "user", "content": "How many calories are in 2 bananas?"}],
        tools=[calories.schema()],
        max_tokens=64,
        temperature=0,
    )
    choice = reply.choices[0]
    if choice.message.tool_calls:
        assert choice.finish_reason == "tool_calls"
        for tool_call in choice.message.tool_calls:
            assert tool_call.function.name == "calories" and tool_call.id.startswith("call_")
            assert isinstance(json.loads(tool_call.function.arguments), dict)
    else:
        assert choice.finish_reason in ("stop", "length") and choice.message.content
    assert reply.usage is not None and reply.usage.completion_tokens <= 64


def _wait_ready(http: Any) -> None:
    """Poll ``/readyz`` while the weights load; the limit only bounds a hang."""
    deadline = time.monotonic() + 300
    while http.get("/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"the gateway never became ready: {http.get('/readyz').text}")
        time.sleep(0.2)

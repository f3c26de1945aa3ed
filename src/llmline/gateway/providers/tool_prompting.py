"""Prompt-based tool calling for models served in-process (the embedded provider).

A local model has no tool-calling API: the tools go into the prompt and the
calls come back as text, the way vLLM's ``hermes`` tool parser reads them.

Rendering (:func:`render_tool_prompt`): the tokenizer's own chat template is
asked first, with ``tools=``; a template that ignores them (the rendered
text does not change, as with SmolLM2's) gets the tools as a system
message instead, with an instruction to answer either normally or with
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks.  In that
fallback, earlier tool calls and tool results in the history are written as
text turns, so templates that know nothing of them still show them.

Parsing (:func:`parse_tool_calls`): ``<tool_call>`` blocks (a last one left
unclosed counts too) or a bare JSON object with ``name``/``arguments`` as
the whole answer.  All blocks must be valid JSON naming a known tool, or
the answer is plain text: a half-understood call is worse than none.

``tool_choice``: ``"none"`` turns tools off; ``"required"`` and a named
function only change the instruction (and the named one narrows the tools
offered) -- best effort, since nothing forces a small model to comply.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ParsedAnswer",
    "offered_tools",
    "parse_tool_calls",
    "render_tool_prompt",
    "tool_instruction",
    "with_tools_as_text",
]

Message = dict[str, Any]
# Renders messages with the model's chat template; ``tools`` None means without tools.
Template = Callable[[list[Message], list[dict[str, Any]] | None], str]

_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)\Z", re.DOTALL)
_FENCE = re.compile(r"\A```(?:json)?\s*(.*?)\s*```\Z", re.DOTALL)


@dataclass(frozen=True)
class ParsedAnswer:
    """The model's answer: text outside any tool-call blocks, and the calls."""

    text: str
    tool_calls: tuple[dict[str, Any], ...] = ()


# -- which tools ----------------------------------------------------------------------
def offered_tools(extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The function tools a request offers the model (none for ``tool_choice: "none"``)."""
    choice = extra.get("tool_choice")
    if choice == "none":
        return []
    tools = [t for t in extra.get("tools") or () if _tool_name(t)]
    named = _chosen_name(choice)
    if named is not None:
        chosen = [t for t in tools if _tool_name(t) == named]
        return chosen or tools
    return tools


def _tool_name(tool: Any) -> str | None:
    if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
        return None
    function = tool.get("function")
    name = function.get("name") if isinstance(function, Mapping) else None
    return name if isinstance(name, str) and name else None


def _chosen_name(choice: Any) -> str | None:
    if isinstance(choice, Mapping):
        function = choice.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return str(function["name"])
    return None


# -- rendering ------------------------------------------------------------------------
def render_tool_prompt(
    template: Template | None,
    messages: Sequence[Message],
    tools: Sequence[dict[str, Any]],
    tool_choice: Any = None,
) -> str:
    """The prompt for ``messages`` with ``tools`` offered (see the module docstring).

    ``template`` is None for a model without a chat template: the turns'
    texts are then joined by newlines, as the embedded provider does.
    """
    if template is not None:
        native = [_with_dict_arguments(m) for m in messages]
        try:
            with_tools = template(native, list(tools))
            if with_tools != template(native, None):
                return with_tools
        except Exception:  # a template that rejects tool turns: the text fallback renders them
            pass
    as_text = with_tools_as_text(messages, tools, tool_choice)
    if template is None:
        return "\n".join(str(m.get("content") or "") for m in as_text)
    return template(as_text, None)


def tool_instruction(tools: Sequence[dict[str, Any]], tool_choice: Any = None) -> str:
    """The system text that offers ``tools`` to a model whose template does not."""
    schemas = "\n".join(json.dumps(t.get("function", t), ensure_ascii=False) for t in tools)
    if tool_choice == "required" or _chosen_name(tool_choice) is not None:
        how = "You must call a tool: answer only with one or more tool calls."
    else:
        how = "If a tool helps, call it; otherwise answer the user normally."
    return (
        "You can call these tools (JSON schemas):\n"
        f"{schemas}\n"
        f"{how} To call a tool, answer with exactly\n"
        '<tool_call>{"name": "TOOL_NAME", "arguments": {"ARGUMENT": "VALUE"}}</tool_call>\n'
        "one block per call. Tool results come back as <tool_response> messages.\n"
        f"Example:\n<tool_call>{_example_call(tools[0])}</tool_call>"
    )


def _example_call(tool: Mapping[str, Any]) -> str:
    """A call of ``tool`` with placeholder values: a concrete example is what
    gets a small model to write the format at all (measured on SmolLM2-135M)."""
    function = tool.get("function") or {}
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") or {}
    arguments = dict.fromkeys(properties, "...") if isinstance(properties, Mapping) else {}
    return json.dumps({"name": function.get("name"), "arguments": arguments}, ensure_ascii=False)


def with_tools_as_text(
    messages: Sequence[Message], tools: Sequence[dict[str, Any]], tool_choice: Any = None
) -> list[Message]:
    """``messages`` for a template that knows no tools: the tool instruction in
    the system turn, assistant tool calls as ``<tool_call>`` text, and tool
    results as user turns of ``<tool_response>`` blocks (consecutive ones merged)."""
    instruction = tool_instruction(tools, tool_choice)
    out: list[Message] = []
    for message in messages:
        role = message.get("role")
        content = str(message.get("content") or "")
        if role == "assistant" and message.get("tool_calls"):
            blocks = [_call_block(call) for call in message["tool_calls"]]
            out.append({"role": "assistant", "content": "\n".join([content, *blocks]).strip()})
        elif role == "tool":
            response = f"<tool_response>\n{content}\n</tool_response>"
            if out and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + response
            else:
                out.append({"role": "user", "content": response, "_tool_results": True})
        else:
            out.append({"role": role, "content": content})
    if out and out[0]["role"] in ("system", "developer"):
        out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{instruction}".strip()}
    else:
        out.insert(0, {"role": "system", "content": instruction})
    for message in out:
        message.pop("_tool_results", None)
    return out


def _call_block(call: Mapping[str, Any]) -> str:
    function = call.get("function") or {}
    payload = {"name": function.get("name"), "arguments": _arguments_dict(function)}
    return f"<tool_call>{json.dumps(payload, ensure_ascii=False)}</tool_call>"


def _arguments_dict(function: Mapping[str, Any]) -> Any:
    """OpenAI sends arguments as a JSON string; chat templates expect a mapping."""
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments if arguments is not None else {}


def _with_dict_arguments(message: Message) -> Message:
    calls = message.get("tool_calls")
    if not calls:
        return dict(message)
    converted = [
        {**call, "function": {**call["function"], "arguments": _arguments_dict(call["function"])}}
        for call in calls
        if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping)
    ]
    return {**message, "tool_calls": converted}


# -- parsing --------------------------------------------------------------------------
def parse_tool_calls(text: str, tool_names: Sequence[str]) -> ParsedAnswer:
    """``text`` read as tool calls of the known ``tool_names``, or as plain text."""
    known = set(tool_names)
    blocks = list(_BLOCK.finditer(text))
    if blocks:
        calls = [
            _as_call(m.group(1) if m.group(1) is not None else m.group(2), known) for m in blocks
        ]
        if any(call is None for call in calls):
            return ParsedAnswer(text)
        return ParsedAnswer(_outside(text, blocks), tuple(c for c in calls if c is not None))
    bare = _as_call(text, known, bare=True)
    return ParsedAnswer("", (bare,)) if bare is not None else ParsedAnswer(text)


def _outside(text: str, blocks: Sequence[re.Match[str]]) -> str:
    """The text between and around the blocks, one line per piece."""
    pieces, start = [], 0
    for block in blocks:
        pieces.append(text[start : block.start()])
        start = block.end()
    pieces.append(text[start:])
    return "\n".join(piece.strip() for piece in pieces if piece.strip())


def _as_call(raw: str, known: set[str], *, bare: bool = False) -> dict[str, Any] | None:
    """One OpenAI-format tool call from a JSON object, or None if it is not a
    valid one.  A ``bare`` answer (no block) must also spell out its arguments,
    so that a JSON answer that merely has a ``name`` is not taken for a call."""
    raw = raw.strip()
    fenced = _FENCE.match(raw)
    if fenced:
        raw = fenced.group(1)
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("name") not in known:
        return None
    if bare and not ("arguments" in payload or "parameters" in payload):
        return None
    # Llama-style models write "parameters"; some write the arguments as a JSON string.
    arguments = payload.get("arguments", payload.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return {
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {
            "name": payload["name"],
            "arguments": json.dumps(arguments, ensure_ascii=False),
        },
    }

"""Running a chain: each step in order, its output kept under its name.

A step that cannot do its job stops the run with a :class:`ChainStepError`
naming the step (``step 'foods' (parse json): ...``); the steps done before
are in the error's ``result`` for inspection.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from llmline._pydantic import problems
from llmline.agents.tools import ToolError, ToolRegistry
from llmline.chains.spec import (
    AggregateStep,
    ChainSpec,
    ModelStep,
    ParseStep,
    PromptStep,
    Step,
    ToolStep,
    type_adapter,
)
from llmline.errors import TemplateError, UserError
from llmline.prompts.template import Template

if TYPE_CHECKING:
    from llmline.agents.client import ChatClient
    from llmline.workspace import Workspace

__all__ = ["ChainError", "ChainResult", "ChainStepError", "StepResult", "run_chain"]

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")
_SNIPPET = 160


class ChainError(UserError, ValueError):
    """A chain cannot run: a missing or mistyped input, no client for a model step."""


@dataclass
class StepResult:
    id: str
    kind: str
    output: str  # the name its value is kept under
    value: Any
    ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None  # what served a model step
    skipped: list[str] = field(default_factory=list)  # items a tool step left out

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "output": self.output,
            "value": self.value,
            "ms": round(self.ms, 1),
        }
        if self.kind == "model":
            data.update(
                model=self.model,
                prompt_tokens=self.prompt_tokens,
                completion_tokens=self.completion_tokens,
            )
        if self.skipped:
            data["skipped"] = self.skipped
        return data


@dataclass
class ChainResult:
    name: str
    output: str
    value: Any
    inputs: dict[str, Any]
    steps: list[StepResult] = field(default_factory=list)
    ms: float = 0.0

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for s in self.steps)

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.steps)

    @property
    def outputs(self) -> dict[str, Any]:
        return {s.output: s.value for s in self.steps}

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain": self.name,
            "output": self.output,
            "value": self.value,
            "inputs": self.inputs,
            "steps": [s.to_dict() for s in self.steps],
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
            "ms": round(self.ms, 1),
        }


class ChainStepError(UserError, ValueError):
    """A step failed; ``result`` has the steps done before it."""

    def __init__(self, step: Step, message: str, result: ChainResult | None = None) -> None:
        self.step_id = step.id
        self.result = result
        detail = f" {step.parse}" if isinstance(step, ParseStep) else ""
        super().__init__(f"step {step.id!r} ({step.kind}{detail}): {message}")


@dataclass
class _Context:
    client: ChatClient | None
    tools: ToolRegistry
    deployment: str | None
    workspace: Workspace | None
    values: dict[str, Any]


async def run_chain(
    spec: ChainSpec,
    inputs: Mapping[str, Any],
    *,
    client: ChatClient | None = None,
    tools: ToolRegistry | None = None,
    deployment: str | None = None,
    workspace: Workspace | None = None,
) -> ChainResult:
    """Run ``spec`` on ``inputs``.  Model steps call ``client`` (their own
    ``deployment`` or this one); tool steps use ``tools`` (default: the
    shipped tools); template refs are read from ``workspace``'s registry."""
    from llmline.agents.builtin import builtin_tools

    values = _check_inputs(spec, inputs)
    context = _Context(client, tools or builtin_tools(workspace), deployment, workspace, values)
    result = ChainResult(spec.name, spec.output_name, None, dict(values))
    started = time.perf_counter()
    previous = spec.first_input
    for step in spec.steps:
        source = values[step.input or previous]
        step_started = time.perf_counter()
        try:
            record = await _run_step(step, source, context)
        except ChainStepError as exc:
            exc.result = result
            raise
        record.ms = (time.perf_counter() - step_started) * 1000
        result.steps.append(record)
        values[step.output_name] = record.value
        previous = step.output_name
    result.value = values[spec.output_name]
    result.ms = (time.perf_counter() - started) * 1000
    return result


def _check_inputs(spec: ChainSpec, inputs: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(inputs) - set(spec.inputs))
    if unknown:
        raise ChainError(
            f"chain {spec.name} has no input {', '.join(unknown)} "
            f"(inputs: {', '.join(spec.inputs)})"
        )
    values: dict[str, Any] = {}
    for name, type_text in spec.inputs.items():
        if name not in inputs:
            raise ChainError(f"chain {spec.name} needs the input {name} ({type_text})")
        try:
            values[name] = type_adapter(type_text).validate_python(inputs[name])
        except ValidationError as exc:
            raise ChainError(f"input {name} must be {type_text}: {problems(exc, name)}") from None
    return values


async def _run_step(step: Step, source: Any, context: _Context) -> StepResult:
    if isinstance(step, PromptStep):
        return StepResult(step.id, step.kind, step.output_name, _render(step, context), 0.0)
    if isinstance(step, ModelStep):
        return await _call_model(step, source, context)
    if isinstance(step, ParseStep):
        value = _validated(step, step.schema_, _parse(step, _text(source)))
        return StepResult(step.id, step.kind, step.output_name, value, 0.0)
    if isinstance(step, ToolStep):
        return await _call_tool(step, source, context)
    value = _validated(step, step.schema_, _aggregate(step, source))
    return StepResult(step.id, step.kind, step.output_name, value, 0.0)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _render(step: PromptStep, context: _Context) -> str:
    if step.prompt is not None:
        template = Template.parse(step.prompt)
    else:
        if context.workspace is None:
            raise ChainStepError(step, f"template {step.template} needs a workspace")
        from llmline.prompts import PromptRegistry

        assert step.template is not None
        template = PromptRegistry(context.workspace.metadata).get(step.template).template
    try:
        return template.render({k: _text(v) for k, v in context.values.items()})
    except TemplateError as exc:
        raise ChainStepError(step, str(exc)) from None


async def _call_model(step: ModelStep, source: Any, context: _Context) -> StepResult:
    from llmline.agents.client import ModelCallError

    if context.client is None:
        raise ChainError(f"step {step.id!r} calls a model: give a client (or --url)")
    call = step.model
    messages = [{"role": "system", "content": call.system}] if call.system else []
    for example in call.examples:
        messages.append({"role": "user", "content": example.user})
        messages.append({"role": "assistant", "content": example.assistant})
    messages.append({"role": "user", "content": _text(source)})
    try:
        reply = await context.client.complete(
            messages,
            model=call.deployment or context.deployment,
            max_tokens=call.max_tokens,
            temperature=call.temperature,
        )
    except ModelCallError as exc:
        raise ChainStepError(step, str(exc)) from None
    return StepResult(
        step.id,
        step.kind,
        step.output_name,
        reply.content,
        0.0,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        model=reply.model,
    )


def _snippet(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"


def _parse(step: ParseStep, text: str) -> Any:
    if step.parse == "json":
        return _first_json(step, text)
    if step.parse == "list":
        return _list(text)
    if step.parse == "regex":
        assert step.pattern is not None
        pattern = re.compile(step.pattern)
        found = pattern.findall(text)
        if not found:
            raise ChainStepError(step, f"no match of {step.pattern!r} in {_snippet(text)!r}")
        return found
    match = _NUMBER.search(text)
    if match is None:
        raise ChainStepError(step, f"no number in {_snippet(text)!r}")
    return float(match.group().replace(",", "."))


def _first_json(step: ParseStep, text: str) -> Any:
    """The whole text as JSON, else the first JSON array or object in it
    (models wrap JSON in prose and code fences)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch in "[{"):
        try:
            return decoder.raw_decode(text, start)[0]
        except json.JSONDecodeError:
            continue
    raise ChainStepError(step, f"no JSON value in {_snippet(text)!r}")


def _list(text: str) -> list[str]:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list):
            return [str(v) for v in value]
    lines = [_BULLET.sub("", line).strip() for line in stripped.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) == 1:
        lines = [p.strip() for p in re.split(r",|;|\band\b", lines[0]) if p.strip()]
    return lines


def _validated(step: Step, schema: str | None, value: Any) -> Any:
    if schema is None:
        return value
    try:
        return type_adapter(schema).validate_python(value)
    except ValidationError as exc:
        raise ChainStepError(
            step,
            f"the value is not {schema}: {problems(exc, 'value')} (got {_snippet(_text(value))!r})",
        ) from None


async def _call_tool(step: ToolStep, source: Any, context: _Context) -> StepResult:
    try:
        tool = context.tools.get(step.tool)
    except ToolError as exc:
        raise ChainStepError(step, str(exc)) from None
    argument = step.argument or next(iter(tool.arguments.model_fields), None)
    if step.map and not isinstance(source, list):
        raise ChainStepError(step, f"map: true needs a list, got {type(source).__name__}")
    items = source if step.map else [source]
    values, skipped = [], []
    for item in items:
        arguments = item if isinstance(item, dict) or argument is None else {argument: item}
        try:
            value = await tool.call(arguments)
        except Exception as exc:  # a tool's own error, reported with the item it failed on
            if step.on_error == "fail":
                raise ChainStepError(step, f"{step.tool} failed on {item!r}: {exc}") from None
            skipped.append(f"{item}: {exc}")
            continue
        values.append(value.to_dict() if hasattr(value, "to_dict") else value)
    output = values if step.map else values[0]
    return StepResult(step.id, step.kind, step.output_name, output, 0.0, skipped=skipped)


def _aggregate(step: AggregateStep, source: Any) -> Any:
    if not isinstance(source, list):
        raise ChainStepError(step, f"aggregate needs a list, got {type(source).__name__}")
    items = source
    if step.field is not None:
        missing = [i for i in items if not isinstance(i, dict) or step.field not in i]
        if missing:
            raise ChainStepError(step, f"item {_snippet(_text(missing[0]))} has no {step.field}")
        items = [i[step.field] for i in items]
    if step.aggregate == "count":
        return len(items)
    if step.aggregate == "join":
        return step.separator.join(_text(i) for i in items)
    numbers = [i for i in items if isinstance(i, int | float) and not isinstance(i, bool)]
    if len(numbers) != len(items):
        raise ChainStepError(step, f"{step.aggregate} needs numbers, got {_snippet(_text(items))}")
    if step.aggregate == "sum":
        return sum(numbers)
    if not numbers:
        raise ChainStepError(step, f"{step.aggregate} of an empty list")
    if step.aggregate == "mean":
        return sum(numbers) / len(numbers)
    return min(numbers) if step.aggregate == "min" else max(numbers)

"""Tools: Python functions a model may call, described in OpenAI's function format.

``@tool`` turns a typed function into a :class:`Tool`: its JSON schema comes
from the type hints (a pydantic model built from the signature), its
description from the docstring's first paragraph, and calls are validated
against the same model before the function runs.  Sync functions run in a
daemon thread so a hung one can be abandoned at its timeout without
blocking the event loop or the interpreter's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from llmline._pydantic import problems
from llmline.errors import UserError

__all__ = ["Tool", "ToolError", "ToolRegistry", "tool"]

DEFAULT_TOOL_TIMEOUT_S = 30.0


class ToolError(Exception):
    """A tool call that could not be made: unknown tool, bad arguments, timeout."""


@dataclass
class Tool:
    name: str
    description: str
    function: Callable[..., Any]
    arguments: type[BaseModel]  # validates and documents the arguments
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools=[...]`` entry of this tool."""
        parameters = self.arguments.model_json_schema()
        parameters.pop("title", None)
        for prop in parameters.get("properties", {}).values():
            prop.pop("title", None)
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": parameters,
            },
        }

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            model = self.arguments.model_validate(arguments)
        except ValidationError as exc:
            raise ToolError(
                f"invalid arguments for {self.name}: {problems(exc, 'arguments')}"
            ) from None
        return {name: getattr(model, name) for name in type(model).model_fields}

    async def call(self, arguments: dict[str, Any], timeout_s: float | None = None) -> Any:
        """Validate ``arguments`` and run the tool, within its timeout."""
        values = self.validate(arguments)
        limit = self.timeout_s if timeout_s is None else timeout_s
        if inspect.iscoroutinefunction(self.function):
            awaitable = self.function(**values)
        else:
            awaitable = _in_daemon_thread(self.function, values)
        try:
            return await asyncio.wait_for(awaitable, limit)
        except TimeoutError:
            raise ToolError(f"{self.name} timed out after {limit:g} s") from None


def _in_daemon_thread(function: Callable[..., Any], values: dict[str, Any]) -> asyncio.Future[Any]:
    """Run ``function`` in its own daemon thread.  ``asyncio.to_thread`` would
    use the loop's executor, whose shutdown waits for a hung tool forever."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # timed out and cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (function(**values), None)
        except BaseException as exc:
            outcome = (None, exc)
        # The loop may be gone when a hung tool finally returns: nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name=f"tool-{function.__name__}", daemon=True).start()
    return future


def _description(function: Callable[..., Any]) -> str:
    doc = inspect.getdoc(function) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip() or function.__name__


def _argument_docs(function: Callable[..., Any]) -> dict[str, str]:
    """``name: text`` lines of the docstring's ``Args:`` section (Google style)."""
    doc = inspect.getdoc(function) or ""
    _, found, section = doc.partition("Args:\n")
    docs: dict[str, str] = {}
    for line in section.splitlines() if found else ():
        if line and not line[0].isspace():
            break  # the next section
        match = re.match(r"\s+(\w+)(?:\s*\([^)]*\))?:\s*(.+)", line)
        if match:
            docs[match.group(1)] = match.group(2).strip()
    return docs


def _arguments_model(function: Callable[..., Any], name: str) -> type[BaseModel]:
    hints = get_type_hints(function)
    docs = _argument_docs(function)
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"tool {name}: *args and **kwargs cannot be described")
        if parameter.name not in hints:
            raise TypeError(f"tool {name}: parameter {parameter.name} needs a type hint")
        default = ... if parameter.default is parameter.empty else parameter.default
        described = Field(default, description=docs.get(parameter.name))
        fields[parameter.name] = (hints[parameter.name], described)
    model: type[BaseModel] = create_model(
        f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, timeout_s: float = DEFAULT_TOOL_TIMEOUT_S
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """``@tool`` or ``@tool(name=..., timeout_s=...)`` over a typed function."""

    def build(fn: Callable[..., Any]) -> Tool:
        tool_name = name or fn.__name__
        return Tool(tool_name, _description(fn), fn, _arguments_model(fn, tool_name), timeout_s)

    return build(function) if function is not None else build


@dataclass
class ToolRegistry:
    """Tools by name: what an agent may call and a chain's ``tool`` steps use."""

    tools: dict[str, Tool] = field(default_factory=dict)

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self.tools = {}
        for item in tools:
            self.add(item)

    def add(self, item: Tool | Callable[..., Any]) -> Tool:
        made = item if isinstance(item, Tool) else tool(item)
        self.tools[made.name] = made
        return made

    def get(self, name: str) -> Tool:
        try:
            return self.tools[name]
        except KeyError:
            known = ", ".join(sorted(self.tools)) or "none"
            raise ToolError(f"no tool named {name!r} (tools: {known})") from None

    def only(self, names: Iterable[str]) -> ToolRegistry:
        """The named tools (a user error names an unknown one)."""
        chosen = []
        for name in names:
            if name not in self.tools:
                known = ", ".join(sorted(self.tools))
                raise UserError(f"unknown tool {name!r}: the tools are {known}")
            chosen.append(self.tools[name])
        return ToolRegistry(chosen)

    def schemas(self) -> list[dict[str, Any]]:
        return [t.schema() for t in self.tools.values()]

    def __iter__(self) -> Iterator[Tool]:
        return iter(self.tools.values())

    def __len__(self) -> int:
        return len(self.tools)

    def __contains__(self, name: object) -> bool:
        return name in self.tools


def observation(value: Any) -> str:
    """A tool's result as the text the model reads."""
    if isinstance(value, str):
        return value
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    return json.dumps(value, ensure_ascii=False, default=str)

"""``llmline agent``: Tool-calling agents against any deployment."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from llmline.cli._common import JSON_OPTION, console, print_json
from llmline.cli.chain import (
    DEFAULT_URL,
    URL_OPTION,
    gateway_url,
    optional_workspace,
    run_and_print,
)

if TYPE_CHECKING:
    from llmline.agents import AgentResult

__all__ = ["app"]

app = typer.Typer(help="Tool-calling agents against any deployment.", no_args_is_help=True)
_WIDTH = 100


@app.command("run")
def run(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="What the agent should do.")],
    deployment: Annotated[
        str, typer.Option("--deployment", "-d", help="Deployment (or model) to call.")
    ],
    url: Annotated[str, URL_OPTION] = DEFAULT_URL,
    tools: Annotated[
        str | None,
        typer.Option("--tools", help="Comma-separated tools (default: all; see agent tools)."),
    ] = None,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, help="Model calls.")] = 8,
    max_tool_calls: Annotated[int, typer.Option("--max-tool-calls", min=0)] = 16,
    timeout: Annotated[float, typer.Option("--timeout", help="Whole run, seconds.")] = 120.0,
    tool_timeout: Annotated[float, typer.Option("--tool-timeout", help="Per tool call, s.")] = 30.0,
    token_budget: Annotated[
        int | None, typer.Option("--token-budget", help="Prompt + completion tokens, all calls.")
    ] = None,
    no_guard: Annotated[
        bool, typer.Option("--no-guard", help="Do not scan tool arguments with the guardrails.")
    ] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run an agent: the model calls tools until it answers or a quota stops it."""
    from llmline.agents import (
        AgentQuotas,
        OpenAIChatClient,
        ToolInputGuard,
        builtin_tools,
        run_agent,
    )

    registry = builtin_tools(optional_workspace(ctx))
    if tools:
        registry = registry.only(t.strip() for t in tools.split(",") if t.strip())
    quotas = AgentQuotas(
        max_steps=max_steps,
        max_tool_calls=max_tool_calls,
        timeout_s=timeout,
        token_budget=token_budget,
        tool_timeout_s=tool_timeout,
    )
    guard = None if no_guard else ToolInputGuard.default()
    client = OpenAIChatClient(gateway_url(url), api_key=os.environ.get("LLMLINE_API_KEY"))

    run_and_print(
        client,
        lambda: run_agent(
            task, client=client, model=deployment, tools=registry, quotas=quotas, guard=guard
        ),
        as_json=as_json,
        show=_print_result,
    )


def _line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "…"


def _print_result(result: AgentResult) -> None:
    for step in result.steps:
        if step.kind == "model":
            said = f"calls {', '.join(step.tool_calls)}" if step.tool_calls else "answers"
            tokens = step.prompt_tokens + step.completion_tokens
            console.print(
                f"step {step.step}  model {said}  ({tokens} tokens, {step.ms:.0f} ms)",
                markup=False,
            )
        else:
            mark = "✗" if step.error else "→"
            console.print(
                f"        {step.tool}({_line(step.arguments or '')}) {mark} {_line(step.content)}",
                markup=False,
            )
    console.print(
        f"finish_reason: {result.finish_reason}  steps: "
        f"{sum(s.kind == 'model' for s in result.steps)}  tool calls: {result.tool_calls}  "
        f"tokens: {result.total_tokens}",
        markup=False,
    )
    if result.answer:
        console.print(result.answer, markup=False)


@app.command("tools")
def list_tools(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """The tools an agent can use, with their JSON schemas (--json)."""
    from llmline.agents import builtin_tools

    registry = builtin_tools(optional_workspace(ctx))
    if as_json:
        print_json(registry.schemas())
        return
    for item in registry:
        console.print(f"[bold]{item.name}[/]  {item.description}")

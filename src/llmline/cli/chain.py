"""``llmline chain``: Declarative chains of prompt, model, parse and tool steps."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmline.cli._common import JSON_OPTION, console, print_json
from llmline.errors import UserError

if TYPE_CHECKING:
    from llmline.agents.client import OpenAIChatClient
    from llmline.chains import ChainResult, ChainSpec
    from llmline.workspace import Workspace

__all__ = ["app", "gateway_url", "optional_workspace", "run_and_print"]

app = typer.Typer(
    help="Declarative chains of prompt, model, parse and tool steps.", no_args_is_help=True
)

DEFAULT_URL = "http://127.0.0.1:8000"
URL_OPTION = typer.Option("--url", help="The gateway's (or any OpenAI-compatible server's) URL.")
_VALUE_WIDTH = 48


def gateway_url(url: str) -> str:
    """The ``/v1`` base URL of a server given by its root or its ``/v1`` URL."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def optional_workspace(ctx: typer.Context) -> Workspace | None:
    """The workspace when there is one (chains and agents also run without)."""
    from llmline.cli._common import workspace_from
    from llmline.errors import WorkspaceNotFoundError

    try:
        return workspace_from(ctx)
    except WorkspaceNotFoundError:
        return None


def _inputs(spec: ChainSpec, pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise UserError(f"--input {pair!r}: write NAME=VALUE")
        value: Any = text
        if spec.inputs.get(name, "str") != "str":  # numbers and lists are given as JSON
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
        values[name] = value
    return values


@app.command("run")
def run(
    ctx: typer.Context,
    chain: Annotated[str, typer.Argument(help="Chain YAML file, or a shipped chain's name.")],
    inputs: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="NAME=VALUE (repeat).")
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option("--deployment", "-d", help="Deployment for model steps naming none."),
    ] = None,
    url: Annotated[str, URL_OPTION] = DEFAULT_URL,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a chain; model steps call the gateway at --url."""
    from llmline.agents.client import OpenAIChatClient
    from llmline.chains import find_chain, load_chain, run_chain

    spec = load_chain(find_chain(chain))
    values = _inputs(spec, inputs or [])
    client = OpenAIChatClient(
        gateway_url(url), model=deployment, api_key=os.environ.get("LLMLINE_API_KEY")
    )
    workspace = optional_workspace(ctx)

    run_and_print(
        client,
        lambda: run_chain(spec, values, client=client, workspace=workspace),
        as_json=as_json,
        show=_print_result,
    )


def run_and_print(
    client: OpenAIChatClient,
    work: Callable[[], Awaitable[Any]],
    *,
    as_json: bool,
    show: Callable[[Any], None],
) -> None:
    """Run ``work`` (closing ``client`` after), print its result's JSON or ``show`` it."""

    async def go() -> Any:
        try:
            return await work()
        finally:
            await client.aclose()

    result = asyncio.run(go())
    if as_json:
        print_json(result.to_dict())
        return
    show(result)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "⏎ ")
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 1] + "…"


def _print_result(result: ChainResult) -> None:
    """One line per step (long values cut; --json has them whole), then the output."""
    console.print(f"chain {result.name}", markup=False)
    for step in result.steps:
        tokens = (
            f"{step.prompt_tokens}+{step.completion_tokens} tok" if step.kind == "model" else ""
        )
        console.print(
            f"  {step.id:<10} {step.kind:<9} → {step.output:<12} {step.ms:>6.0f} ms "
            f"{tokens:>11}  {_short(step.value)}",
            markup=False,
        )
        for item in step.skipped:
            console.print(f"  {'':<10} skipped: {item}", markup=False)
    console.print(f"{result.output} = {_short(result.value)}", markup=False)


@app.command("list")
def list_chains(as_json: bool = JSON_OPTION) -> None:
    """The shipped example chains."""
    from llmline.chains import example_chains, load_chain

    rows = [
        {"name": name, "description": load_chain(path).description, "path": str(path)}
        for name, path in example_chains().items()
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        console.print(f"[bold]{row['name']}[/]  {row['description']}  ({row['path']})")


@app.command("show")
def show(
    chain: Annotated[str, typer.Argument(help="Chain YAML file, or a shipped chain's name.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """A chain's inputs, steps and output, validated."""
    from llmline.chains import find_chain, load_chain

    spec = load_chain(find_chain(chain))
    if as_json:
        print_json(spec.model_dump(mode="json", by_alias=True, exclude_none=True))
        return
    console.print(f"[bold]{spec.name}[/]  {spec.description}")
    console.print("inputs: " + ", ".join(f"{n}: {t}" for n, t in spec.inputs.items()))
    for step in spec.steps:
        console.print(f"  {step.id:<12} {step.kind:<10} → {step.output_name}", markup=False)
    console.print(f"output: {spec.output_name}", markup=False)

"""``llmline prompts``: versioned prompt templates and their aliases."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from llmline.cli._common import JSON_OPTION, console, print_json, workspace_from
from llmline.errors import UserError

if TYPE_CHECKING:
    from llmline.prompts import PromptRegistry

app = typer.Typer(
    help="Prompt templates: immutable versions, movable aliases.", no_args_is_help=True
)


def _registry(ctx: typer.Context) -> PromptRegistry:
    from llmline.prompts import PromptRegistry

    return PromptRegistry(workspace_from(ctx).metadata)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Template name.")],
    template: Annotated[str | None, typer.Option("--template", help="Template text.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Read the text from a file.")] = None,
    description: Annotated[str, typer.Option(help="What this version changes.")] = "",
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a version of a template ({variable} placeholders, {{ }} for braces)."""
    if (template is None) == (file is None):
        raise UserError("give exactly one of --template TEXT or --file FILE")
    if file is not None:
        try:
            template = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {file}: {exc}") from None
    assert template is not None
    info, created = _registry(ctx).create(name, template, description=description)
    if as_json:
        print_json({**info.to_dict(), "created": created})
        return
    verb = "created" if created else "unchanged, same text as"
    console.print(f"{verb} {info.ref} (variables: {', '.join(info.variables)})")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """The latest version of every template."""
    infos = _registry(ctx).list()
    if as_json:
        print_json([i.to_dict() for i in infos])
        return
    table = Table("name", "latest", "aliases", "variables", "created")
    for i in infos:
        table.add_row(
            i.name,
            str(i.version),
            ", ".join(i.aliases),
            ", ".join(i.variables),
            f"{i.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one template version and its text."""
    info = _registry(ctx).get(ref)
    if as_json:
        print_json(info.to_dict())
        return
    console.print(f"[bold]{info.ref}[/]  aliases: {', '.join(info.aliases) or '-'}")
    console.print(f"variables: {', '.join(info.variables)}   sha256: {info.sha256[:12]}")
    console.print(info.text, markup=False)


@app.command("alias")
def alias(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to point at.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. production.")],
) -> None:
    """Point an alias (e.g. production) at a version."""
    info = _registry(ctx).set_alias(ref, alias_name)
    console.print(f"{info.name}@{alias_name} -> {info.ref}")

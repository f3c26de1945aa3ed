"""``llmline models``: base models, the model registry, gated promotion."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from llmline.cli._common import JSON_OPTION, console, err_console, print_json, workspace_from

if TYPE_CHECKING:
    from llmline.models import ModelRegistry, ModelVersionInfo, Promotion

app = typer.Typer(
    help="Models: import base models, list versions, promote with gates, roll back.",
    no_args_is_help=True,
)

REF_HELP = "NAME, NAME@VERSION, NAME@ALIAS or NAME@latest."


def _registry(ctx: typer.Context) -> ModelRegistry:
    from llmline.models import ModelRegistry

    return ModelRegistry(workspace_from(ctx).metadata)


@app.command("import")
def import_(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(help="A GGUF file, a local model folder, or a built-in name."),
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Model name (default: derived).")
    ] = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Skip the logits check of a GGUF conversion.")
    ] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Import a base model once, as safetensors (same content: version reused)."""
    from llmline.models import import_model

    workspace = workspace_from(ctx)
    started = time.perf_counter()
    with err_console.status(f"importing {source} (a GGUF file takes about a minute)"):
        info = import_model(workspace, source, name=name, verify=not no_verify)
    status = "created" if info.created else "unchanged"
    if as_json:
        print_json({**info.to_dict(), "status": status})
        return
    verb = "imported" if info.created else "unchanged, same content as"
    params = info.metadata.get("parameters")
    size = f"{params / 1e6:.1f}M parameters, " if isinstance(params, int) else ""
    console.print(
        f"{verb} {info.ref} ({size}{info.metadata.get('dtype', '?')}) "
        f"in {time.perf_counter() - started:.1f}s",
        markup=False,
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="List this model's versions.")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """The latest version of every model, or every version of NAME."""
    registry = _registry(ctx)
    infos = registry.versions(name) if name else registry.list()
    if as_json:
        print_json([i.to_dict() for i in infos])
        return
    table = Table("model", "version", "kind", "format", "aliases", "base", "created")
    for i in infos:
        table.add_row(
            i.name,
            str(i.version),
            i.kind,
            i.format,
            ", ".join(i.aliases),
            i.base or "",
            f"{i.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help=REF_HELP)],
    verify: Annotated[
        bool, typer.Option("--verify", help="Re-hash every file against the registry.")
    ] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one model version: source, files, metadata."""
    info = _registry(ctx).get(ref)
    if verify:
        from llmline.models import verify_files

        verify_files(workspace_from(ctx), info)
    if as_json:
        print_json({**info.to_dict(), "verified": verify})
        return
    _print_info(info)
    if verify:
        console.print("files verified")


def _print_info(info: ModelVersionInfo) -> None:
    console.print(f"[bold]{info.ref}[/]  {info.kind}, {info.format}")
    for label, value in (
        ("aliases", ", ".join(info.aliases) or "-"),
        ("base", info.base or "-"),
        ("source", info.source),
        ("uri", info.uri),
        ("created", f"{info.created_at:%Y-%m-%d %H:%M:%S %Z}"),
    ):
        console.print(f"  {label}: {value}", markup=False)
    for key in ("architecture", "parameters", "dtype", "metrics", "run", "dataset"):
        if key in info.metadata:
            console.print(f"  {key}: {info.metadata[key]}", markup=False)


@app.command("alias")
def alias(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to point at.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. staging.")],
) -> None:
    """Point an alias (e.g. staging) at a version; champion moves by promote."""
    info = _registry(ctx).set_alias(ref, alias_name)
    console.print(f"{info.name}@{alias_name} -> {info.ref}", markup=False)


@app.command("promote")
def promote(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help=REF_HELP)],
    gate: Annotated[
        list[str] | None,
        typer.Option(
            "--gate",
            help="METRIC>=N, METRIC<=N or METRIC>=base[+-N] (repeatable; default: "
            "promotion.gates in llmline.yaml).",
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="Read the evaluations on this dataset (default: promotion.dataset, "
            "else the dataset the version was tuned on).",
        ),
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="...and this split (default: eval).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Promote despite failing gates.")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (needed by --force).")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Make a version the model's champion, if its gates pass.

    Gates are checked against the newest stored evaluation (`llmline eval run`)
    of the version, and of its base for METRIC>=base gates.
    """
    from llmline.evaluation import promotion_gate
    from llmline.models import Gate

    gates = [Gate.parse(text) for text in gate] if gate else None
    check = promotion_gate(workspace_from(ctx), gates, dataset_ref=dataset, split=split)
    result = _registry(ctx).promote(ref, gates=check, force=force, reason=reason)
    _print_promotion(result, as_json)


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, for the audit trail.")
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Move champion back to the previous champion."""
    _print_promotion(_registry(ctx).rollback(name, reason=reason), as_json)


def _print_promotion(result: Promotion, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    info = result.version
    if not result.changed:
        console.print(f"{info.ref} already is the champion", markup=False)
        return
    was = f"{info.name}@{result.previous}" if result.previous is not None else "none"
    console.print(f"{result.action}: champion {info.ref} (was {was})", markup=False)
    for failure in result.failures:
        err_console.print(f"overridden gate: {failure}", markup=False)


@app.command("events")
def events(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """The audit trail: every promotion, rollback and alias move."""
    rows = _registry(ctx).events(name)
    if as_json:
        print_json([e.to_dict() for e in rows])
        return
    table = Table("when", "action", "alias", "from", "to", "actor", "reason")
    for e in rows:
        table.add_row(
            f"{e.created_at:%Y-%m-%d %H:%M:%S}",
            e.action,
            e.alias,
            "-" if e.from_version is None else str(e.from_version),
            str(e.to_version),
            e.actor,
            e.reason or "",
        )
    console.print(table)

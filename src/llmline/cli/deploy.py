"""``llmline deploy``: deployments a running gateway serves (applied
without restarting it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from llmline.cli._common import JSON_OPTION, authorize, console, print_json, workspace_from
from llmline.errors import UserError

if TYPE_CHECKING:
    from llmline.gateway.deployments import DeploymentInfo

app = typer.Typer(
    help="Deployments: names clients call, their models and rollout strategy.",
    no_args_is_help=True,
)


def _weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise UserError(
            f"--weights {text!r}: give numbers separated by commas, e.g. 70,30"
        ) from None


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The name clients send as 'model'.")],
    models: Annotated[
        list[str],
        typer.Option(
            "--model",
            help="A registry ref (NAME@VERSION/@champion) or upstream:NAME; "
            "repeat for several. Canary/shadow: stable then challenger.",
        ),
    ],
    strategy: Annotated[
        str,
        typer.Option(help="random, weighted, least-busy, latency, canary, shadow or blue-green."),
    ] = "random",
    weights: Annotated[
        str | None, typer.Option(help="weighted: one per model, e.g. 70,30.")
    ] = None,
    prompt: Annotated[
        str | None, typer.Option(help="Prompt template ref (default: the tuning template).")
    ] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Send messages without a template.")] = False,
    fallback: Annotated[
        list[str] | None, typer.Option("--fallback", help="Tried in order when models fail.")
    ] = None,
    canary_percent: Annotated[float, typer.Option(help="canary: share to the challenger.")] = 10.0,
    promote_after: Annotated[
        int, typer.Option(help="canary: challenger requests within SLO before promotion.")
    ] = 100,
    max_error_rate: Annotated[float, typer.Option(help="canary: rollback above this.")] = 0.05,
    max_p95_ms: Annotated[
        float | None, typer.Option(help="canary: rollback above this p95 latency.")
    ] = None,
    sticky: Annotated[
        str | None, typer.Option(help="user or key: same caller, same model.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of random routing.")] = None,
    semantic_cache: Annotated[
        bool, typer.Option("--semantic-cache", help="Answer similar questions from the cache.")
    ] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Change an existing one.")] = False,
    kind: Annotated[
        str, typer.Option(help="model, or rag: retrieve from --kb and ground the answer.")
    ] = "model",
    kb: Annotated[
        str | None, typer.Option("--kb", help="rag: knowledge base NAME or NAME@VERSION.")
    ] = None,
    top_k: Annotated[int, typer.Option(help="rag: chunks retrieved per question.")] = 5,
    max_context_tokens: Annotated[
        int, typer.Option(help="rag: retrieved text in the prompt, at most.")
    ] = 1500,
    grounded_only: Annotated[
        bool, typer.Option("--grounded-only", help="rag: refuse when nothing relevant is found.")
    ] = False,
    min_score: Annotated[
        float | None, typer.Option(help="rag: dense similarity a chunk needs to ground.")
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create (or --replace) a deployment; registry refs are pinned to versions."""
    from llmline.gateway.deployments import parse_spec
    from llmline.gateway.deployments.api import create_deployment

    spec = parse_spec(
        {
            "name": name,
            "models": models,
            "strategy": strategy,
            "weights": _weights(weights),
            "prompt": prompt,
            "raw": raw,
            "fallbacks": fallback or [],
            "sticky": sticky,
            "seed": seed,
            "canary": {
                "percent": canary_percent,
                "promote_after": promote_after,
                "max_error_rate": max_error_rate,
                "max_p95_ms": max_p95_ms,
            },
            "cache": {"semantic": semantic_cache},
            **_rag_fields(ctx, kind, kb, top_k, max_context_tokens, grounded_only, min_score),
        },
        where=f"deployment {name}",
    )
    authorize(ctx, "deployments.write")
    info, changed = create_deployment(workspace_from(ctx), spec, replace=replace)
    if as_json:
        print_json({**info.to_dict(), "status": "saved" if changed else "unchanged"})
        return
    verb = "saved" if changed else "unchanged:"
    console.print(
        f"{verb} deployment {info.name} (revision {info.revision}): {info.spec.strategy} over "
        f"{', '.join(info.spec.models)}",
        markup=False,
    )


def _rag_fields(
    ctx: typer.Context,
    kind: str,
    kb: str | None,
    top_k: int,
    max_context_tokens: int,
    grounded_only: bool,
    min_score: float | None,
) -> dict[str, object]:
    if kind != "rag":
        if kb is not None:
            raise UserError("--kb is for --kind rag deployments")
        return {"kind": kind}
    if kb is None:
        raise UserError("--kind rag needs --kb KNOWLEDGE_BASE (see `llmline rag list`)")
    from llmline.rag.catalog import get_version

    get_version(workspace_from(ctx), kb)  # fail now, not at the first request
    policy = {
        "knowledge_base": kb,
        "top_k": top_k,
        "max_context_tokens": max_context_tokens,
        "grounded_only": grounded_only,
        "min_score": min_score,
    }
    return {"kind": "rag", "rag": policy}


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Every deployment with its strategy, models and rollout phase."""
    from llmline.gateway.deployments import DeploymentStore

    authorize(ctx, "deployments.read")
    infos = DeploymentStore(workspace_from(ctx).metadata).list()
    if as_json:
        print_json([i.to_dict() for i in infos])
        return
    table = Table("name", "strategy", "models", "live", "phase", "revision", "source")
    for i in infos:
        table.add_row(
            i.name,
            i.spec.strategy,
            ", ".join(i.spec.models),
            i.spec.models[i.state.live],
            i.state.phase,
            str(i.revision),
            i.source,
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """A deployment's spec, state and history."""
    from llmline.gateway.deployments import DeploymentStore

    authorize(ctx, "deployments.read")
    store = DeploymentStore(workspace_from(ctx).metadata)
    info = store.get(name)
    events = store.events(name)
    if as_json:
        print_json({**info.to_dict(), "events": [e.to_dict() for e in events]})
        return
    _print_info(info)
    table = Table("revision", "action", "reason", "actor", "at")
    for e in events:
        table.add_row(str(e.revision), e.action, e.reason or "", e.actor, e.created_at.isoformat())
    console.print(table)


def _print_info(info: DeploymentInfo) -> None:
    spec, state = info.spec, info.state
    lines = [
        f"deployment {info.name} (revision {info.revision}, from {info.source})",
        f"  strategy   {spec.strategy}" + (f" weights {spec.weights}" if spec.weights else ""),
        f"  models     {', '.join(spec.models)}",
        f"  live       {spec.models[state.live]} ({state.phase}: {state.reason})",
        f"  prompt     {spec.prompt or ('raw' if spec.raw else 'the tuning template')}",
    ]
    if spec.fallbacks:
        lines.append(f"  fallbacks  {', '.join(spec.fallbacks)}")
    if spec.rag is not None:
        r = spec.rag
        lines.append(
            f"  rag        {r.knowledge_base}: top {r.top_k} {r.mode}, <= {r.max_context_tokens} "
            f"tokens" + (", grounded only" if r.grounded_only else "")
        )
    if spec.strategy == "canary":
        c = spec.canary
        lines.append(
            f"  canary     {c.percent:g}% to challenger, promote after {c.promote_after}, "
            f"rollback above {c.max_error_rate:.0%} errors"
            + (f" or p95 {c.max_p95_ms:g} ms" if c.max_p95_ms else "")
        )
    console.print("\n".join(lines), markup=False)


def _manual(ctx: typer.Context, name: str, action: str, as_json: bool) -> None:
    from llmline.gateway.deployments.api import promote_deployment, rollback_deployment

    change = promote_deployment if action == "promote" else rollback_deployment
    authorize(ctx, "deployments.write")
    info = change(workspace_from(ctx), name)
    if as_json:
        print_json(info.to_dict())
        return
    console.print(
        f"{info.name}: {info.state.reason}; live is {info.spec.models[info.state.live]} "
        f"(revision {info.revision})",
        markup=False,
    )


@app.command("promote")
def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Canary/shadow: the challenger takes all traffic; blue-green: switch colour."""
    _manual(ctx, name, "promote", as_json)


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Deployment name.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Undo the last promotion at once (blue-green: back to the previous colour)."""
    _manual(ctx, name, "rollback", as_json)


@app.command("delete")
def delete(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Deployment name.")]
) -> None:
    """Stop serving a deployment (running gateways drop it within a second)."""
    from llmline.gateway.deployments import DeploymentStore

    authorize(ctx, "deployments.write")
    DeploymentStore(workspace_from(ctx).metadata).delete(name)
    console.print(f"deleted deployment {name}", markup=False)

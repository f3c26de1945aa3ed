"""``llmline lineage``: what an artifact came from and what was made from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from llmline.cli._common import JSON_OPTION, console, print_json, workspace_from
from llmline.workspace import Workspace

if TYPE_CHECKING:
    from llmline.storage.lineage import ArtifactRef, Edge


def lineage(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            help="KIND:REF (e.g. prompt:stackoverflow-python@1) or a dataset NAME[@VERSION]."
        ),
    ],
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the upstream and downstream lineage graph of an artifact."""
    from llmline.storage.lineage import walk

    workspace = workspace_from(ctx)
    root = _resolve(workspace, ref)
    with workspace.metadata.read_session() as session:
        graph = walk(session, root)
    if as_json:
        print_json(graph.to_dict())
        return
    console.print(f"[bold]{root}[/]", markup=True)
    _print_side("upstream (made from)", graph.upstream, up=True)
    _print_side("downstream (used by)", graph.downstream, up=False)


def _resolve(workspace: Workspace, ref: str) -> ArtifactRef:
    from llmline.storage.lineage import ArtifactRef

    kind, sep, rest = ref.partition(":")
    if sep and kind.isidentifier():
        return ArtifactRef(kind, rest)
    from llmline.data.catalog import get_version

    info = get_version(workspace, ref)
    return ArtifactRef("dataset", info.ref)


def _print_side(title: str, edges: list[Edge], *, up: bool) -> None:
    console.print(f"  {title}:")
    if not edges:
        console.print("    (none)")
    for edge in edges:
        other = edge.src if up else edge.dst
        console.print(f"    {'<-' if up else '->'} {other}  [{edge.relation}]", markup=False)

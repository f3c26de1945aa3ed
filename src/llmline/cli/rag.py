"""``llmline rag``: ingest, list, show and query knowledge bases."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmline.cli._common import JSON_OPTION, console, err_console, print_json, workspace_from
from llmline.errors import UserError

if TYPE_CHECKING:
    from llmline.rag.catalog import KnowledgeBaseInfo
    from llmline.rag.ingestion import IngestResult
    from llmline.rag.kb import Hit, Mode

__all__ = ["app"]

app = typer.Typer(
    help="Knowledge bases for RAG: ingest documents, search them.", no_args_is_help=True
)


@app.command("ingest")
def ingest(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Knowledge base name.")],
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Files and folders: .txt .md .rst .html .pdf (folders recursively)."),
    ] = None,
    builtin: Annotated[
        list[str] | None,
        typer.Option("--builtin", help="A built-in corpus to add: pydoc-topics."),
    ] = None,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", help="Largest chunk, in MiniLM word pieces.")
    ] = 512,
    overlap: Annotated[
        int, typer.Option("--overlap", help="Word pieces a chunk repeats from the one before.")
    ] = 64,
    as_json: bool = JSON_OPTION,
) -> None:
    """Read, chunk, embed and index documents as a new knowledge base version."""
    from llmline.rag.chunking import ChunkingOptions
    from llmline.rag.ingestion import ingest_knowledge_base

    workspace = workspace_from(ctx)
    options = ChunkingOptions(chunk_size, overlap)
    with _ProgressBar(name, quiet=as_json) as update:
        result = ingest_knowledge_base(
            workspace,
            name,
            list(paths or []),
            builtins=list(builtin or []),
            options=options,
            on_progress=update,
        )
    if as_json:
        print_json(result.to_dict())
        return
    _print_ingest(result)


class _ProgressBar:
    """A transient progress bar on stderr, fed by ingest's callback."""

    def __init__(self, name: str, *, quiet: bool) -> None:
        self.name = name
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            # Off when stderr is not a terminal: a log or a pipe gets no bar residue.
            disable=quiet or not err_console.is_terminal,
        )

    def __enter__(self) -> Any:
        self.bar.__enter__()
        task = self.bar.add_task(f"ingesting {self.name}", total=None)

        def update(stage: str, done: int, total: int) -> None:
            self.bar.update(task, description=f"{self.name}: {stage}", completed=done, total=total)

        return update

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)


def _print_ingest(result: IngestResult) -> None:
    state = "[green]created[/]" if result.status == "created" else "[yellow]unchanged[/]"
    console.print(f"{state} [bold]{result.ref}[/]")
    console.print(f"  location: {result.uri}", markup=False)
    console.print(
        f"  {result.documents} documents, {result.chunks} chunks, index {result.index}; "
        f"embedded {result.embedded}, reused {result.reused}"
    )
    for skip in result.skipped:
        console.print(f"  [yellow]skipped[/] {skip.path}: {skip.reason}", highlight=False)
    total = result.seconds.get("total")
    if total is not None:
        console.print(f"  took {total:.1f} s")


@app.command("list")
def list_(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this knowledge base.")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """List knowledge base versions, oldest first."""
    from llmline.rag.catalog import list_versions

    versions = list_versions(workspace_from(ctx), name)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    table = Table("knowledge base", "version", "documents", "chunks", "model", "index", "created")
    for v in versions:
        table.add_row(
            v.name,
            v.version,
            str(v.documents),
            str(v.chunks),
            f"{v.embedding_model} ({v.embedding_dim})",
            v.index_type,
            f"{v.created_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@latest or NAME@VERSION.")],
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a version: its sources, chunking, embedding model and indexes."""
    from llmline.rag.catalog import get_version

    info = get_version(workspace_from(ctx), ref)
    if as_json:
        print_json(info.to_dict(with_manifest=True))
        return
    _print_version(info)


def _print_version(info: KnowledgeBaseInfo) -> None:
    m: dict[str, Any] = info.manifest
    console.print(f"[bold]{info.ref}[/]")
    console.print(f"  location: {info.uri}", markup=False)
    console.print(f"  content hash: {info.content_hash}")
    console.print(f"  embedding: {info.embedding_model} ({info.embedding_dim} dims)")
    chunking = m["chunking"]
    console.print(
        f"  chunking: {chunking['chunk_size']} / overlap {chunking['overlap']} ({chunking['unit']})"
    )
    dense, counts = m["index"]["dense"], m["counts"]
    console.print(
        f"  index: {dense['type']} + BM25; {counts['documents']} documents, "
        f"{counts['chunks']} chunks, {counts['tokens']} word pieces"
    )
    table = Table("type", "chunks", "sha256")
    table.add_column("source", overflow="fold")
    for source in m["sources"]:
        table.add_row(source["type"], str(source["chunks"]), source["sha256"][:16], source["uri"])
    console.print(table)


@app.command("query")
def query(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@latest or NAME@VERSION.")],
    question: Annotated[str, typer.Argument(help="What to search for.")],
    k: Annotated[int, typer.Option("--k", "-k", help="How many chunks.")] = 5,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, dense or bm25.")] = "hybrid",
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter", help="FIELD=VALUE on chunk metadata (source, type, title, section, page)."
        ),
    ] = None,
    mmr: Annotated[bool, typer.Option("--mmr", help="Diversify with MMR.")] = False,
    rerank: Annotated[bool, typer.Option("--rerank", help="Rerank by best window.")] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Search a knowledge base; show the chunks, their scores and sources."""
    from llmline.rag.kb import QueryTruncatedWarning, open_version

    workspace = workspace_from(ctx)
    with open_version(workspace, ref) as kb, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QueryTruncatedWarning)
        # search() validates the mode and names the allowed ones.
        chosen = cast("Mode", mode)
        hits = kb.search(
            question, k=k, mode=chosen, filters=_filters(filters), mmr=mmr, rerank=rerank
        )
        kb_ref = kb.ref
    for warning in caught:
        err_console.print(f"warning: {warning.message}", markup=False)
    if as_json:
        print_json(
            {"knowledge_base": kb_ref, "query": question, "mode": mode, "hits": _dicts(hits)}
        )
        return
    _print_hits(kb_ref, hits)


def _filters(items: list[str] | None) -> dict[str, list[str]] | None:
    if not items:
        return None
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--filter must look like FIELD=VALUE, got {item!r}")
        out.setdefault(key.strip(), []).append(value)
    return out


def _dicts(hits: list[Hit]) -> list[dict[str, Any]]:
    return [{"rank": i, **hit.to_dict()} for i, hit in enumerate(hits, start=1)]


def _print_hits(kb_ref: str, hits: list[Hit]) -> None:
    console.print(f"[bold]{kb_ref}[/]: {len(hits)} chunk(s)")
    for i, hit in enumerate(hits, start=1):
        console.print(
            f"[bold]{i}.[/] {hit.score:.4f}  {hit.title}  ({hit.source} [{hit.start}:{hit.end}])",
            highlight=False,
        )
        snippet = " ".join(hit.text.split())
        console.print(f"   {snippet[:300]}{'…' if len(snippet) > 300 else ''}", markup=False)

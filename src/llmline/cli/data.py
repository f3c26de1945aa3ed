"""``llmline data``: build, list, show and verify dataset versions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmline.cli._common import JSON_OPTION, console, err_console, print_json, workspace_from
from llmline.data.spec import DatasetSpec
from llmline.errors import ConfigError
from llmline.settings import read_config_file
from llmline.workspace import Workspace

if TYPE_CHECKING:
    from llmline.data.builder import BuildResult
    from llmline.data.catalog import DatasetVersionInfo

app = typer.Typer(
    help="Datasets: build versions from the warehouse, inspect them.", no_args_is_help=True
)


@app.command("build")
def build(
    ctx: typer.Context,
    spec: Annotated[
        str | None,
        typer.Argument(help="Dataset name in llmline.yaml, or a spec YAML file. Default: all."),
    ] = None,
    as_json: bool = JSON_OPTION,
    from_feedback: Annotated[
        bool,
        typer.Option(
            "--from-feedback",
            help="Build from gateway feedback: accepted corrections and highly rated answers.",
        ),
    ] = False,
    name: Annotated[
        str | None,
        typer.Option(help="--from-feedback: dataset name (default: BASE-feedback or feedback)."),
    ] = None,
    min_rating: Annotated[
        float, typer.Option(help="--from-feedback: answers rated at least this (thumbs up = 5).")
    ] = 4,
    since: Annotated[
        str | None, typer.Option(help="--from-feedback: only feedback since 7d, 24h, a date…")
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(help="--from-feedback: merge this dataset version's rows (NAME[@VERSION])."),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(help="--from-feedback: prompt template for every question (NAME@VERSION)."),
    ] = None,
    accepted_only: Annotated[
        bool, typer.Option(help="--from-feedback: ratings count only once accepted.")
    ] = False,
) -> None:
    """Extract, clean, de-duplicate, scrub, template, split and version a dataset."""
    workspace = workspace_from(ctx)
    if from_feedback:
        if spec is not None:
            raise ConfigError("--from-feedback builds from feedback: name it with --name, not SPEC")
        _build_feedback(workspace, name, min_rating, since, base, template, accepted_only, as_json)
        return
    targets = _targets(workspace, spec)
    results = [_build_one(workspace, name, s, quiet=as_json) for name, s in targets]
    if as_json:
        print_json([r.to_dict() for r in results] if spec is None else results[0].to_dict())
        return
    for result in results:
        _print_build(result)


def _build_feedback(
    workspace: Workspace,
    name: str | None,
    min_rating: float,
    since: str | None,
    base: str | None,
    template: str | None,
    accepted_only: bool,
    as_json: bool,
) -> None:
    from llmline.data.feedback_dataset import build_from_feedback
    from llmline.monitoring.feedback import parse_since

    result = build_from_feedback(
        workspace,
        name,
        min_rating=min_rating,
        since=parse_since(since),
        base=base,
        template=template,
        accepted_only=accepted_only,
    )
    if as_json:
        print_json({**result.to_dict(), "feedback": result.manifest.get("feedback")})
        return
    _print_build(result)
    used = result.manifest.get("feedback", {}).get("rows_from_feedback", {})
    console.print(
        f"  from feedback: {used.get('corrections', 0)} corrections, "
        f"{used.get('rated_answers', 0)} rated answers"
        + (f", merged with {result.manifest['base']['ref']}" if result.manifest.get("base") else "")
    )


def _targets(workspace: Workspace, spec: str | None) -> list[tuple[str, DatasetSpec | None]]:
    if spec is None:
        names = sorted(workspace.settings.datasets)
        if not names:
            raise ConfigError("llmline.yaml defines no datasets; name a spec file")
        return [(name, None) for name in names]
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        data = read_config_file(path)
        name = data.pop("name", path.stem)
        try:
            return [(str(name), DatasetSpec(**data))]
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{path}: {where}: {err['msg']}") from None
    return [(spec, None)]


def _build_one(
    workspace: Workspace, name: str, spec: DatasetSpec | None, *, quiet: bool
) -> BuildResult:
    from llmline.data.builder import build_dataset

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} rows"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=quiet,
    ) as progress:
        task = progress.add_task(f"building {name}", total=None)

        def update(stage: str, n: int) -> None:
            progress.update(task, description=f"{name}: {stage}", completed=n)

        return build_dataset(workspace, name, spec, on_progress=update)


def _print_build(result: BuildResult) -> None:
    r = result.report
    state = "[green]created[/]" if result.status == "created" else "[yellow]unchanged[/]"
    console.print(f"{state} [bold]{result.ref}[/]")
    console.print(f"  location: {result.uri}", markup=False)
    console.print(
        f"  rows: {r.rows_read} read, {r.dropped_empty} empty, {r.dropped_length} out of length "
        f"bounds, {r.exact_duplicates} exact and {r.near_duplicates} near duplicates removed"
    )
    console.print("  splits: " + ", ".join(f"{k} {v}" for k, v in r.splits.items()))
    pii = ", ".join(f"{k} {v}" for k, v in r.pii_redactions.items()) or "none found"
    console.print(f"  PII redacted: {pii}")


@app.command("list")
def list_(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this dataset.")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """List dataset versions, oldest first."""
    from llmline.data.catalog import list_versions

    versions = list_versions(workspace_from(ctx), name)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    table = Table("dataset", "version", "rows", "splits", "created")
    for v in versions:
        splits = ", ".join(f"{k} {n}" for k, n in v.splits.items())
        table.add_row(
            v.dataset,
            v.version,
            str(sum(v.splits.values())),
            splits,
            f"{v.created_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@latest or NAME@VERSION.")],
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash every file.")] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a version's manifest; --verify re-hashes its files."""
    from llmline.data.catalog import get_version, verify_version

    workspace = workspace_from(ctx)
    info = get_version(workspace, ref)
    verified = verify_version(workspace, info) if verify else None
    if as_json:
        print_json({**info.to_dict(with_manifest=True), "verified": verified is not None})
        return
    _print_version(info)
    if verified is not None:
        console.print(f"[green]verified[/]: {len(verified)} files match their sha256")


def _print_version(info: DatasetVersionInfo) -> None:
    m: dict[str, Any] = info.manifest
    console.print(f"[bold]{info.ref}[/]")
    console.print(f"  location: {info.uri}", markup=False)
    console.print(f"  content hash: {info.content_hash}")
    console.print(f"  template: {m['template']['resolved']} (asked for {m['template']['ref']})")
    console.print(
        "  sources: " + ", ".join(f"{t} [{fp}]" for t, fp in m["sources"].items()), markup=False
    )
    console.print(f"  seed: {m['seed']}   split: {m['split_fractions']}")
    table = Table("file", "rows", "bytes", "sha256")
    for fname, meta in m["files"].items():
        table.add_row(fname, str(meta["rows"]), str(meta["bytes"]), meta["sha256"][:16])
    console.print(table)
    report = m["report"]
    pii = ", ".join(f"{k} {v}" for k, v in report["pii_redactions"].items()) or "none"
    console.print(
        f"  {report['rows_read']} rows read, {report['exact_duplicates']} exact / "
        f"{report['near_duplicates']} near duplicates removed, PII redacted: {pii}"
    )

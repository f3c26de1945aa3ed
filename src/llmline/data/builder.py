"""``data build``: warehouse SQL → cleaned, templated, split, versioned dataset.

1. run the spec's SQL inside the warehouse and stream Arrow batches;
2. clean, scrub PII, filter, template and sign each batch (``transform``);
3. stage rows in a private DuckDB file, drop exact and near duplicates;
4. export each split as JSONL + Parquet, sorted by a hash of key and seed;
5. publish the folder atomically and record version + lineage in one
   metadata transaction.  Identical output reuses the existing version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlglot
from sqlglot import exp

from llmline.data.dedup import lsh_params
from llmline.data.spec import DatasetSpec
from llmline.data.staging import Staging
from llmline.data.transform import BatchTransformer
from llmline.errors import DatasetError, EmptyResultError, MissingColumnsError, NotFoundError
from llmline.prompts.registry import PromptInfo, PromptRegistry
from llmline.storage.artifacts import sha256_file
from llmline.storage.scratch import scratch_dir, sweep
from llmline.warehouse import Warehouse, transpile
from llmline.workspace import Workspace

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from llmline.storage.lineage import ArtifactRef

__all__ = [
    "BuildPlan",
    "BuildReport",
    "BuildResult",
    "ProgressCallback",
    "build_dataset",
    "plan_fingerprint",
    "publish_version",
    "resolve_spec",
]

ProgressCallback = Callable[[str, int], None]
MANIFEST = "manifest.json"


@dataclass
class BuildReport:
    rows_read: int = 0
    dropped_empty: int = 0
    dropped_length: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    pii_redactions: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)

    @property
    def rows_written(self) -> int:
        return sum(self.splits.values())


@dataclass
class BuildResult:
    dataset: str
    version: str
    status: Literal["created", "unchanged"]
    content_hash: str
    uri: str
    report: BuildReport
    manifest: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "ref": self.ref,
            "status": self.status,
            "content_hash": self.content_hash,
            "uri": self.uri,
            "report": {**asdict(self.report), "rows_written": self.report.rows_written},
        }


def resolve_spec(workspace: Workspace, name: str) -> DatasetSpec:
    try:
        return workspace.settings.datasets[name]
    except KeyError:
        known = ", ".join(sorted(workspace.settings.datasets)) or "none"
        raise NotFoundError(f"no dataset {name!r} in llmline.yaml (known: {known})") from None


@dataclass(frozen=True)
class BuildPlan:
    """Everything a build is made from, resolved before any row is read."""

    name: str
    spec: DatasetSpec
    prompt: PromptInfo
    sql: str  # in the engine's dialect
    source_dialect: str  # the dialect the spec's SQL is written in
    engine: str
    sources: dict[str, str]  # table -> content fingerprint


def build_dataset(
    workspace: Workspace,
    name: str,
    spec: DatasetSpec | None = None,
    *,
    on_progress: ProgressCallback | None = None,
) -> BuildResult:
    """Build dataset ``name`` (its spec from ``llmline.yaml`` unless given)."""
    spec = spec or resolve_spec(workspace, name)
    prompt = PromptRegistry(workspace.metadata).get(spec.template)
    progress = on_progress or (lambda _stage, _n: None)
    tmp_root = workspace.state_dir / "tmp"
    workspace.artifacts.remove_stale_staging()
    sweep(tmp_root)
    with (
        workspace.warehouse(read_only=True) as warehouse,
        scratch_dir(tmp_root) as tmp,
        workspace.artifacts.stage() as out,
    ):
        plan = _plan(workspace, name, spec, prompt, warehouse)
        staging = Staging(tmp / "staging.duckdb")
        try:
            report = _stage_rows(warehouse, plan, staging, progress)
            files = _export(staging, spec, out, progress)
        finally:
            staging.close()
        return _publish(workspace, plan, out, files, report)


def plan_fingerprint(workspace: Workspace, name: str, spec: DatasetSpec | None = None) -> str:
    """A hash of everything a build of ``name`` would be made from (spec,
    resolved template, SQL, source table fingerprints) without reading a row.

    Equal fingerprints mean a build would give the same version, which is
    what lets a pipeline skip the build step when nothing upstream changed.
    """
    spec = spec or resolve_spec(workspace, name)
    prompt = PromptRegistry(workspace.metadata).get(spec.template)
    with workspace.warehouse(read_only=True) as warehouse:
        plan = _plan(workspace, name, spec, prompt, warehouse)
    from llmline import __version__

    document = {
        "name": plan.name,
        "spec": spec.model_dump(mode="json"),
        "prompt": [plan.prompt.ref, plan.prompt.sha256],
        "sql": plan.sql,
        "engine": plan.engine,
        "sources": plan.sources,
        "llmline": __version__,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _plan(
    workspace: Workspace,
    name: str,
    spec: DatasetSpec,
    prompt: PromptInfo,
    warehouse: Warehouse,
) -> BuildPlan:
    dialect = spec.query_dialect or workspace.settings.sql_dialect
    sql = _prepare_sql(workspace, spec, dialect, warehouse, prompt)
    return BuildPlan(
        name, spec, prompt, sql, dialect, warehouse.dialect, _source_fingerprints(warehouse, sql)
    )


def _prepare_sql(
    workspace: Workspace, spec: DatasetSpec, dialect: str, warehouse: Warehouse, prompt: PromptInfo
) -> str:
    # The table map points BigQuery's public paths at local tables; on
    # BigQuery itself those paths are real and stay as written.
    table_map = None if warehouse.dialect == "bigquery" else workspace.settings.table_map
    sql = transpile(
        spec.query,
        read=dialect,
        write=warehouse.dialect,
        table_map=table_map,
    )
    available = warehouse.result_columns(sql)
    needed = list(dict.fromkeys([*prompt.variables, spec.output_column, spec.key_column]))
    missing = [c for c in needed if c not in available]
    if missing:
        raise MissingColumnsError(missing, available)
    return sql


def _source_fingerprints(warehouse: Warehouse, sql: str) -> dict[str, str]:
    """Content fingerprints of the tables the query reads (CTEs excluded)."""
    tree = sqlglot.parse_one(sql, read=warehouse.dialect)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    names = sorted({exp.table_name(t) for t in tree.find_all(exp.Table)} - ctes)
    return {name: warehouse.fingerprint(name) for name in names}


def _stage_rows(
    warehouse: Warehouse, plan: BuildPlan, staging: Staging, progress: ProgressCallback
) -> BuildReport:
    spec = plan.spec
    lsh = lsh_params(spec.cleaning.near_threshold)
    transform = BatchTransformer(spec, plan.prompt.template, lsh)
    for batch in warehouse.iter_batches(plan.sql):
        staging.append(transform(batch))
        progress("extract", transform.counts.rows_read)
    counts = transform.counts
    if counts.rows_read == 0:
        raise EmptyResultError("query returned 0 rows")
    report = BuildReport(
        rows_read=counts.rows_read,
        dropped_empty=counts.dropped_empty,
        dropped_length=counts.dropped_length,
        pii_redactions=dict(sorted(counts.pii.items())),
    )
    if staging.count() == 0:
        raise EmptyResultError(
            f"no rows left after cleaning ({counts.rows_read} read, {counts.dropped_empty} empty, "
            f"{counts.dropped_length} outside {spec.cleaning.min_chars}-"
            f"{spec.cleaning.max_chars} characters)"
        )
    report.exact_duplicates = staging.number_rows(drop_exact_duplicates=spec.cleaning.dedup_exact)
    progress("dedup", staging.count())
    if spec.cleaning.dedup_near:
        report.near_duplicates = staging.drop_near_duplicates(spec.cleaning.near_threshold)
    counts_by_split = staging.split_counts()
    report.splits = {name: counts_by_split.get(name, 0) for name in spec.split.fractions}
    return report


def _export(
    staging: Staging, spec: DatasetSpec, out: Path, progress: ProgressCallback
) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for split in spec.split.fractions:
        for path in staging.export(split, out):
            files[path.name] = path
        progress("export", len(files))
    return files


def _content_hash(file_hashes: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(file_hashes):
        digest.update(f"{name}\t{file_hashes[name]}\n".encode())
    return digest.hexdigest()


def _manifest(plan: BuildPlan, files: dict[str, Path], report: BuildReport) -> dict[str, Any]:
    from llmline import __version__

    spec = plan.spec
    rows = {
        f"{split}.{ext}": n for split, n in report.splits.items() for ext in ("jsonl", "parquet")
    }
    return {
        "dataset": plan.name,
        "format": "jsonl+parquet",
        "schema": {"input_text": "string", "output_text": "string"},
        "splits": report.splits,
        "files": {
            name: {"sha256": sha256_file(path), "bytes": path.stat().st_size, "rows": rows[name]}
            for name, path in sorted(files.items())
        },
        "sql": {
            "text": spec.query,
            "dialect": plan.source_dialect,
            "executed": plan.sql,
            "engine": plan.engine,
        },
        "template": {
            "ref": spec.template,
            "resolved": plan.prompt.ref,
            "sha256": plan.prompt.sha256,
        },
        "sources": plan.sources,
        "seed": spec.split.seed,
        "split_fractions": spec.split.fractions,
        "cleaning": spec.cleaning.model_dump(),
        "key_column": spec.key_column,
        "output_column": spec.output_column,
        "report": {**asdict(report), "rows_written": report.rows_written},
        "llmline_version": __version__,
    }


def _publish(
    workspace: Workspace, plan: BuildPlan, out: Path, files: dict[str, Path], report: BuildReport
) -> BuildResult:
    return publish_version(workspace, plan, out, _manifest(plan, files, report), report)


def publish_version(
    workspace: Workspace,
    plan: BuildPlan,
    out: Path,
    manifest: dict[str, Any],
    report: BuildReport,
    *,
    link: Callable[[Session, ArtifactRef], None] | None = None,
) -> BuildResult:
    """Content-hash the files in ``out``, publish them as a new version
    (or find the identical one) and record it with its lineage."""
    from llmline.data.catalog import find_by_hash, record_version

    content_hash = _content_hash({n: meta["sha256"] for n, meta in manifest["files"].items()})
    existing = find_by_hash(workspace, plan.name, content_hash)
    if existing is not None:
        return BuildResult(
            plan.name,
            existing.version,
            "unchanged",
            content_hash,
            existing.uri,
            report,
            existing.manifest,
        )
    created = datetime.now(UTC).replace(microsecond=0)
    version = f"{created:%Y%m%dT%H%M%SZ}-{content_hash[:8]}"
    manifest = {
        "version": version,
        "created_at": created.isoformat(),
        "content_hash": content_hash,
        **manifest,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    relpath = f"datasets/{plan.name}/{version}"
    if not workspace.artifacts.publish(out, relpath):
        raise DatasetError(f"artifact folder {relpath} already exists; retry in a second")
    uri = workspace.artifacts.uri(relpath)
    record_version(
        workspace,
        plan,
        version=version,
        content_hash=content_hash,
        uri=uri,
        manifest=manifest,
        link=link,
    )
    return BuildResult(plan.name, version, "created", content_hash, uri, report, manifest)

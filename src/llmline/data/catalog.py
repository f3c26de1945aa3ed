"""Datasets and their versions in the metadata store: record, list, show, verify."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmline.errors import IntegrityError, NotFoundError
from llmline.storage.lineage import ArtifactRef, add_edge
from llmline.storage.models import Dataset, DatasetVersion, utcnow
from llmline.workspace import Workspace

if TYPE_CHECKING:
    from llmline.data.builder import BuildPlan

__all__ = [
    "DatasetVersionInfo",
    "find_by_hash",
    "get_version",
    "list_versions",
    "record_version",
    "verify_version",
]


@dataclass(frozen=True)
class DatasetVersionInfo:
    dataset: str
    version: str
    content_hash: str
    uri: str
    created_at: datetime
    manifest: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"

    @property
    def splits(self) -> dict[str, int]:
        return dict(self.manifest.get("splits", {}))

    def to_dict(self, *, with_manifest: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "version": self.version,
            "ref": self.ref,
            "content_hash": self.content_hash,
            "uri": self.uri,
            "created_at": self.created_at.isoformat(),
            "splits": self.splits,
            "rows": sum(self.splits.values()),
        }
        if with_manifest:
            out["manifest"] = self.manifest
        return out


def dataset_ref(name: str, version: str) -> ArtifactRef:
    return ArtifactRef("dataset", f"{name}@{version}")


def record_version(
    workspace: Workspace,
    plan: BuildPlan,
    *,
    version: str,
    content_hash: str,
    uri: str,
    manifest: dict[str, Any],
    link: Callable[[Session, ArtifactRef], None] | None = None,
) -> None:
    """Insert the version and its lineage edges in one transaction;
    ``link`` adds a builder's own edges (into the version's ref) in it too."""
    with workspace.metadata.session() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == plan.name))
        if dataset is None:
            dataset = Dataset(
                name=plan.name, description=plan.spec.description, created_at=utcnow()
            )
            session.add(dataset)
            session.flush()
        session.add(
            DatasetVersion(
                dataset_id=dataset.id,
                version=version,
                content_hash=content_hash,
                uri=uri,
                manifest=manifest,
                created_at=utcnow(),
            )
        )
        target = dataset_ref(plan.name, version)
        for table, fingerprint in plan.sources.items():
            source = ArtifactRef("table", f"{table}@{fingerprint}")
            add_edge(session, source, target, "extracted_into")
        add_edge(session, ArtifactRef("prompt", plan.prompt.ref), target, "templated")
        if link is not None:
            link(session, target)


def _info(row: DatasetVersion) -> DatasetVersionInfo:
    return DatasetVersionInfo(
        dataset=row.dataset.name,
        version=row.version,
        content_hash=row.content_hash,
        uri=row.uri,
        created_at=row.created_at,
        manifest=dict(row.manifest),
    )


def find_by_hash(workspace: Workspace, name: str, content_hash: str) -> DatasetVersionInfo | None:
    with workspace.metadata.read_session() as session:
        row = session.scalar(
            select(DatasetVersion)
            .join(Dataset)
            .where(Dataset.name == name, DatasetVersion.content_hash == content_hash)
        )
        return _info(row) if row else None


def list_versions(workspace: Workspace, name: str | None = None) -> list[DatasetVersionInfo]:
    """Every version (of one dataset, or of all), oldest first."""
    with workspace.metadata.read_session() as session:
        query = select(DatasetVersion).join(Dataset)
        if name is not None:
            _dataset(session, name)
            query = query.where(Dataset.name == name)
        rows = session.scalars(
            query.order_by(Dataset.name, DatasetVersion.created_at, DatasetVersion.id)
        )
        return [_info(row) for row in rows]


def get_version(workspace: Workspace, ref: str) -> DatasetVersionInfo:
    """``NAME``, ``NAME@latest`` or ``NAME@VERSION`` (a unique prefix is enough)."""
    name, _, selector = ref.partition("@")
    with workspace.metadata.read_session() as session:
        dataset = _dataset(session, name)
        versions = sorted(dataset.versions, key=lambda v: (v.created_at, v.id))
        if not versions:
            raise NotFoundError(
                f"dataset {name!r} has no versions yet; run `llmline data build {name}`"
            )
        if selector in ("", "latest"):
            return _info(versions[-1])
        matches = [v for v in versions if v.version.startswith(selector)]
        if len(matches) != 1:
            problem = "no" if not matches else "more than one"
            raise NotFoundError(f"dataset {name!r} has {problem} version matching {selector!r}")
        return _info(matches[0])


def _dataset(session: Session, name: str) -> Dataset:
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        raise NotFoundError(f"no dataset named {name!r}")
    return dataset


def verify_version(workspace: Workspace, info: DatasetVersionInfo) -> dict[str, str]:
    """Re-hash every file the manifest lists; raise IntegrityError naming the
    first file that differs or is missing.  Returns file → sha256."""
    store = workspace.artifacts
    relpath = info.uri.removeprefix(store.root + "/")
    stored = json.loads(store.read_bytes(f"{relpath}/manifest.json"))
    if stored.get("content_hash") != info.content_hash:
        raise IntegrityError(f"{info.ref}: manifest.json does not match the recorded version")
    hashes = {}
    for fname, meta in info.manifest["files"].items():
        if not store.exists(f"{relpath}/{fname}"):
            raise IntegrityError(f"{info.ref}: {fname} is missing")
        actual = store.hash_file(f"{relpath}/{fname}")
        if actual != meta["sha256"]:
            raise IntegrityError(
                f"{info.ref}: {fname} was modified "
                f"(sha256 {actual[:12]}…, expected {meta['sha256'][:12]}…)"
            )
        hashes[fname] = actual
    return hashes

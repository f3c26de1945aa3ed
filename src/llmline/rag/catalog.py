"""Knowledge bases and their versions in the metadata store: record (with
lineage), find by content hash, list and resolve references."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.orm import Session

from llmline.errors import IntegrityError, NotFoundError, UserError
from llmline.storage.kb_tables import KnowledgeBaseRow, KnowledgeBaseVersionRow
from llmline.storage.lineage import ArtifactRef, add_edge
from llmline.storage.models import utcnow
from llmline.workspace import Workspace

__all__ = [
    "KnowledgeBaseInfo",
    "check_name",
    "find_by_hash",
    "get_version",
    "kb_ref",
    "list_versions",
    "local_folder",
    "record_version",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UserError(
            f"bad knowledge base name {name!r}: use letters, digits, '.', '_' or '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return name


@dataclass(frozen=True)
class KnowledgeBaseInfo:
    name: str
    version: str
    content_hash: str
    uri: str
    created_at: datetime
    embedding_model: str
    embedding_dim: int
    chunks: int
    manifest: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def documents(self) -> int:
        return int(self.manifest["counts"]["documents"])

    @property
    def chunking(self) -> dict[str, Any]:
        return dict(self.manifest["chunking"])

    @property
    def index_type(self) -> str:
        return str(self.manifest["index"]["dense"]["type"])

    def to_dict(self, *, with_manifest: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "knowledge_base": self.name,
            "version": self.version,
            "ref": self.ref,
            "content_hash": self.content_hash,
            "uri": self.uri,
            "created_at": self.created_at.isoformat(),
            "documents": self.documents,
            "chunks": self.chunks,
            "embedding": {"model": self.embedding_model, "dim": self.embedding_dim},
            "chunking": {
                "chunk_size": self.chunking["chunk_size"],
                "overlap": self.chunking["overlap"],
            },
            "index": self.index_type,
        }
        if with_manifest:
            out["manifest"] = self.manifest
        return out


def kb_ref(name: str, version: str) -> ArtifactRef:
    return ArtifactRef("kb", f"{name}@{version}")


def record_version(
    workspace: Workspace, info: KnowledgeBaseInfo, *, description: str = ""
) -> KnowledgeBaseInfo | None:
    """Insert the version and its lineage in one transaction.

    Returns None when it was recorded, or the version another process
    recorded for the same content first (the caller reports that one)."""
    try:
        with workspace.metadata.session() as session:
            _insert(session, info, description)
            _add_lineage(session, info)
    except DBIntegrityError:
        existing = find_by_hash(workspace, info.name, info.content_hash)
        if existing is None:
            raise
        return existing
    return None


def _insert(session: Session, info: KnowledgeBaseInfo, description: str) -> None:
    kb = session.scalar(select(KnowledgeBaseRow).where(KnowledgeBaseRow.name == info.name))
    if kb is None:
        kb = KnowledgeBaseRow(name=info.name, description=description, created_at=utcnow())
        session.add(kb)
        session.flush()
    session.add(
        KnowledgeBaseVersionRow(
            knowledge_base_id=kb.id,
            version=info.version,
            content_hash=info.content_hash,
            uri=info.uri,
            embedding_model=info.embedding_model,
            embedding_dim=info.embedding_dim,
            chunks=info.chunks,
            manifest=info.manifest,
            created_at=info.created_at,
        )
    )
    session.flush()


def _add_lineage(session: Session, info: KnowledgeBaseInfo) -> None:
    """source file (with its sha256) → chunk set → knowledge base version."""
    m = info.manifest
    chunk_set = ArtifactRef("chunks", f"{info.name}@{m['chunk_set_hash'][:16]}")
    for source in m["sources"]:
        add_edge(
            session,
            ArtifactRef("source", f"{source['uri']}@{source['sha256']}"),
            chunk_set,
            "chunked_into",
            {"sha256": source["sha256"], "type": source["type"], "chunks": source["chunks"]},
        )
    add_edge(
        session,
        chunk_set,
        kb_ref(info.name, info.version),
        "indexed_into",
        {
            "chunks": info.chunks,
            "chunk_size": m["chunking"]["chunk_size"],
            "overlap": m["chunking"]["overlap"],
            "embedding_model": info.embedding_model,
            "embedding_dim": info.embedding_dim,
            "index": m["index"]["dense"]["type"],
        },
    )


def _info(row: KnowledgeBaseVersionRow) -> KnowledgeBaseInfo:
    return KnowledgeBaseInfo(
        name=row.knowledge_base.name,
        version=row.version,
        content_hash=row.content_hash,
        uri=row.uri,
        created_at=row.created_at,
        embedding_model=row.embedding_model,
        embedding_dim=row.embedding_dim,
        chunks=row.chunks,
        manifest=dict(row.manifest),
    )


def find_by_hash(workspace: Workspace, name: str, content_hash: str) -> KnowledgeBaseInfo | None:
    with workspace.metadata.read_session() as session:
        row = session.scalar(
            select(KnowledgeBaseVersionRow)
            .join(KnowledgeBaseRow)
            .where(
                KnowledgeBaseRow.name == name, KnowledgeBaseVersionRow.content_hash == content_hash
            )
        )
        return _info(row) if row else None


def list_versions(workspace: Workspace, name: str | None = None) -> list[KnowledgeBaseInfo]:
    """Every version (of one knowledge base, or of all), oldest first."""
    with workspace.metadata.read_session() as session:
        query = select(KnowledgeBaseVersionRow).join(KnowledgeBaseRow)
        if name is not None:
            _knowledge_base(session, name)
            query = query.where(KnowledgeBaseRow.name == name)
        rows = session.scalars(
            query.order_by(
                KnowledgeBaseRow.name,
                KnowledgeBaseVersionRow.created_at,
                KnowledgeBaseVersionRow.id,
            )
        )
        return [_info(row) for row in rows]


def get_version(workspace: Workspace, ref: str) -> KnowledgeBaseInfo:
    """``NAME``, ``NAME@latest`` or ``NAME@VERSION`` (a unique prefix is enough)."""
    name, _, selector = ref.partition("@")
    with workspace.metadata.read_session() as session:
        kb = _knowledge_base(session, name)
        versions = sorted(kb.versions, key=lambda v: (v.created_at, v.id))
        if not versions:
            raise NotFoundError(f"knowledge base {name!r} has no versions")
        if selector in ("", "latest"):
            return _info(versions[-1])
        matches = [v for v in versions if v.version.startswith(selector)]
        if len(matches) != 1:
            problem = "no" if not matches else "more than one"
            raise NotFoundError(
                f"knowledge base {name!r} has {problem} version matching {selector!r}"
            )
        return _info(matches[0])


def _knowledge_base(session: Session, name: str) -> KnowledgeBaseRow:
    kb = session.scalar(select(KnowledgeBaseRow).where(KnowledgeBaseRow.name == name))
    if kb is None:
        raise NotFoundError(
            f"no knowledge base named {name!r}; create it with `llmline rag ingest {name} PATH...`"
        )
    return kb


def local_folder(workspace: Workspace, info: KnowledgeBaseInfo) -> Path:
    """The version's folder on this machine (indexes are read memory-mapped)."""
    if not workspace.artifacts.is_local:
        raise UserError(
            f"{info.ref} lives in a remote artifact store ({info.uri}); "
            "opening knowledge bases from remote stores is not supported yet"
        )
    folder = Path(info.uri.removeprefix("file://"))
    if not (folder / "manifest.json").is_file():
        raise IntegrityError(f"{info.ref}: knowledge base folder {folder} is missing or incomplete")
    return folder

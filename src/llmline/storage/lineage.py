"""Lineage: directed edges between artifacts, and walks over them.

An artifact is named by a kind (``dataset``, ``prompt``, ``table``, and later
``run``, ``model``, ``deployment``...) and a reference such as
``python-faq@20261123T101500Z-1a2b3c4d``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from llmline.storage.models import LineageEdge, utcnow

_EDGE_KEY = ["src_kind", "src_ref", "dst_kind", "dst_ref", "relation"]
_REFS_PER_QUERY = 200

__all__ = ["ArtifactRef", "Edge", "LineageGraph", "add_edge", "walk"]


@dataclass(frozen=True, order=True)
class ArtifactRef:
    kind: str
    ref: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.ref}"

    @classmethod
    def parse(cls, text: str) -> ArtifactRef:
        kind, sep, ref = text.partition(":")
        if not sep or not kind or not ref:
            raise ValueError(f"artifact reference must look like KIND:REF, got {text!r}")
        return cls(kind, ref)


@dataclass(frozen=True)
class Edge:
    src: ArtifactRef
    dst: ArtifactRef
    relation: str
    attributes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": str(self.src),
            "to": str(self.dst),
            "relation": self.relation,
            "attributes": self.attributes,
        }


@dataclass
class LineageGraph:
    root: ArtifactRef
    upstream: list[Edge]
    downstream: list[Edge]

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": str(self.root),
            "upstream": [e.to_dict() for e in self.upstream],
            "downstream": [e.to_dict() for e in self.downstream],
        }


def add_edge(
    session: Session,
    src: ArtifactRef,
    dst: ArtifactRef,
    relation: str,
    attributes: dict[str, Any] | None = None,
) -> None:
    """Record ``src --relation--> dst`` once; re-adding (even concurrently) is a no-op."""
    values = {
        "src_kind": src.kind,
        "src_ref": src.ref,
        "dst_kind": dst.kind,
        "dst_ref": dst.ref,
        "relation": relation,
        "attributes": attributes or {},
        "created_at": utcnow(),
    }
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    # INSERT ... ON CONFLICT DO NOTHING: a SELECT-then-INSERT would race.
    session.execute(
        insert(LineageEdge).values(**values).on_conflict_do_nothing(index_elements=_EDGE_KEY)
    )


def walk(session: Session, root: ArtifactRef, max_depth: int = 20) -> LineageGraph:
    """Every edge reachable from ``root`` going up, and going down."""
    return LineageGraph(
        root=root,
        upstream=_walk(session, root, "up", max_depth),
        downstream=_walk(session, root, "down", max_depth),
    )


def _walk(
    session: Session, root: ArtifactRef, direction: Literal["up", "down"], max_depth: int
) -> list[Edge]:
    seen: set[ArtifactRef] = {root}
    frontier = [root]
    edges: list[Edge] = []
    for _ in range(max_depth):
        if not frontier:
            break
        # A few hundred refs per query: SQLite refuses deeper OR trees (a
        # dataset curated from thousands of feedback rows has that many parents).
        rows = [
            row
            for i in range(0, len(frontier), _REFS_PER_QUERY)
            for row in session.scalars(
                select(LineageEdge).where(_touching(frontier[i : i + _REFS_PER_QUERY], direction))
            )
        ]
        frontier = []
        for row in sorted(rows, key=lambda r: r.id):
            edge = Edge(
                ArtifactRef(row.src_kind, row.src_ref),
                ArtifactRef(row.dst_kind, row.dst_ref),
                row.relation,
                dict(row.attributes or {}),
            )
            edges.append(edge)
            nxt = edge.src if direction == "up" else edge.dst
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return edges


def _touching(refs: list[ArtifactRef], direction: Literal["up", "down"]) -> Any:
    if direction == "up":
        return or_(
            *(and_(LineageEdge.dst_kind == r.kind, LineageEdge.dst_ref == r.ref) for r in refs)
        )
    return or_(*(and_(LineageEdge.src_kind == r.kind, LineageEdge.src_ref == r.ref) for r in refs))

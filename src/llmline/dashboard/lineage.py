"""The lineage graph of one response, and its server-side SVG drawing.

A response (a row of the request log) was answered by a model version; from
there the lineage store (:func:`llmline.storage.lineage.walk`) goes up to the
pipeline run that produced it, the dataset versions it was tuned on, the
warehouse tables and prompt template each dataset came from.  A dataset's
manifest holds the SQL that selected its rows: that becomes a ``query`` node,
so the graph reads response → model → run → dataset → query → tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

if TYPE_CHECKING:
    from llmline.workspace import Workspace

__all__ = ["LineageNode", "LineageView", "render_svg", "response_lineage"]

# The order of kinds from the response back to the raw data (for colours and legends).
KIND_COLOURS = {
    "response": "#2563eb",
    "model": "#7c3aed",
    "run": "#db2777",
    "dataset": "#059669",
    "query": "#d97706",
    "table": "#475569",
    "prompt": "#0891b2",
    "evaluation": "#65a30d",
}


@dataclass(frozen=True)
class LineageNode:
    id: str  # "kind:ref"
    kind: str
    ref: str
    detail: str | None = None  # e.g. the SQL of a query node


@dataclass
class LineageView:
    nodes: dict[str, LineageNode] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (from, to, relation)

    def add(self, node: LineageNode) -> None:
        self.nodes.setdefault(node.id, node)

    def link(self, src: str, dst: str, relation: str) -> None:
        if (src, dst, relation) not in self.edges:
            self.edges.append((src, dst, relation))

    def kinds(self) -> list[str]:
        return sorted({n.kind for n in self.nodes.values()}, key=_kind_order)


def _kind_order(kind: str) -> int:
    order = list(KIND_COLOURS)
    return order.index(kind) if kind in order else len(order)


def _node(kind: str, ref: str, detail: str | None = None) -> LineageNode:
    return LineageNode(f"{kind}:{ref}", kind, ref, detail)


def response_lineage(
    workspace: Workspace, request_id: str, model_version: str | None
) -> LineageView:
    """Response → model version → everything upstream of it."""
    from llmline.storage.lineage import ArtifactRef, walk

    view = LineageView()
    response = _node("response", request_id)
    view.add(response)
    if not model_version:
        return view
    model = _node("model", model_version)
    view.add(model)
    view.link(model.id, response.id, "answered")
    with workspace.metadata.read_session() as session:
        graph = walk(session, ArtifactRef("model", model_version))
    for edge in graph.upstream:
        src, dst = _node(edge.src.kind, edge.src.ref), _node(edge.dst.kind, edge.dst.ref)
        view.add(src)
        view.add(dst)
        view.link(src.id, dst.id, edge.relation)
    for node in [n for n in view.nodes.values() if n.kind == "dataset"]:
        _add_query(workspace, view, node)
    return view


def _add_query(workspace: Workspace, view: LineageView, dataset: LineageNode) -> None:
    """The warehouse query recorded in the dataset version's manifest."""
    from llmline.data.catalog import get_version
    from llmline.errors import UserError

    try:
        manifest = get_version(workspace, dataset.ref).manifest
    except (UserError, LookupError):
        return  # a dataset version deleted since: the edge stays, without its query
    sql = manifest.get("sql") or {}
    text = sql.get("text") if isinstance(sql, dict) else sql
    if not text:
        return
    query = _node("query", f"{dataset.ref}", str(text).strip())
    view.add(query)
    view.link(query.id, dataset.id, "selected rows for")
    # Tables feed the query, not the dataset directly, in the drawing.
    for i, (src, dst, relation) in enumerate(view.edges):
        if dst == dataset.id and src.startswith("table:"):
            view.edges[i] = (src, query.id, relation)


# -- drawing ------------------------------------------------------------------------

_BOX_W, _BOX_H, _GAP_X, _GAP_Y, _PAD = 190, 58, 40, 16, 12
_LINE = 24  # characters of a reference per line (12px monospace in a box)


def _columns(view: LineageView) -> dict[str, int]:
    """Column of each node: its longest path to the response (sources left)."""
    downstream: dict[str, list[str]] = {}
    for src, dst, _ in view.edges:
        downstream.setdefault(src, []).append(dst)
    depth: dict[str, int] = {}

    def distance(node: str, seen: frozenset[str]) -> int:
        if node in depth:
            return depth[node]
        nexts = [d for d in downstream.get(node, []) if d not in seen]
        value = 0 if not nexts else 1 + max(distance(d, seen | {node}) for d in nexts)
        depth[node] = value
        return value

    for node in view.nodes:
        distance(node, frozenset())
    deepest = max(depth.values(), default=0)
    return {node: deepest - d for node, d in depth.items()}


def _lines(text: str) -> tuple[str, str]:
    """The text over two lines of a box, cut with an ellipsis when longer."""
    first, rest = text[:_LINE], text[_LINE:]
    return first, rest if len(rest) <= _LINE else rest[: _LINE - 1] + "…"


def render_svg(view: LineageView) -> Markup:
    """The graph as inline SVG: columns from the raw data (left) to the
    response (right); each box shows kind and reference, with the full text
    as its tooltip."""
    columns = _columns(view)
    by_column: dict[int, list[str]] = {}
    for node_id in view.nodes:
        by_column.setdefault(columns[node_id], []).append(node_id)
    rows = max((len(ids) for ids in by_column.values()), default=1)
    width = _PAD * 2 + len(by_column) * _BOX_W + max(0, len(by_column) - 1) * _GAP_X
    height = _PAD * 2 + rows * _BOX_H + (rows - 1) * _GAP_Y
    where: dict[str, tuple[float, float]] = {}
    for column, ids in sorted(by_column.items()):
        ids.sort(key=lambda i: (_kind_order(view.nodes[i].kind), i))
        offset = (height - (len(ids) * _BOX_H + (len(ids) - 1) * _GAP_Y)) / 2
        for row, node_id in enumerate(ids):
            where[node_id] = (_PAD + column * (_BOX_W + _GAP_X), offset + row * (_BOX_H + _GAP_Y))
    parts = [
        f'<svg class="lineage" role="img" aria-label="lineage graph" viewBox="0 0 {width} '
        f'{height}" width="100%" style="max-width: {width}px" xmlns="http://www.w3.org/2000/svg">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#94a3b8"/></marker></defs>',
    ]
    parts += [_edge_svg(where[s], where[d], rel) for s, d, rel in view.edges]
    parts += [_node_svg(view.nodes[i], *where[i]) for i in view.nodes]
    parts.append("</svg>")
    return Markup("".join(parts))


def _edge_svg(src: tuple[float, float], dst: tuple[float, float], relation: str) -> str:
    x1, y1 = src[0] + _BOX_W, src[1] + _BOX_H / 2
    x2, y2 = dst[0], dst[1] + _BOX_H / 2
    if x2 <= x1:  # same column (rare: an edge between siblings): go around below
        x1, x2 = src[0] + _BOX_W / 2, dst[0] + _BOX_W / 2
    middle = (x1 + x2) / 2
    path = f"M{x1:.0f},{y1:.0f} C{middle:.0f},{y1:.0f} {middle:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
    return (
        f'<path d="{path}" fill="none" stroke="#94a3b8" stroke-width="1.5" '
        f'marker-end="url(#arrow)"><title>{escape(relation)}</title></path>'
    )


def _node_svg(node: LineageNode, x: float, y: float) -> str:
    colour = KIND_COLOURS.get(node.kind, "#334155")
    label = " ".join(node.detail.split()) if node.detail else node.ref
    first, second = _lines(label)
    tooltip = f"{node.kind}: {node.ref}" + (f"\n\n{node.detail}" if node.detail else "")
    return (
        f'<g class="node node-{escape(node.kind)}" data-id="{escape(node.id)}">'
        f"<title>{escape(tooltip)}</title>"
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{_BOX_W}" height="{_BOX_H}" rx="7" '
        f'fill="#ffffff" stroke="{colour}" stroke-width="1.5"/>'
        f'<rect x="{x:.0f}" y="{y:.0f}" width="5" height="{_BOX_H}" rx="2" fill="{colour}"/>'
        f'<text x="{x + 14:.0f}" y="{y + 18:.0f}" class="kind" fill="{colour}">'
        f"{escape(node.kind)}</text>"
        f'<text x="{x + 14:.0f}" y="{y + 34:.0f}" class="ref">{escape(first)}</text>'
        f'<text x="{x + 14:.0f}" y="{y + 49:.0f}" class="ref">{escape(second)}</text>'
        "</g>"
    )

"""The single-line diagram of a site, drawn on the server as SVG from the site file.

The grid connection on top, the protections as a tree under it, and under each protection what
it feeds: sub-protections, charge points (their connectors below them, each with its phase
wiring written grid-side, e.g. L2-L3-L1), PV plants and loads. Every element is a `<g>` that
htmx turns into a click loading its side panel; `data-testid` lets the browser tests find it.
A plain tidy-tree layout: a leaf takes one column, a parent is centred over its children.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from markupsafe import escape

COLUMN_W = 150
ROW_H = 96
BOX_W = 132
BOX_H = 58
MARGIN = 16

PHASE_COLOURS = {"L1": "#8d5524", "L2": "#222222", "L3": "#7a7a7a"}
"""IEC 60446 brown, black, grey."""


@dataclass
class Node:
    kind: str
    element_id: str
    lines: list[str]
    data: dict[str, Any]
    parent_cp: str | None = None
    children: list[Node] = field(default_factory=list)
    x: float = 0.0
    y: float = 0.0


def phases_label(phases: Any) -> str:
    return "-".join(str(p) for p in phases) if isinstance(phases, list) else str(phases)


def _num(value: Any, unit: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g} {unit}"
    return f"? {unit}"


def _items(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = data.get(key)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def build_tree(data: dict[str, Any]) -> Node:
    """The site file as a tree of nodes; elements under an unknown protection hang off the grid."""
    raw_grid = data.get("grid_connection")
    grid: dict[str, Any] = raw_grid if isinstance(raw_grid, dict) else {}
    root = Node("grid", "grid", ["Grid", f"max {_num(grid.get('max_power_kw'), 'kW')}"], grid)
    protections = {str(p.get("id")): p for p in _items(data, "protections")}
    nodes: dict[str, Node] = {
        pid: Node("protection", pid, [pid, _num(p.get("rated_current_a"), "A")], p)
        for pid, p in protections.items()
    }

    def attach(parent_id: Any, node: Node) -> None:
        parent = nodes.get(str(parent_id)) if parent_id is not None else None
        (parent or root).children.append(node)

    for pid, p in protections.items():
        parent = p.get("parent")
        if parent is None or parent == pid or str(parent) not in nodes:
            root.children.append(nodes[pid])
        else:
            nodes[str(parent)].children.append(nodes[pid])
    for cp in _items(data, "charge_points"):
        cp_id = str(cp.get("id"))
        node = Node("charge_point", cp_id, [cp_id, "charge point"], cp)
        for c in _items(cp, "connectors"):
            cid = str(c.get("id"))
            node.children.append(
                Node(
                    "connector",
                    cid,
                    [cid, phases_label(c.get("phases")), _num(c.get("max_current_a"), "A")],
                    c,
                    parent_cp=cp_id,
                )
            )
        attach(cp.get("protection"), node)
    for pv in _items(data, "pv_plants"):
        pv_id = str(pv.get("id"))
        attach(
            pv.get("protection"),
            Node("pv_plant", pv_id, [pv_id, f"PV {_num(pv.get('peak_power_kw'), 'kWp')}"], pv),
        )
    for ld in _items(data, "loads"):
        ld_id = str(ld.get("id"))
        attach(
            ld.get("protection"), Node("load", ld_id, [ld_id, f"load {phases_label(ld.get('phases'))}"], ld)
        )
    _break_cycles(root, nodes)
    return root


def _break_cycles(root: Node, nodes: dict[str, Node]) -> None:
    """Protections in a parent cycle are unreachable from the grid: hang them off it to show them."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        seen.add(id(node))
        stack.extend(node.children)
    for node in nodes.values():
        if id(node) not in seen:
            for other in nodes.values():
                if node in other.children:
                    other.children.remove(node)
            root.children.append(node)
            _break_cycles(root, nodes)
            return


def _layout(node: Node, depth: int, left: float) -> float:
    """Place `node` and its subtree from column `left`; returns the width used (columns)."""
    node.y = MARGIN + depth * ROW_H
    if not node.children:
        node.x = MARGIN + left * COLUMN_W
        return 1.0
    width = 0.0
    for child in node.children:
        width += _layout(child, depth + 1, left + width)
    first, last = node.children[0], node.children[-1]
    node.x = (first.x + last.x) / 2
    return width


def _walk(node: Node) -> list[Node]:
    out = [node]
    for child in node.children:
        out += _walk(child)
    return out


def panel_url(site_id: str, node: Node) -> str:
    query = {"kind": node.kind, "id": node.element_id}
    if node.parent_cp is not None:
        query["cp"] = node.parent_cp
    return f"/admin/sites/{site_id}/panel?{urlencode(query)}"


def _phase_badges(node: Node, x: float, y: float) -> str:
    phases = node.data.get("phases")
    if not isinstance(phases, list):
        return ""
    out = []
    for i, phase in enumerate(phases):
        colour = PHASE_COLOURS.get(str(phase), "#c00")
        cx = x + 10 + i * 12
        title = f"<title>{escape(phase)}</title>"
        out.append(f'<circle cx="{cx:.0f}" cy="{y:.0f}" r="4" fill="{colour}">{title}</circle>')
    return "".join(out)


def render_svg(
    site_id: str, data: dict[str, Any], selected: str | None = None, problems: set[str] | None = None
) -> str:
    """The diagram as one `<svg>` element (a fragment to embed in a page)."""
    root = build_tree(data)
    columns = _layout(root, 0, 0)
    nodes = _walk(root)
    depth = max(int((n.y - MARGIN) / ROW_H) for n in nodes)
    width = int(MARGIN * 2 + max(columns, 1) * COLUMN_W)
    height = int(MARGIN * 2 + depth * ROW_H + BOX_H)
    problems = problems or set()
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="diagram" data-testid="diagram" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="single-line diagram of {escape(site_id)}">'
    ]
    # edges first, under the boxes: a vertical drop from the parent to a bus, then to each child
    for node in nodes:
        if not node.children:
            continue
        px = node.x + BOX_W / 2
        bus_y = node.y + BOX_H + (ROW_H - BOX_H) / 2
        xs = [c.x + BOX_W / 2 for c in node.children]
        parts.append(f'<path class="edge" d="M{px:.0f},{node.y + BOX_H:.0f} V{bus_y:.0f}"/>')
        parts.append(f'<path class="edge" d="M{min(xs):.0f},{bus_y:.0f} H{max(xs):.0f}"/>')
        for cx, child in zip(xs, node.children, strict=True):
            parts.append(f'<path class="edge" d="M{cx:.0f},{bus_y:.0f} V{child.y:.0f}"/>')
    for node in nodes:
        classes = ["node", node.kind.replace("_", "-")]
        if selected is not None and node.element_id == selected:
            classes.append("selected")
        if node.element_id in problems:
            classes.append("invalid")
        url = panel_url(site_id, node)
        parts.append(
            f'<g class="{" ".join(classes)}" '
            f'data-testid="node-{escape(node.kind)}-{escape(node.element_id)}" '
            f'data-kind="{escape(node.kind)}" data-id="{escape(node.element_id)}" '
            f'hx-get="{escape(url)}" hx-target="#panel" hx-swap="innerHTML" tabindex="0" '
            f'transform="translate({node.x:.0f},{node.y:.0f})">'
        )
        parts.append(f'<rect width="{BOX_W}" height="{BOX_H}" rx="6"/>')
        if node.kind == "protection":
            # a breaker symbol: a small square with a diagonal
            parts.append(
                f'<path class="symbol" d="M{BOX_W - 22},8 h14 v14 h-14 z M{BOX_W - 22},22 l14,-14"/>'
            )
        elif node.kind == "pv_plant":
            parts.append(f'<path class="symbol" d="M{BOX_W - 24},8 h16 v12 h-16 z M{BOX_W - 16},8 v12"/>')
        for i, line in enumerate(node.lines):
            cls = "label" if i == 0 else "detail"
            parts.append(f'<text class="{cls}" x="8" y="{18 + i * 15}">{escape(line)}</text>')
        if node.kind == "connector":
            parts.append(_phase_badges(node, BOX_W - 50, 12))
        parts.append(f"<title>{escape(node.kind.replace('_', ' '))} {escape(node.element_id)}</title></g>")
    parts.append("</svg>")
    return "".join(parts)

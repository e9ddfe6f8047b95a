"""The single-line diagram of a site, drawn on the server as SVG from the site file.

The grid connection on top, the protections as a tree under it, and under each protection what
it feeds: sub-protections, charge points (their connectors below them, each with its phase
wiring written grid-side, e.g. L2-L3-L1), PV plants and loads. Every element is a `<g>` that
htmx turns into a click loading its side panel; `data-testid` lets the browser tests find it,
`data-parent` lets editor.js walk the tree by keyboard. The layout keeps the diagram compact
enough to fit a laptop's screen: sub-protections spread as a tidy tree (a parent centred over
them), what a protection feeds is stacked in a column under it, connectors beside their point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from markupsafe import escape

BOX_W = 124
BOX_H = 54
GAP = 16
"""Between two boxes side by side (px)."""
COLUMN_W = BOX_W + GAP
ROW_H = 90
"""From a protection's top to its sub-protections' top (px)."""
STACK_GAP = 16
"""From a protection's bottom to the first element stacked under it (px)."""
STACK_ROW_H = BOX_H + 10
INDENT = 24
"""How far the stacked column sits right of its protection, room for the riser (px)."""
RISER_DX = 12
MARGIN = 16
DRAGGABLE = frozenset({"protection", "charge_point", "pv_plant", "load"})
"""What may be dragged onto a new parent; a connector belongs to its charge point."""

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


def _is_terminal(node: Node) -> bool:
    """What a protection feeds that is not a protection: stacked under it, not spread sideways."""
    return node.kind not in ("grid", "protection")


def _layout(node: Node, left: float, top: float) -> float:
    """Place `node` and its subtree from `left` (px); returns the width it takes (px).

    Sub-protections spread sideways as a tidy tree, but what a protection feeds (charge points
    with their connectors beside them, PV plants, loads) is stacked in a column under it: a
    car park of twelve points is then as wide as two boxes, not twelve, and the whole site
    fits a laptop's screen.
    """
    node.y = top
    terminals = [c for c in node.children if _is_terminal(c)]
    subtrees = [c for c in node.children if not _is_terminal(c)]
    own_w = 0.0
    if terminals:
        node.x = left
        own_w = BOX_W
        y = top + BOX_H + STACK_GAP
        for t in terminals:
            t.x, t.y = left + INDENT, y
            for j, connector in enumerate(t.children):
                connector.x, connector.y = t.x + (j + 1) * COLUMN_W, y
            own_w = max(own_w, INDENT + (1 + len(t.children)) * COLUMN_W - GAP)
            y += STACK_ROW_H
    cursor = left + (own_w + GAP if terminals else 0)
    for child in subtrees:
        cursor += _layout(child, cursor, top + ROW_H) + GAP
    if not terminals:
        node.x = (subtrees[0].x + subtrees[-1].x) / 2 if subtrees else left
    return max(own_w, cursor - GAP - left, BOX_W)


def _walk(node: Node) -> list[Node]:
    out = [node]
    for child in node.children:
        out += _walk(child)
    return out


def _parents(root: Node) -> dict[int, Node]:
    return {id(child): node for node in _walk(root) for child in node.children}


def testid(node: Node) -> str:
    return f"node-{node.kind}-{node.element_id}"


def _edges(node: Node) -> list[str]:
    """The lines from `node` to its children: a riser down the stacked column, a bus to the
    sub-protections (from the side when a column hangs under the node), a cord to connectors."""
    mid_y = node.y + BOX_H / 2
    if node.kind == "charge_point":
        if not node.children:
            return []
        last = node.children[-1]
        return [f'<path class="edge" d="M{node.x + BOX_W:.0f},{mid_y:.0f} H{last.x:.0f}"/>']
    terminals = [c for c in node.children if _is_terminal(c)]
    subtrees = [c for c in node.children if not _is_terminal(c)]
    out = []
    if terminals:
        riser_x = node.x + RISER_DX
        last_y = terminals[-1].y + BOX_H / 2
        out.append(f'<path class="edge" d="M{riser_x:.0f},{node.y + BOX_H:.0f} V{last_y:.0f}"/>')
        for t in terminals:
            out.append(f'<path class="edge" d="M{riser_x:.0f},{t.y + BOX_H / 2:.0f} H{t.x:.0f}"/>')
    if not subtrees:
        return out
    xs = [c.x + BOX_W / 2 for c in subtrees]
    if terminals:
        out.append(f'<path class="edge" d="M{node.x + BOX_W:.0f},{mid_y:.0f} H{max(xs):.0f}"/>')
        out += [
            f'<path class="edge" d="M{x:.0f},{mid_y:.0f} V{c.y:.0f}"/>'
            for x, c in zip(xs, subtrees, strict=True)
        ]
        return out
    px = node.x + BOX_W / 2
    bus_y = node.y + BOX_H + (ROW_H - BOX_H) / 2
    out.append(f'<path class="edge" d="M{px:.0f},{node.y + BOX_H:.0f} V{bus_y:.0f}"/>')
    out.append(f'<path class="edge" d="M{min([*xs, px]):.0f},{bus_y:.0f} H{max([*xs, px]):.0f}"/>')
    out += [
        f'<path class="edge" d="M{x:.0f},{bus_y:.0f} V{c.y:.0f}"/>' for x, c in zip(xs, subtrees, strict=True)
    ]
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
    """The diagram as one `<svg>` element (a fragment to embed in a page).

    Its viewBox is the whole diagram, so scaled to its panel it fits (editor.js zooms and pans
    by changing the viewBox); each node names its parent (`data-parent`) for the keyboard and
    says whether it can be dragged or dropped onto.
    """
    root = build_tree(data)
    _layout(root, MARGIN, MARGIN)
    nodes = _walk(root)
    parents = _parents(root)
    width = int(max(n.x for n in nodes) + BOX_W + MARGIN)
    height = int(max(n.y for n in nodes) + BOX_H + MARGIN)
    problems = problems or set()
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="diagram" data-testid="diagram" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'data-fit-box="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet" role="group" '
        f'aria-label="single-line diagram of {escape(site_id)}">'
    ]
    for node in nodes:  # edges first, under the boxes
        parts += _edges(node)
    for node in nodes:
        classes = ["node", node.kind.replace("_", "-")]
        if selected is not None and node.element_id == selected:
            classes.append("selected")
        if node.element_id in problems:
            classes.append("invalid")
        parent = parents.get(id(node))
        name = f"{node.kind.replace('_', ' ')} {node.element_id}"
        where = f", under {parent.kind.replace('_', ' ')} {parent.element_id}" if parent else ""
        attributes = [
            f'class="{" ".join(classes)}"',
            f'data-testid="{escape(testid(node))}"',
            f'data-kind="{escape(node.kind)}" data-id="{escape(node.element_id)}"',
            f'data-parent="{escape(testid(parent))}"' if parent else "",
            'data-draggable="true"' if node.kind in DRAGGABLE else "",
            'data-drop-target="true"' if node.kind in ("grid", "protection") else "",
            f'data-panel-url="{escape(panel_url(site_id, node))}"',
            f'tabindex="0" role="button" aria-label="{escape(name + where)}"',
            f'transform="translate({node.x:.0f},{node.y:.0f})"',
        ]
        parts.append(f"<g {' '.join(a for a in attributes if a)}>")
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
            parts.append(f'<text class="{cls}" x="8" y="{17 + i * 15}">{escape(line)}</text>')
        if node.kind == "connector":
            parts.append(_phase_badges(node, BOX_W - 50, 12))
        parts.append(f"<title>{escape(name)}</title></g>")
    parts.append("</svg>")
    return "".join(parts)

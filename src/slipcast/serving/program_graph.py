"""A program's dependency graph as inline SVG, drawn on the server (no JavaScript): its
milestones as boxes in columns by dependency depth, left to right (a milestone one column right
of its latest blocker), arrows from blocker to dependent. The critical path is red and starred
(colour and a text mark); a blocker outside the store and its arrow are dashed grey, a milestone
of the store outside the program dotted grey, arrows inside a cycle dashed orange, arrows carrying
no slip (everything their blocker's tickets held is done) light grey. Each box's title names its
criticality."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Literal

from markupsafe import Markup

from slipcast.live.records import ProgramEdge, ProgramMilestone, ProgramState
from slipcast.serving.formats import percent

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 190, 46, 60, 16, 14
LOOP = 36  # how far below the boxes an arrow running right to left (a cycle cut) bends
MAX_LABEL = 26  # characters of an id shown in a box; its title holds the whole id
STAR, ARROW = "\u2605", "\u2192"
# how an arrow (by its class) and a box (by its kind) are drawn: colour, width, dashes
EDGE_STYLES = {"critical": ("#c62828", 3.0, ""), "external": ("#9e9e9e", 1.5, "6 4"),
               "cycle": ("#ef6c00", 1.5, "2 3"), "settled": ("#bdbdbd", 1.2, ""), "carried": ("#616161", 1.5, "")}
BOX_STYLES = {"critical": ("#c62828", 3.0, ""), "milestone": ("#616161", 1.2, ""), "external": ("#9e9e9e", 1.2, "6 4"),
              "outside": ("#9e9e9e", 1.2, "2 3")}
STATE_FILL = {"open": "#ffffff", "done": "#e8f5e9"}  # else (not started, empty, unknown, outside) light grey


@dataclass(frozen=True)
class Node:
    """A box: a milestone of the program, a blocker outside the store (``external``) or a
    milestone of the store outside the program (``outside``), at its column and row."""

    node_id: str
    kind: Literal["milestone", "external", "outside"]
    milestone: ProgramMilestone | None
    column: int
    row: int
    critical: bool

    @property
    def x(self) -> int:
        return PAD + self.column * (BOX_W + GAP_X)

    @property
    def y(self) -> int:
        return PAD + self.row * (BOX_H + GAP_Y)


def columns(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Each node's column: 0 where it waits on no node here, else one right of its latest blocker.
    Blockers are followed depth first from each node in ``nodes``' order; an edge back to a node
    still being placed closes a cycle and is not followed, so every node gets one column and the
    layout never goes round a cycle."""
    rank = {n: i for i, n in enumerate(nodes)}
    blockers: dict[str, list[str]] = {n: [] for n in nodes}
    for blocker, dependent in edges:
        if blocker in rank and dependent in rank:
            blockers[dependent].append(blocker)
    placed: dict[str, int] = {}
    placing: set[str] = set()

    def place(node: str) -> int:
        placing.add(node)
        column = 0
        for b in sorted(set(blockers[node]) - placing, key=rank.__getitem__):
            column = max(column, 1 + (placed[b] if b in placed else place(b)))
        placing.discard(node)
        placed[node] = column
        return column

    for n in nodes:
        if n not in placed:
            place(n)
    return placed


def layout(program: ProgramState) -> list[Node]:
    """The program's boxes: its milestones (most critical first), then the other ends of its
    edges, each in its column, rows in that order within a column."""
    own = {m.milestone_id: m for m in program.milestones}
    others: dict[str, Literal["external", "outside"]] = {}
    for e in program.edges:
        for end in (e.blocker, e.dependent):
            if end not in own:
                others.setdefault(end, "external" if e.external and end == e.blocker else "outside")
    order = [*own, *others]
    column = columns(order, [(e.blocker, e.dependent) for e in program.edges])
    on_path = set(program.critical_path)
    rows: dict[int, int] = {}
    nodes = []
    for n in order:
        c = column[n]
        rows[c] = rows.get(c, -1) + 1
        nodes.append(Node(n, "milestone" if n in own else others[n], own.get(n), c, rows[c], n in on_path))
    return nodes


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[:MAX_LABEL - 1] + "\u2026"


def _caption(node: Node) -> str:
    """The box's second line: its criticality (starred on the critical path), or what it is."""
    if node.kind == "external":
        return "outside the store: assumed on time"
    if node.kind == "outside":
        return "outside the program"
    m = node.milestone
    assert m is not None
    if m.state != "open":
        return m.state.replace("_", " ")
    return f"{STAR if node.critical else ''} criticality {percent(m.criticality)}".lstrip()


def _title(node: Node) -> str:
    m = node.milestone
    if m is None:
        return f"{node.node_id}: {_caption(node)}"
    name = f" ({m.name})" if m.name else ""
    crit = "" if m.criticality is None else f", criticality {percent(m.criticality)}"
    path = ", on the critical path" if node.critical else ""
    return f"{node.node_id}{name}: {m.state.replace('_', ' ')}{crit}{path}"


def _box(node: Node) -> str:
    state = node.milestone.state if node.milestone else node.kind
    classes = " ".join(["node", node.kind, state.replace("_", "-")] + (["critical"] if node.critical else []))
    stroke, width, dashes = BOX_STYLES["critical" if node.critical else node.kind]
    fill = STATE_FILL.get(state, "#f5f5f5")
    dash = f' stroke-dasharray="{dashes}"' if dashes else ""
    return (f'<g class="{classes}" data-id="{escape(node.node_id)}" data-column="{node.column}">'
            f"<title>{escape(_title(node))}</title>"
            f'<rect x="{node.x}" y="{node.y}" width="{BOX_W}" height="{BOX_H}" rx="5" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{width}"{dash}/>'
            f'<text x="{node.x + 8}" y="{node.y + 19}" font-size="12" font-weight="600">'
            f"{escape(_short(node.node_id))}</text>"
            f'<text x="{node.x + 8}" y="{node.y + 37}" font-size="11" fill="#424242">{escape(_caption(node))}</text></g>')


def edge_styles(program: ProgramState) -> list[str]:
    """How each of the program's edges is drawn, in their order: on the critical path, from
    outside the store, in a cycle, carrying a slip, or settled (nothing it waits on is open)."""
    path = program.critical_path
    critical = set(zip(path, path[1:]))
    return ["critical" if (e.blocker, e.dependent) in critical else "external" if e.external else
            "cycle" if e.in_cycle else "carried" if e.propagated else "settled" for e in program.edges]


def _arrow(edge: ProgramEdge, style: str, a: Node, b: Node) -> str:
    """A curve from the blocker's right side to the dependent's left side; where the dependent
    stands in the same column or left of it, a loop under both boxes."""
    colour, width, dashes = EDGE_STYLES[style]
    start: tuple[float, float]
    end: tuple[float, float]
    if b.column > a.column:
        start, end = (a.x + BOX_W, a.y + BOX_H / 2), (b.x - 2, b.y + BOX_H / 2)
        via = [(start[0] + GAP_X / 2, start[1]), (end[0] - GAP_X / 2, end[1])]
    else:
        start, end = (a.x + BOX_W / 2 + 10, a.y + BOX_H), (b.x + BOX_W / 2 - 10, b.y + BOX_H + 2)
        low = max(start[1], end[1]) + LOOP
        via = [(start[0], low), (end[0], low)]
    first, *curve = (f"{x:.0f},{y:.0f}" for x, y in [start, *via, end])
    d = f"M{first} C{' '.join(curve)}"
    dash = f' stroke-dasharray="{dashes}"' if dashes else ""
    label = ", ".join(filter(None, [
        "critical path" if style == "critical" else "", "blocker outside the store" if edge.external else "",
        "in a cycle: not carried" if edge.in_cycle else "",
        f"{len(edge.tickets)} ticket link(s), {edge.open_blockers} open" if edge.source == "links" else "declared"]))
    return (f'<path class="edge {style}" data-blocker="{escape(edge.blocker)}" data-dependent="{escape(edge.dependent)}" '
            f'd="{d}" fill="none" stroke="{colour}" stroke-width="{width}"{dash} marker-end="url(#pg-arrow-{style})">'
            f"<title>{escape(f'{edge.blocker} {ARROW} {edge.dependent}: {label}')}</title></path>")


def program_graph(program: ProgramState) -> Markup:
    """The program's dependency graph (``layout``) as one ``<svg id="program-graph">``."""
    nodes = layout(program)  # a program has a milestone at least
    at = {n.node_id: n for n in nodes}
    width = PAD * 2 + (max(n.column for n in nodes) + 1) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + (max(n.row for n in nodes) + 1) * (BOX_H + GAP_Y) - GAP_Y + LOOP
    markers = "".join(f'<marker id="pg-arrow-{style}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" '
                      f'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" '
                      f'fill="{colour}"/></marker>' for style, (colour, _, _) in EDGE_STYLES.items())
    arrows = [_arrow(e, style, at[e.blocker], at[e.dependent]) for e, style in zip(program.edges, edge_styles(program))]
    return Markup(f'<svg id="program-graph" width="{width}" height="{height}" role="img" '
                  f'aria-label="dependencies between the milestones of {escape(program.name)}" '
                  f'xmlns="http://www.w3.org/2000/svg"><defs>{markers}</defs>'
                  + "".join(arrows) + "".join(_box(n) for n in nodes) + "</svg>")

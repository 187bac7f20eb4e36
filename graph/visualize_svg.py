"""The built-in drawing of ``graph.visualize``: a layered layout in pure Python and its SVG.

Layers come from the longest path to each box; an edge that skips layers gets a bend point in
every layer it crosses, so it is routed beside the boxes rather than through them; a
barycentre sweep orders each layer and a two-way packing places it. A fused group is laid out
first, its members side by side, and then moves through the outer layout as one box.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

__all__ = ["COLORS", "Box", "Group", "Scene", "render"]

COLORS = {"anchor": "#cfe0fc", "reduce": "#d3f0d9", "move": "#e9e9ec", "elemwise": "#fdf0c4",
          "io": "#ffffff", "group": "#fff1e0", "group_line": "#d9730d"}
LEGEND = [("anchor", "conv / matmul"), ("elemwise", "elementwise"),
          ("reduce", "pool / norm / reduce"), ("move", "data movement")]

FONT = 11
CHAR_W = 6.6  # average advance of an 11 px sans-serif glyph, a little generous
LINE_H = 13
PAD_X, PAD_Y = 7, 5
GAP_X, GAP_Y = 18, 22  # between boxes of a layer / between layers
GROUP_PAD = 6


@dataclass
class Box:
    """One node drawn: an op, or a graph input or output (``kind`` "io"); ``group`` is the
    index of the fused group it sits in."""

    key: int
    kind: str  # "io" or "op"
    lines: list
    tooltip: str
    fill: str
    group: int | None = None
    dashed: bool = False
    w: float = 0.0
    h: float = 0.0
    x: float = 0.0  # top-left corner, once laid out
    y: float = 0.0


@dataclass
class Group:
    """A fused group: one kernel, its member boxes outlined together."""

    key: int
    label: str
    tooltip: str
    fill: str
    members: list = field(default_factory=list)
    w: float = 0.0
    h: float = 0.0
    x: float = 0.0
    y: float = 0.0


@dataclass
class Scene:
    """What to draw, before any layout: boxes in topological order, groups, edges."""

    title: str
    boxes: list
    groups: list
    edges: list  # (source box key, target box key)


# -- layout ---------------------------------------------------------------------------------------


class _Slot:
    """One place in a layer: a box, a whole fused group, or a bend of a long edge."""

    def __init__(self, w: float, h: float, item=None):
        self.w, self.h, self.item = w, h, item
        self.up: list = []
        self.down: list = []
        self.cx = 0.0


def _layout(scene: Scene):
    """Sizes and positions of every box and group; returns (layers, (top, height) of each
    layer, the bend slots of each edge, width, height)."""
    for b in scene.boxes:
        b.w = max(len(t) for t in b.lines) * CHAR_W + 2 * PAD_X
        b.h = len(b.lines) * LINE_H + 2 * PAD_Y
    for g in scene.groups:
        _layout_group(scene, g)
    unit_of = {b.key: ("g", b.group) if b.group is not None else ("b", b.key)
               for b in scene.boxes}
    slots: dict = {}
    level: dict = {}
    preds: dict = {}
    for s, t in scene.edges:
        if unit_of[s] != unit_of[t]:
            preds.setdefault(unit_of[t], []).append(unit_of[s])
    for b in scene.boxes:  # boxes come in topological order, a group's members in a run
        unit = unit_of[b.key]
        if unit in slots:
            continue
        item = scene.groups[unit[1]] if unit[0] == "g" else b
        slots[unit] = _Slot(item.w, item.h, item)
        level[unit] = max((level[p] + 1 for p in preds.get(unit, ())), default=0)
    layers: list = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for unit, slot in slots.items():
        layers[level[unit]].append(slot)
    routes = []
    for s, t in scene.edges:
        us, ut = unit_of[s], unit_of[t]
        bends = []
        if us != ut:
            prev = slots[us]
            for lv in range(level[us] + 1, level[ut]):
                bend = _Slot(4.0, 0.0)
                layers[lv].append(bend)
                prev.down.append(bend)
                bend.up.append(prev)
                bends.append(bend)
                prev = bend
            prev.down.append(slots[ut])
            slots[ut].up.append(prev)
        routes.append(bends)
    _order(layers)
    _place(layers)
    y, tops = 28.0 + LINE_H * 2, []
    for layer in layers:
        height = max((s.h for s in layer), default=0.0)
        tops.append((y, height))
        for s in layer:
            if s.item is not None:
                _move(scene, s.item, s.cx - s.w / 2, y + (height - s.h) / 2)
        y += height + GAP_Y
    width = max([s.cx + s.w / 2 for layer in layers for s in layer] + [_legend_width()])
    return layers, tops, routes, width + 12, y


def _layout_group(scene: Scene, g: Group):
    """Members side by side, left to right along the group's own edges; members with no
    edge between them stack in one column."""
    inside = set(g.members)
    col: dict = {}
    for k in g.members:  # members come in topological order
        col[k] = max((col[s] + 1 for s, t in scene.edges if t == k and s in inside), default=0)
    columns: list = [[] for _ in range(max(col.values(), default=-1) + 1)]
    for k in g.members:
        columns[col[k]].append(scene.boxes[k])
    # The name goes under the members: arrows come in from above
    x, top = GROUP_PAD, GROUP_PAD
    height = 0.0
    for column in columns:
        y = top
        for b in column:
            b.x, b.y = x, y  # relative to the group until it is placed
            y += b.h + GROUP_PAD
        height = max(height, y - top)
        x += max(b.w for b in column) + GAP_X * 0.8
    g.w = max(x - GAP_X * 0.8 + GROUP_PAD, len(g.label) * CHAR_W * 0.8 + 2 * GROUP_PAD)
    g.h = top + height + LINE_H - GROUP_PAD / 2


def _move(scene: Scene, item, x: float, y: float):
    if isinstance(item, Group):
        for k in item.members:
            scene.boxes[k].x += x
            scene.boxes[k].y += y
    item.x, item.y = x, y


def _order(layers: list, sweeps: int = 4):
    """Barycentre ordering: each slot moves toward the mean position of its neighbours in
    the layer above (then below), which removes most crossings of a layered DAG."""
    def sweep(pairs, side):
        for adjacent, layer in pairs:
            pos = {id(s): i for i, s in enumerate(adjacent)}
            own = {id(s): i for i, s in enumerate(layer)}

            def key(s, pos=pos, own=own):
                near = [pos[id(n)] for n in getattr(s, side) if id(n) in pos]
                return sum(near) / len(near) if near else own[id(s)]

            layer.sort(key=key)

    for _ in range(sweeps):
        sweep(itertools.pairwise(layers), "up")
        sweep(zip(layers[::-1], layers[-2::-1]), "down")


def _place(layers: list):
    """x centres: each slot wants the mean x of its neighbours above (then below); a layer
    keeps its order and gaps by averaging a push-right and a push-left packing."""
    def pack(layer, want):
        n = len(layer)
        gap = [(layer[i].w + layer[i + 1].w) / 2 + GAP_X for i in range(n - 1)]
        left, right = list(want), list(want)
        for i in range(1, n):
            left[i] = max(left[i], left[i - 1] + gap[i - 1])
        for i in range(n - 2, -1, -1):
            right[i] = min(right[i], right[i + 1] - gap[i])
        for s, a, b in zip(layer, left, right):
            s.cx = (a + b) / 2

    for layer in layers:
        pack(layer, [0.0] * len(layer))
    for side, seq in (("up", layers[1:]), ("down", layers[-2::-1]), ("up", layers[1:])):
        for layer in seq:
            pack(layer, [sum(n.cx for n in getattr(s, side)) / len(getattr(s, side))
                         if getattr(s, side) else s.cx for s in layer])
    left = min((s.cx - s.w / 2 for layer in layers for s in layer), default=0.0)
    for layer in layers:
        for s in layer:
            s.cx += 12 - left


# -- SVG ------------------------------------------------------------------------------------------


def _legend():
    """(x, colour key, text) of each legend entry, in one row."""
    x, out = 12.0, []
    for key, text in LEGEND + [("group", "fused group: one kernel")]:
        out.append((x, key, text))
        x += 19 + len(text) * 5.6 + 14
    return out


def _legend_width() -> float:
    return _legend()[-1][0] + 19 + len(_legend()[-1][2]) * 5.6


def _text(x, y, text, size=FONT, anchor="middle", weight=None) -> str:
    extra = f' font-weight="{weight}"' if weight else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
            f"{escape(text)}</text>")


def render(scene: Scene) -> str:
    """The scene laid out and written as an SVG document."""
    layers, tops, routes, width, height = _layout(scene)
    marker = "arrow-" + hashlib.sha1(repr([b.lines for b in scene.boxes]).encode()
                                     ).hexdigest()[:8]  # unique per picture in one page
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
            'font-family="Helvetica, Arial, sans-serif">'),
           (f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="9" refY="5" '
            'markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" '
            'fill="#666"/></marker></defs>'),
           f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>',
           _text(12, 20, scene.title, 13, "start", "bold")]
    for x, key, text in _legend():
        line = COLORS["group_line"] if key == "group" else "#555"
        out.append(f'<rect x="{x:.1f}" y="30" width="14" height="11" rx="2" '
                   f'fill="{COLORS[key]}" stroke="{line}"/>')
        out.append(_text(x + 19, 40, text, 10, "start"))
    for g in scene.groups:
        out.append(f'<g class="fused"><title>{escape(g.tooltip)}</title>'
                   f'<rect x="{g.x:.1f}" y="{g.y:.1f}" width="{g.w:.1f}" height="{g.h:.1f}" '
                   f'rx="6" fill="{g.fill}" stroke="{COLORS["group_line"]}" '
                   'stroke-width="1.3"/>' + _text(g.x + GROUP_PAD, g.y + g.h - 5, g.label,
                                                   9, "start") + "</g>")
    boxes = scene.boxes
    for (s, t), bends in zip(scene.edges, routes):
        a, b = boxes[s], boxes[t]
        if a.group is not None and a.group == b.group:  # inside a group: left to right
            pts = [(a.x + a.w, a.y + a.h / 2), (b.x, b.y + b.h / 2)]
            d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f} L{pts[1][0]:.1f},{pts[1][1]:.1f}"
        else:
            pts = [(a.x + a.w / 2, a.y + a.h)]
            for bend in bends:
                top, h = next((y, h) for (y, h), layer in zip(tops, layers) if bend in layer)
                pts += [(bend.cx, top), (bend.cx, top + h)]
            pts.append((b.x + b.w / 2, b.y))
            d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"
            for (x0, y0), (x1, y1) in itertools.pairwise(pts):
                mid = (y1 - y0) / 2
                d += f" C{x0:.1f},{y0 + mid:.1f} {x1:.1f},{y1 - mid:.1f} {x1:.1f},{y1:.1f}"
        out.append(f'<path d="{d}" fill="none" stroke="#666" stroke-width="1" '
                   f'marker-end="url(#{marker})"/>')
    for b in boxes:
        dash = ' stroke-dasharray="4,3"' if b.dashed else ""
        if b.kind == "io":
            shape = (f'<ellipse cx="{b.x + b.w / 2:.1f}" cy="{b.y + b.h / 2:.1f}" '
                     f'rx="{b.w / 2 + 4:.1f}" ry="{b.h / 2:.1f}" fill="{b.fill}" stroke="#333"/>')
        else:
            shape = (f'<rect x="{b.x:.1f}" y="{b.y:.1f}" width="{b.w:.1f}" height="{b.h:.1f}" '
                     f'rx="3" fill="{b.fill}" stroke="#555"{dash}/>')
        texts = "".join(_text(b.x + b.w / 2, b.y + PAD_Y + (i + 1) * LINE_H - 3, t,
                              FONT if i == 0 else FONT - 1, weight="bold" if i == 0 else None)
                        for i, t in enumerate(b.lines))
        out.append(f"<g><title>{escape(b.tooltip)}</title>{shape}{texts}</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"

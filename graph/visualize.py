"""``visualize``: a picture of a network, each fused group outlined as one box, as SVG.

    graph.visualize(module, "net.svg")              # after graph.compile: the fused graph
    graph.visualize(module, profile=module.profile(feeds))   # shaded by time per kernel

With Graphviz's ``dot`` on PATH it lays the picture out; without it a pure-Python layered
layout draws it (layers by longest path, edges that skip layers routed beside the boxes,
the nodes of a fused group side by side in one outlined row). Node and value names come
from the model: they are data, escaped for SVG and DOT, never pasted in as markup.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from .ir import Graph

__all__ = ["Picture", "to_dot", "visualize"]

# Fill colours by what an op does: the anchors a fused group forms around, reductions,
# pure data movement, and the elementwise rest.
ANCHOR_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "Einsum", "MatMulInteger"}
REDUCE_OPS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool",
              "Softmax", "LogSoftmax", "LayerNormalization", "BatchNormalization", "LRN",
              "InstanceNormalization", "TopK"}
MOVE_OPS = {"Reshape", "Flatten", "Transpose", "Concat", "Split", "Slice", "Gather",
            "Squeeze", "Unsqueeze", "Expand", "Tile", "Pad", "Identity", "Resize",
            "DepthToSpace", "SpaceToDepth", "Shape", "Cast"}
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
MAX_CHARS = 34  # longer labels are cut (the full name is in the tooltip)


@dataclass
class Picture:
    """An SVG picture: ``svg`` is the text; Jupyter shows it inline; ``save(path)``."""

    svg: str
    engine: str  # "dot" or "python"

    def _repr_svg_(self):
        return self.svg

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.svg)

    def __repr__(self):
        return f"<Picture: {len(self.svg)} bytes of SVG laid out by {self.engine}>"


def visualize(graph_or_module, path=None, *, engine: str = "auto", profile=None,
              title: str | None = None) -> Picture:
    """Draw a ``Graph``, a ``GraphModule`` (its optimized graph; memory-plan views dashed)
    or an ONNX model (as imported, before any pass) and return the ``Picture``; with
    ``path`` also write it (SVG; a ``.dot``/``.gv`` path gets the DOT source instead).

    ``engine``: "dot" (Graphviz, must be on PATH), "python" (the built-in layout) or
    "auto" (dot when found). ``profile``: a ``GraphModule.profile`` table; each kernel
    then shows its time and is shaded by its share of the total."""
    scene = _scene(graph_or_module, profile, title)
    if path is not None and os.fspath(path).lower().endswith((".dot", ".gv")):
        with open(path, "w", encoding="utf-8") as f:
            f.write(_dot(scene))
    if engine not in ("auto", "dot", "python"):
        raise ValueError(f"engine must be 'auto', 'dot' or 'python', not {engine!r}")
    dot = shutil.which("dot") if engine != "python" else None
    if engine == "dot" and dot is None:
        raise RuntimeError("engine='dot' needs Graphviz's dot program on PATH "
                           "(apt install graphviz); engine='python' draws without it")
    picture = None
    if dot is not None:
        run = subprocess.run([dot, "-Tsvg"], input=_dot(scene).encode("utf-8"),
                             capture_output=True, timeout=120, check=False)
        if run.returncode == 0:
            picture = Picture(run.stdout.decode("utf-8"), "dot")
        elif engine == "dot":
            raise RuntimeError(f"dot failed: {run.stderr.decode(errors='replace').strip()}")
        else:
            warnings.warn("dot failed; drawing with the built-in layout instead",
                          RuntimeWarning, stacklevel=2)
    if picture is None:
        picture = Picture(_svg(scene), "python")
    if path is not None and not os.fspath(path).lower().endswith((".dot", ".gv")):
        picture.save(path)
    return picture


def to_dot(graph_or_module, profile=None, title: str | None = None) -> str:
    """The Graphviz DOT source of ``visualize``'s picture (fused groups are clusters)."""
    return _dot(_scene(graph_or_module, profile, title))


# -- what is drawn ------------------------------------------------------------------------------


@dataclass
class _Box:
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
class _Group:
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
class _Scene:
    title: str
    boxes: list
    groups: list
    edges: list  # (source box key, target box key)


_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    """Text safe in one label: no characters XML cannot hold, no line breaks."""
    text = _BAD_XML.sub("\ufffd", str(text)).replace("\n", " ").replace("\r", " ")
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 1] + "\u2026"


def _shape(ty) -> str:
    return "\u00d7".join(map(str, ty.shape)) if ty.shape else "scalar"


def _op_line(node) -> str:
    """The op with the attributes that tell two of its kind apart at a glance."""
    text = node.op_type
    kernel = node.attrs.get("kernel_shape")
    if kernel is not None:
        text += " " + "\u00d7".join(str(int(k)) for k in kernel)
    strides = node.attrs.get("strides")
    if strides is not None and any(int(s) != 1 for s in strides):
        text += " /" + ",".join(str(int(s)) for s in strides)
    group = node.attrs.get("group")
    if group is not None and int(group) > 1:
        text += f" g{int(group)}"
    return text


def _fill(op_type: str) -> str:
    if op_type in ANCHOR_OPS:
        return COLORS["anchor"]
    if op_type in REDUCE_OPS or op_type.startswith(("Reduce", "Arg")):
        return COLORS["reduce"]
    if op_type in MOVE_OPS:
        return COLORS["move"]
    return COLORS["elemwise"]


def _heat(share: float) -> str:
    """White to red by ``share`` in [0, 1]: the slowest kernel is the reddest."""
    share = min(max(share, 0.0), 1.0)
    g = round(255 - share * (255 - 80))
    return f"#ff{g:02x}{round(255 - share * 200):02x}"


def _scene(graph_or_module, profile, title) -> _Scene:
    graph, module = _as_graph(graph_or_module)
    plan = getattr(module, "memory_plan", None)
    elided = set(plan.elided) if plan is not None else set()
    rows = {r.node: r for r in profile} if profile is not None else {}
    slowest = max((r.mean_ms for r in rows.values()), default=0.0) or 1.0
    boxes, groups, edges, producer = [], [], [], {}

    def box(kind, lines, tooltip, fill, group=None, dashed=False) -> _Box:
        b = _Box(len(boxes), kind, [_clean(t) for t in lines], _tip(tooltip), fill, group, dashed)
        boxes.append(b)
        return b

    def timing(name):
        r = rows.get(name)
        if r is None:
            return None
        took = f"{r.mean_ms:.3g} ms" if r.mean_ms >= 1 else f"{r.mean_ms * 1e3:.3g} \u00b5s"
        return f"{took}, {r.percent:.0f} %", _heat(r.mean_ms / slowest)

    def add(node, g, group):
        if node.is_fused:
            if group is None:  # a group nested in a group is drawn flat inside it
                shown = timing(node.name)
                group = len(groups)
                label = _clean(node.name) + (f"  {shown[0]}" if shown else "")
                groups.append(_Group(group, label, _tip(f"fused group {node.name!r}"),
                                     shown[1] if shown else COLORS["group"]))
            for inner in node.subgraph.nodes:
                add(inner, node.subgraph, group)
            return
        out = next((v for v in node.outputs if v), None)
        lines = [_op_line(node)]
        if out is not None and out in g.values:
            lines.append(_shape(g.values[out]))
        fill = _fill(node.op_type)
        shown = timing(node.name) if group is None else None
        if shown:
            lines.append(shown[0])
            fill = shown[1]
        view = node.name in elided
        tip = f"{node.op_type} {node.name!r}" + (" (a view: no kernel)" if view else "")
        b = box("op", lines + (["(view)"] if view else []), tip, fill, group, view)
        if group is not None:
            groups[group].members.append(b.key)
        for v in dict.fromkeys(v for v in node.inputs if v):
            if v in producer:
                edges.append((producer[v], b.key))
        for v in node.outputs:
            if v:
                producer[v] = b.key

    for v in graph.inputs:
        producer[v] = box("io", [v, _shape(graph.values[v])], f"input {v!r}", COLORS["io"]).key
    for node in graph.nodes:
        add(node, graph, None)
    for v in graph.outputs:
        b = box("io", [v, _shape(graph.values[v])], f"output {v!r}", COLORS["io"])
        if v in producer:
            edges.append((producer[v], b.key))
    if title is None:
        title = f"{graph.name}: {len(graph.nodes)} nodes, {len(groups)} fused groups"
        if module is not None:
            title += f", {len(module.steps)} kernel calls ({len(module.codes)} distinct)"
    return _Scene(_tip(title), boxes, groups, edges)


def _tip(text: str) -> str:
    """Tooltips and titles keep their full length; only what XML cannot hold goes."""
    return _BAD_XML.sub("\ufffd", str(text)).replace("\n", " ")


def _as_graph(obj):
    if isinstance(obj, Graph):
        return obj, None
    if isinstance(getattr(obj, "graph", None), Graph):  # a GraphModule
        return obj.graph, obj
    from .onnx_import import from_onnx

    return from_onnx(obj), None


# -- DOT ------------------------------------------------------------------------------------------


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot(scene: _Scene) -> str:
    font = 'fontname="Helvetica,Arial,sans-serif", fontsize=10'
    out = ["digraph tetune {",
           (f"  graph [{font}, label={_dot_str(scene.title)}, labelloc=t, nodesep=0.25, "
            "ranksep=0.3, bgcolor=white];"),
           (f'  node [{font}, shape=box, style="rounded,filled", color="#555555", '
            'margin="0.08,0.03", height=0.3];'),
           '  edge [color="#666666", arrowsize=0.6];']

    def node_line(b: _Box) -> str:
        label = "\\n".join(_dot_str(t)[1:-1] for t in b.lines)
        style = "dashed,rounded,filled" if b.dashed else "rounded,filled"
        shape = "ellipse" if b.kind == "io" else "box"
        return (f'b{b.key} [label="{label}", tooltip={_dot_str(b.tooltip)}, shape={shape}, '
                f'style="{style}", fillcolor="{b.fill}"];')

    for g in scene.groups:
        out.append(f"  subgraph cluster_{g.key} {{")
        out.append(f"    label={_dot_str(g.label)}; tooltip={_dot_str(g.tooltip)}; "
                   f'labeljust=l; style="rounded,filled"; color="{COLORS["group_line"]}"; '
                   f'fillcolor="{g.fill}"; fontsize=8;')
        out += ["    " + node_line(scene.boxes[k]) for k in g.members]
        out.append("  }")
    out += ["  " + node_line(b) for b in scene.boxes if b.group is None]
    out += [f"  b{s} -> b{t};" for s, t in scene.edges]
    out.append("}")
    return "\n".join(out) + "\n"


# -- the built-in layout -------------------------------------------------------------------------


class _Slot:
    """One place in a layer: a box, a whole fused group, or a bend of a long edge."""

    def __init__(self, w: float, h: float, item=None):
        self.w, self.h, self.item = w, h, item
        self.up: list = []
        self.down: list = []
        self.cx = 0.0


def _layout(scene: _Scene):
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


def _layout_group(scene: _Scene, g: _Group):
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


def _move(scene: _Scene, item, x: float, y: float):
    if isinstance(item, _Group):
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


def _svg(scene: _Scene) -> str:
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


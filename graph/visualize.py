"""``visualize``: a picture of a network, each fused group outlined as one box, as SVG.

    graph.visualize(module, "net.svg")              # after graph.compile: the fused graph
    graph.visualize(module, profile=module.profile(feeds))   # shaded by time per kernel

With Graphviz's ``dot`` on PATH it lays the picture out; without it a pure-Python layered
layout draws it (layers by longest path, edges that skip layers routed beside the boxes,
the nodes of a fused group side by side in one outlined row). Node and value names come
from the model: they are data, escaped for SVG and DOT, never pasted in as markup.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass

from .ir import Graph
from .visualize_svg import COLORS, Box, Group, Scene, render

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
        picture = Picture(render(scene), "python")
    if path is not None and not os.fspath(path).lower().endswith((".dot", ".gv")):
        picture.save(path)
    return picture


def to_dot(graph_or_module, profile=None, title: str | None = None) -> str:
    """The Graphviz DOT source of ``visualize``'s picture (fused groups are clusters)."""
    return _dot(_scene(graph_or_module, profile, title))


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


def _scene(graph_or_module, profile, title) -> Scene:
    graph, module = _as_graph(graph_or_module)
    plan = getattr(module, "memory_plan", None)
    elided = set(plan.elided) if plan is not None else set()
    rows = {r.node: r for r in profile} if profile is not None else {}
    slowest = max((r.mean_ms for r in rows.values()), default=0.0) or 1.0
    boxes, groups, edges, producer = [], [], [], {}

    def box(kind, lines, tooltip, fill, group=None, dashed=False) -> Box:
        b = Box(len(boxes), kind, [_clean(t) for t in lines], _tip(tooltip), fill, group, dashed)
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
                groups.append(Group(group, label, _tip(f"fused group {node.name!r}"),
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
    return Scene(_tip(title), boxes, groups, edges)


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


def _dot(scene: Scene) -> str:
    font = 'fontname="Helvetica,Arial,sans-serif", fontsize=10'
    out = ["digraph tetune {",
           (f"  graph [{font}, label={_dot_str(scene.title)}, labelloc=t, nodesep=0.25, "
            "ranksep=0.3, bgcolor=white];"),
           (f'  node [{font}, shape=box, style="rounded,filled", color="#555555", '
            'margin="0.08,0.03", height=0.3];'),
           '  edge [color="#666666", arrowsize=0.6];']

    def node_line(b: Box) -> str:
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

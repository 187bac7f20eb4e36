"""graph.visualize: the built-in SVG layout (valid XML, fused groups drawn, no overlapping
boxes on a 50-layer network, names escaped), the DOT source, and dot when it is installed."""

import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from onnx import TensorProto, helper

import graph
from graph import testing
from graph.visualize import to_dot, visualize

SVG = "{http://www.w3.org/2000/svg}"


def boxes(root):
    """(x, y, w, h) of every node box (rounded rects outside the legend)."""
    out = []
    for g in root.iter(SVG + "g"):
        if g.get("class") == "fused":
            continue
        rect = g.find(SVG + "rect")
        if rect is not None:
            out.append(tuple(float(rect.get(k)) for k in ("x", "y", "width", "height")))
    return out


def overlap(a, b):
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_resnet50_fallback_is_valid_svg_with_every_fused_group(tmp_path):
    g = graph.optimize(graph.from_onnx(testing.resnet50(image=32)))
    fused = sum(n.is_fused for n in g.nodes)
    assert fused > 40
    picture = visualize(g, tmp_path / "r50.svg", engine="python")
    assert picture.engine == "python"
    root = ET.parse(tmp_path / "r50.svg").getroot()
    assert root.tag == SVG + "svg"
    groups = [e for e in root.iter(SVG + "g") if e.get("class") == "fused"]
    assert len(groups) == fused
    rects = boxes(root)
    members = sum(len(n.subgraph.nodes) for n in g.nodes if n.is_fused)
    assert len(rects) == len(g.nodes) - fused + members
    width, height = float(root.get("width")), float(root.get("height"))
    for r in rects:  # every box inside the picture, none on top of another
        assert 0 <= r[0] and r[0] + r[2] <= width and 0 <= r[1] and r[1] + r[3] <= height
    for i, a in enumerate(rects):
        assert not any(overlap(a, b) for b in rects[i + 1:]), a
    assert width < 1200  # a column, not a wall: readable at its natural size


def model_with_names(inp, mid, node, out):
    x = helper.make_tensor_value_info(inp, TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", [inp], [mid], name=node),
             helper.make_node("Add", [mid, inp], [out], name=node + "2")]
    model = helper.make_model(helper.make_graph(nodes, "g<&>", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    return model


HOSTILE = '</text><script>x</script>'
QUOTED = 'a"] b -> c [x="\\'


def test_hostile_names_are_escaped_in_svg_and_dot(tmp_path):
    model = model_with_names(HOSTILE, "mid]]>", "n&amp;\x01<!--", QUOTED)
    g = graph.optimize(graph.from_onnx(model))
    svg = visualize(g, tmp_path / "h.svg", engine="python").svg
    root = ET.fromstring(svg)  # parses: nothing broke out of its element
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    texts = "".join(e.text or "" for e in root.iter(SVG + "text"))
    titles = "".join(e.text or "" for e in root.iter(SVG + "title"))
    assert HOSTILE in texts and QUOTED in texts
    assert "n&amp;\ufffd<!--" in texts  # a control character XML cannot hold is replaced
    assert "'n&amp;\\x01<!--'" in titles  # the tooltip names the node as repr() does
    dot = to_dot(g)
    # every string literal is closed on its line: no quote of a name ends one early
    for line in dot.splitlines():
        body = re.sub(r'"(?:[^"\\]|\\.)*"', "", line)
        assert '"' not in body, line
    assert '\\"] b -> c [x=\\"\\\\' in dot


def test_module_with_profile_dashes_views_and_shows_times(tmp_path):
    model = testing.small_cnn(image=8)
    module = graph.compile(model, target="python")
    table = module.profile(testing.random_inputs(model), runs=1, warmup=0)
    svg = visualize(module, engine="python", profile=table).svg
    root = ET.fromstring(svg)
    texts = [e.text for e in root.iter(SVG + "text")]
    assert sum(t.endswith(" %") and "s, " in t for t in texts) == len(module.steps)
    assert "kernel calls" in texts[0]
    if module.memory_plan.elided:  # the Flatten is a view of the pool's output
        assert "stroke-dasharray" in svg and "(view)" in texts


def test_dot_path_and_engine_errors(tmp_path, monkeypatch):
    g = graph.from_onnx(testing.small_cnn(image=8))
    visualize(g, tmp_path / "g.dot", engine="python")
    text = (tmp_path / "g.dot").read_text()
    assert text.startswith("digraph") and text.count("->") >= len(g.nodes)
    with pytest.raises(ValueError, match="engine"):
        visualize(g, engine="neato")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="dot"):
        visualize(g, engine="dot")
    assert visualize(g).engine == "python"  # auto without dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_dot_engine_draws_clusters():
    g = graph.optimize(graph.from_onnx(testing.small_cnn(image=8)))
    picture = visualize(g, engine="dot")
    root = ET.fromstring(picture.svg)
    clusters = [e for e in root.iter(SVG + "g") if e.get("class") == "cluster"]
    assert len(clusters) == sum(n.is_fused for n in g.nodes)
    assert np.isfinite(float(root.get("width")[:-2]))

"""The network IR and ONNX import: structure, folding, opset variants and every error a
user can cause (unsupported ops, malformed models, dynamic shapes, hostile names)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

import graph
from graph import Graph, Node, TensorType

F32 = TP.FLOAT


def model(nodes, inputs, outputs, inits=(), opset=17, name="g"):
    """A model from (name, shape) inputs/outputs (float32), nodes and initializer arrays."""
    g = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, F32, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, F32, s) for n, s in outputs],
        [numpy_helper.from_array(np.asarray(a), k) for k, a in dict(inits).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def run_python(m, feeds, **kw):
    return graph.compile(m, target="python", **kw).run(feeds)


# -- the IR ------------------------------------------------------------------------------------


def _chain():
    t = TensorType((2, 3), "float32")
    nodes = [Node("Add", "add", ["y", "w"], ["z"]), Node("Relu", "relu", ["x"], ["y"])]
    return Graph(nodes, ["x"], ["z"], {"x": t, "y": t, "z": t, "w": TensorType((3,), "float32")},
                 {"w": np.ones(3, np.float32)})


def test_replace_sorts_nodes_and_validate_checks_invariants():
    g = _chain()
    with pytest.raises(graph.GraphError, match="node 'add' .* reads 'y'"):
        g.validate()
    g = g.replace(nodes=g.nodes).validate()
    assert [n.name for n in g.nodes] == ["relu", "add"]
    assert [n.name for n in g.consumers()["y"]] == ["add"]
    assert g.producers()["z"].name == "add"


def test_toposort_names_the_nodes_of_a_cycle():
    nodes = [Node("Relu", "a", ["q"], ["p"]), Node("Relu", "b", ["p"], ["q"]),
             Node("Relu", "c", ["x"], ["r"])]
    with pytest.raises(graph.GraphError, match=r"cycle through node\(s\) 'a' \(Relu\), 'b'"):
        graph.toposort(nodes, ["x"])


def test_fuse_nodes_makes_one_node_holding_a_subgraph():
    g = _chain().replace(nodes=_chain().nodes)
    f = graph.fuse_nodes(g, ["relu", "add"], "group").validate()
    (node,) = f.nodes
    assert node.op_type == graph.FUSED and node.is_fused
    assert node.inputs == ("x", "w") and node.outputs == ("z",)
    assert node.subgraph.inputs == node.inputs and len(node.subgraph.nodes) == 2
    text = str(f)
    assert "Fused" in text and "graph 'group'" in text and "Relu(%x)" in text


def test_printing_quotes_odd_names():
    t = TensorType((1,), "float32")
    g = Graph([Node("Relu", "n;1", ["a b"], ["c"])], ["a b"], ["c"], {"a b": t, "c": t})
    assert "%'a b'" in str(g)


# -- import ------------------------------------------------------------------------------------


def test_shape_subgraphs_are_folded_at_import():
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = {"zero": np.array(0, np.int64), "zero1": np.array([0], np.int64),
             "minus1": np.array([-1], np.int64)}
    g = graph.from_onnx(model(nodes, [("x", [2, 3, 4])], [("y", None)], inits))
    assert [n.op_type for n in g.nodes] == ["Reshape"]
    assert g.values["y"] == TensorType((2, 12), "float32")
    assert g.initializers["shape"].tolist() == [2, -1]
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(run_python(g, {"x": x})[0], x.reshape(2, 12))


def test_constant_only_graph_returns_its_value():
    node = helper.make_node("Constant", [], ["y"],
                            value=numpy_helper.from_array(np.arange(3, dtype=np.float32)))
    m = model([node], [], [("y", [3])])
    assert run_python(m, {})[0].tolist() == [0, 1, 2]


def _variant(op, opset, inputs, inits=(), **attrs):
    names = [n for n, _ in inputs] + list(dict(inits))
    return model([helper.make_node(op, names, ["y"], **attrs)], inputs, [("y", None)], inits,
                 opset=opset)


@pytest.mark.parametrize("old, new", [
    # axes as attributes before opset 13, as inputs after
    (_variant("Squeeze", 11, [("x", [1, 3, 1])], axes=[0]),
     _variant("Squeeze", 13, [("x", [1, 3, 1])], {"axes": np.array([0], np.int64)})),
    (_variant("ReduceSum", 11, [("x", [1, 3, 1])], axes=[1], keepdims=0),
     _variant("ReduceSum", 13, [("x", [1, 3, 1])], {"axes": np.array([1], np.int64)},
              keepdims=0)),
    # Clip bounds: attributes before opset 11, inputs after
    (_variant("Clip", 6, [("x", [1, 3, 1])], min=-0.5, max=0.5),
     _variant("Clip", 13, [("x", [1, 3, 1])], {"lo": np.float32(-0.5),
                                                "hi": np.float32(0.5)})),
    # Slice: attributes before opset 10
    (_variant("Slice", 9, [("x", [1, 3, 1])], starts=[1], ends=[3], axes=[1]),
     _variant("Slice", 13, [("x", [1, 3, 1])], {"s": np.array([1]), "e": np.array([3]),
                                                "a": np.array([1])})),
])
def test_opset_variants_agree(old, new):
    x = np.array([-1.0, 0.25, 2.0], np.float32).reshape(1, 3, 1)
    np.testing.assert_allclose(run_python(old, {"x": x})[0], run_python(new, {"x": x})[0])


def test_softmax_before_opset_13_flattens_from_axis():
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    old = _variant("Softmax", 11, [("x", [2, 3, 4])], axis=1)
    got = run_python(old, {"x": x})[0]
    flat = x.reshape(2, 12)
    want = np.exp(flat - flat.max(1, keepdims=True))
    want = (want / want.sum(1, keepdims=True)).reshape(2, 3, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5)


# -- errors ------------------------------------------------------------------------------------


def test_unsupported_ops_are_listed_together():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("NonMaxSuppression", ["a"], ["b"], name="nms1"),
             helper.make_node("Foo", ["b"], ["c"], name="foo1", domain="custom"),
             helper.make_node("NonMaxSuppression", ["c"], ["y"], name="nms2")]
    m = model(nodes, [("x", [1])], [("y", None)])
    m.opset_import.append(helper.make_opsetid("custom", 1))
    with pytest.raises(graph.UnsupportedOpError) as err:
        graph.from_onnx(m)
    assert err.value.ops == {"NonMaxSuppression": ["nms1", "nms2"], "custom.Foo": ["foo1"]}
    assert "'nms1', 'nms2'" in str(err.value) and "custom.Foo: 'foo1'" in str(err.value)


def test_truncated_file_is_a_model_error(tmp_path):
    data = model([helper.make_node("Relu", ["x"], ["y"])], [("x", [4])], [("y", None)],
                 ).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(graph.ModelError, match="truncated"):
        graph.from_onnx(path)
    with pytest.raises(graph.ModelError, match="no ONNX model at"):
        graph.from_onnx(tmp_path / "missing.onnx")


def test_dangling_input_and_cycle_are_model_errors():
    dangling = model([helper.make_node("Add", ["x", "ghost"], ["y"], name="adder")],
                     [("x", [2])], [("y", None)])
    with pytest.raises(graph.ModelError, match="node 'adder' \\(Add\\) reads 'ghost'"):
        graph.from_onnx(dangling)
    cycle = model([helper.make_node("Add", ["x", "b"], ["a"], name="n1"),
                   helper.make_node("Relu", ["a"], ["b"], name="n2"),
                   helper.make_node("Relu", ["a"], ["y"], name="n3")],
                  [("x", [2])], [("y", None)])
    with pytest.raises(graph.ModelError, match="cycle through node\\(s\\) 'n1' \\(Add\\), 'n2'"):
        graph.from_onnx(cycle)


def test_shape_conflict_is_a_model_error():
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2, 3])], [("y", [3, 2])])
    with pytest.raises(graph.ModelError, match="shape inference"):
        graph.from_onnx(m)


def test_opset_newer_than_onnx_is_a_model_error():
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2])], [("y", None)])
    m.opset_import[0].version = onnx.defs.onnx_opset_version() + 1
    with pytest.raises(graph.ModelError, match="newer than the installed onnx"):
        graph.from_onnx(m)


def test_dynamic_dims_need_input_shapes():
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["N", 3])], [("y", None)])
    with pytest.raises(graph.DynamicShapeError, match="input_shapes") as err:
        graph.from_onnx(m)
    assert err.value.inputs == ("x",)
    g = graph.from_onnx(m, input_shapes={"x": (5, 3)})
    assert g.values["y"].shape == (5, 3)


def test_shape_fed_by_an_input_needs_constants():
    m = model([helper.make_node("Reshape", ["x", "shape"], ["y"], name="r")],
              [("x", [2, 3])], [("y", None)])
    m.graph.input.append(helper.make_tensor_value_info("shape", TP.INT64, [2]))
    with pytest.raises(graph.DynamicShapeError, match="'shape'.*constants=") as err:
        graph.from_onnx(m)
    assert err.value.inputs == ("shape",)
    g = graph.from_onnx(m, constants={"shape": np.array([3, 2])})
    assert g.inputs == ("x",) and g.values["y"].shape == (3, 2)


def test_bad_attribute_names_the_node():
    m = model([helper.make_node("Conv", ["x", "w"], ["y"], name="c1", auto_pad="SIDEWAYS")],
              [("x", [1, 1, 4, 4])], [("y", None)], {"w": np.ones((1, 1, 3, 3), np.float32)})
    with pytest.raises(graph.GraphError, match="c1|SIDEWAYS"):
        graph.from_onnx(m)


HOSTILE = "a/b:0 ; import os\nos.system('echo pwned') #'\"\\"


def test_hostile_names_never_reach_generated_source():
    w = np.arange(3, dtype=np.float32)
    nodes = [helper.make_node("Add", [HOSTILE, HOSTILE + "w"], [HOSTILE + "out"],
                              name=HOSTILE + "node"),
             helper.make_node("Relu", [HOSTILE + "out"], ["y"], name="1" + HOSTILE)]
    m = model(nodes, [(HOSTILE, [3])], [("y", None)], {HOSTILE + "w": w})
    module = graph.compile(m, target="python")
    x = np.array([-5.0, 0.5, 1.0], np.float32)
    np.testing.assert_array_equal(module.run({HOSTILE: x})[0], np.maximum(x + w, 0))
    for code in module.codes:
        assert "import os" not in code.source and "pwned" not in code.source
        assert code.name.isidentifier()
    assert graph.sanitize(HOSTILE).isidentifier()
    assert graph.sanitize("0abc").isidentifier() and graph.sanitize("") == "t"

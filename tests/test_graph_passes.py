"""Graph passes: each pass alone on a small ONNX graph, checking what it rewrites (op counts
before and after) and that the rewritten graph computes the same outputs (both run by the
executor on the python target, random data); then the memory planner, the pass manager and
whole test networks, a few of them on the cpu target."""

from collections import Counter

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import graph
from graph import testing
from graph.passes import (
    Kind,
    PassReport,
    convert_layout,
    default_passes,
    eliminate_common_subexpressions,
    eliminate_dead_nodes,
    fold_batch_norm,
    fold_constants,
    fold_scale_axis,
    fuse_ops,
    fuse_siblings,
    node_kind,
    optimize,
    plan_memory,
    run_passes,
    simplify,
)
from graph.passes.layout import block_of

RNG = np.random.default_rng(0)


def model(nodes, inputs: dict, outputs, inits: dict | None = None, opset: int = 17):
    """A Graph from onnx.helper nodes; ``inputs`` maps names to float32 shapes, ``inits``
    names to arrays; output shapes come from shape inference."""
    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(s)) for k, s in inputs.items()],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, None) for k in outputs],
        [numpy_helper.from_array(np.asarray(a), k) for k, a in (inits or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return graph.from_onnx(m)


def node(op_type, inputs, outputs, **attrs):
    return helper.make_node(op_type, inputs, outputs, **attrs)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def feeds_for(g):
    return {v: rand(*g.values[v].shape) for v in g.inputs}


def run(g, feeds, target="python", memory_plan=False):
    return graph.compile(g, target=target, passes=None, memory_plan=memory_plan).run(feeds)


def assert_same(before, after, rtol=1e-5, atol=1e-5):
    """Both graphs compute the same outputs on random inputs (and ``after`` is valid)."""
    after.validate()
    assert after.outputs == before.outputs
    feeds = feeds_for(before)
    for want, got in zip(run(before, feeds), run(after, feeds)):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def ops(g) -> Counter:
    return Counter(n.op_type for n in g.nodes)


# -- constant folding, DCE, CSE ---------------------------------------------------------------


def test_fold_constants_evaluates_constant_subgraphs():
    w = rand(6, 4)
    g = model([node("Transpose", ["w"], ["wt"], perm=[1, 0]),  # weights stored transposed
               node("Mul", ["s", "two"], ["s2"]),
               node("MatMul", ["x", "wt"], ["m"]),
               node("Add", ["m", "s2"], ["y"])],
              {"x": (3, 4)}, ["y"], {"w": w, "s": rand(6), "two": np.float32(2)})
    out = fold_constants(g)
    assert ops(g) == Counter(Transpose=1, Mul=1, MatMul=1, Add=1)
    assert ops(out) == Counter(MatMul=1, Add=1)
    np.testing.assert_array_equal(out.initializers[out.node("MatMul_2").inputs[1]], w.T)
    assert "w" not in out.initializers  # the unfolded weight is gone
    assert_same(g, out)
    assert fold_constants(out) is out  # nothing left to fold: the same graph back


def test_fold_constants_keeps_results_that_would_outgrow_their_inputs():
    g = model([node("Expand", ["one", "shape"], ["big"]), node("Add", ["x", "big"], ["y"])],
              {"x": (300, 300)}, ["y"],
              {"one": np.ones(1, np.float32), "shape": np.array([300, 300], np.int64)})
    assert ops(fold_constants(g)) == Counter(Expand=1, Add=1)
    assert ops(fold_constants(g, limit=10**6)) == Counter(Add=1)


def test_dead_nodes_and_unused_optional_outputs_go():
    g = model([node("Relu", ["x"], ["dead"]), node("Exp", ["dead"], ["dead2"]),
               node("Dropout", ["x"], ["d", "mask"]), node("Neg", ["d"], ["y"])],
              {"x": (2, 3)}, ["y"], {"unused": rand(4)})
    out = eliminate_dead_nodes(g)
    assert ops(out) == Counter(Dropout=1, Neg=1)
    assert out.node("Dropout_2").outputs == ("d",)  # the mask is no longer computed
    assert "unused" not in out.initializers and "dead" not in out.values
    assert_same(g, out)


def test_cse_merges_equal_nodes_and_equal_constants():
    c = rand(3)
    g = model([node("Relu", ["x"], ["a"]), node("Relu", ["x"], ["b"]),
               node("Add", ["a", "c1"], ["p"]), node("Add", ["b", "c2"], ["q"]),
               node("Mul", ["p", "q"], ["y"])],
              {"x": (2, 3)}, ["y"], {"c1": c, "c2": c.copy()})
    out = eliminate_common_subexpressions(g)
    assert ops(out) == Counter(Relu=1, Add=1, Mul=1)
    mul = out.node("Mul_4")
    assert mul.inputs[0] == mul.inputs[1]
    assert_same(g, out)


def test_cse_keeps_nodes_that_differ_in_attributes():
    g = model([node("LeakyRelu", ["x"], ["a"], alpha=0.1), node("LeakyRelu", ["x"], ["b"], alpha=0.2),
               node("Add", ["a", "b"], ["y"])], {"x": (4,)}, ["y"])
    assert ops(eliminate_common_subexpressions(g))["LeakyRelu"] == 2


# -- algebraic simplification -----------------------------------------------------------------


def test_simplify_removes_identity_dropout_and_neutral_constants():
    g = model([node("Identity", ["x"], ["a"]), node("Dropout", ["a"], ["b", "unused_mask"]),
               node("Mul", ["b", "one"], ["c"]), node("Add", ["zero", "c"], ["d"]),
               node("Div", ["d", "one"], ["e"]), node("Sub", ["e", "zero"], ["f"]),
               node("Relu", ["f"], ["y"])],
              {"x": (2, 3)}, ["y"], {"one": np.float32(1), "zero": np.zeros(3, np.float32)})
    out = simplify(g)
    assert ops(out) == Counter(Relu=1)
    assert out.nodes[0].inputs == ("x",)
    assert_same(g, out)


def test_simplify_keeps_a_neutral_constant_that_broadcasts():
    g = model([node("Add", ["x", "zero"], ["y"])], {"x": (3,)}, ["y"],
              {"zero": np.zeros((2, 3), np.float32)})
    out = simplify(g)
    assert ops(out) == Counter(Add=1) and out.values["y"].shape == (2, 3)
    assert_same(g, out)


def test_simplify_strength_reduction():
    g = model([node("Sub", ["x", "c"], ["a"]), node("Div", ["a", "d"], ["b"]),
               node("Pow", ["b", "two"], ["p"]), node("Pow", ["p", "half"], ["q"]),
               node("Pow", ["q", "minus1"], ["y"])],
              {"x": (2, 5)}, ["y"],
              {"c": rand(5), "d": np.float32(4.0), "two": np.float32(2),
               "half": np.float32(0.5), "minus1": np.float32(-1)})
    out = simplify(g)
    assert ops(out) == Counter(Add=1, Mul=2, Sqrt=1, Reciprocal=1)
    div = next(n for n in out.nodes if n.op_type == "Mul" and n.inputs[1] in out.initializers)
    assert out.initializers[div.inputs[1]] == np.float32(0.25)
    assert_same(g, out, rtol=1e-4)


def test_simplify_merges_constant_chains_and_puts_constants_second():
    g = model([node("Mul", ["a", "x"], ["m"]), node("Mul", ["m", "b"], ["n"]),
               node("Add", ["n", "c"], ["p"]), node("Add", ["p", "d"], ["y"])],
              {"x": (2, 4)}, ["y"], {"a": rand(4), "b": np.float32(3), "c": rand(4), "d": rand(4)})
    out = simplify(g)
    assert ops(out) == Counter(Mul=1, Add=1)
    assert all(n.inputs[1] in out.initializers for n in out.nodes)
    assert_same(g, out)


def test_simplify_transposes():
    g = model([node("Transpose", ["x"], ["t1"], perm=[0, 2, 3, 1]),
               node("Transpose", ["t1"], ["t2"], perm=[0, 3, 1, 2]),  # undoes t1
               node("Transpose", ["t2"], ["t3"], perm=[1, 0, 2, 3]),  # moves a size-1 axis
               node("Transpose", ["t3"], ["t4"], perm=[0, 1, 3, 2]),
               node("Transpose", ["t4"], ["y"], perm=[0, 1, 3, 2])],  # undoes t4
              {"x": (1, 2, 3, 4)}, ["y"])
    out = simplify(g)
    assert ops(out) == Counter(Reshape=1)
    assert out.values["y"].shape == (2, 1, 3, 4)
    assert_same(g, out)


def test_simplify_reshape_chains():
    g = model([node("Flatten", ["x"], ["f"], axis=1),
               node("Unsqueeze", ["f", "ax"], ["u"]),
               node("Reshape", ["u", "shape"], ["r"]),
               node("Squeeze", ["r", "ax"], ["s"]),
               node("Relu", ["s"], ["y"]),
               node("Reshape", ["y", "same"], ["z"])],
              {"x": (2, 3, 4)}, ["z"],
              {"ax": np.array([0], np.int64), "shape": np.array([1, 4, 6], np.int64),
               "same": np.array([4, 6], np.int64)})
    out = simplify(g)
    assert ops(out) == Counter(Reshape=1, Relu=1)
    assert out.outputs == ("z",) and out.nodes[-1].outputs == ("z",)
    assert_same(g, out)


def test_simplify_folds_zero_padding_into_the_conv():
    g = model([node("Pad", ["x", "pads"], ["p"], mode="constant"),
               node("Conv", ["p", "w"], ["y"], pads=[0, 1, 0, 1])],
              {"x": (1, 2, 5, 5)}, ["y"],
              {"pads": np.array([0, 0, 1, 0, 0, 0, 2, 0], np.int64), "w": rand(3, 2, 3, 3)})
    out = simplify(g)
    assert ops(out) == Counter(Conv=1)
    assert out.nodes[0].attrs["pads"] == (1, 1, 2, 1)
    assert_same(g, out)


def test_simplify_keeps_the_name_of_a_graph_output():
    g = model([node("Relu", ["x"], ["r"]), node("Identity", ["r"], ["y"]),
               node("Identity", ["x"], ["z"])], {"x": (3,)}, ["y", "z"])
    out = simplify(g)
    assert out.outputs == ("y", "z")
    assert out.node("Relu_0").outputs == ("y",)  # renamed: no copy
    assert ops(out) == Counter(Relu=1, Identity=1)  # z = x still needs a copy
    assert_same(g, out)


# -- batch-norm and scale folding -------------------------------------------------------------


def _bn(x, y, c, prefix="bn"):
    params = {f"{prefix}_s": RNG.uniform(0.5, 1.5, c).astype(np.float32),
              f"{prefix}_b": rand(c), f"{prefix}_m": rand(c),
              f"{prefix}_v": RNG.uniform(0.5, 2, c).astype(np.float32)}
    return node("BatchNormalization", [x, *params], [y], epsilon=1e-3), params


def test_batch_norm_folds_into_conv_weights():
    bn, params = _bn("c", "b", 4)
    g = model([node("Conv", ["x", "w", "bias"], ["c"], pads=[1, 1, 1, 1]), bn,
               node("Relu", ["b"], ["y"])],
              {"x": (1, 3, 5, 5)}, ["y"], {"w": rand(4, 3, 3, 3), "bias": rand(4), **params})
    out = fold_batch_norm(g)
    assert ops(out) == Counter(Conv=1, Relu=1)
    assert out.nodes[0].name == "Conv_0"
    assert_same(g, out, rtol=1e-4, atol=1e-5)


def test_batch_norm_folds_into_gemm_and_matmul():
    bn1, p1 = _bn("g", "b1", 5, "bn1")
    bn2, p2 = _bn("m", "b2", 5, "bn2")
    g = model([node("Gemm", ["x", "w", "c"], ["g"], transB=1, alpha=0.5, beta=2.0), bn1,
               node("MatMul", ["b1", "w2"], ["m"]), bn2],
              {"x": (3, 4)}, ["b2"],
              {"w": rand(5, 4), "c": rand(5), "w2": rand(5, 5), **p1, **p2})
    out = fold_batch_norm(g)
    # the Gemm takes scale and shift; MatMul takes the scale, the shift stays an Add
    assert ops(out) == Counter(Gemm=1, MatMul=1, Add=1)
    assert "alpha" not in out.nodes[0].attrs
    assert_same(g, out, rtol=1e-4, atol=1e-5)


def test_batch_norm_without_a_foldable_producer_becomes_mul_add():
    bn, params = _bn("x", "y", 3)
    g = model([bn], {"x": (2, 3, 4, 4)}, ["y"], params)
    out = fold_batch_norm(g)
    assert ops(out) == Counter(Mul=1, Add=1)
    assert out.initializers[out.nodes[0].inputs[1]].shape == (3, 1, 1)
    assert_same(g, out, rtol=1e-4, atol=1e-5)


def test_batch_norm_is_not_folded_into_a_conv_output_read_twice():
    bn, params = _bn("c", "b", 4)
    g = model([node("Conv", ["x", "w"], ["c"]), bn, node("Add", ["b", "c"], ["y"])],
              {"x": (1, 3, 4, 4)}, ["y"], {"w": rand(4, 3, 1, 1), **params})
    out = fold_batch_norm(g)
    assert ops(out) == Counter(Conv=1, Mul=1, Add=2)
    assert "w" in out.initializers  # the conv's weights are untouched
    assert_same(g, out, rtol=1e-4, atol=1e-5)


def test_scale_folds_forward_into_a_grouped_conv():
    g = model([node("Mul", ["x", "s"], ["xs"]),
               node("Conv", ["xs", "w"], ["y"], group=2, pads=[1, 1, 1, 1])],
              {"x": (1, 4, 5, 5)}, ["y"],
              {"s": RNG.uniform(0.5, 2, (4, 1, 1)).astype(np.float32), "w": rand(6, 2, 3, 3)})
    out = fold_scale_axis(g)
    assert ops(out) == Counter(Conv=1)
    assert_same(g, out, rtol=1e-4, atol=1e-5)


def test_scale_that_is_not_per_channel_stays():
    g = model([node("Conv", ["x", "w"], ["c"]), node("Mul", ["c", "s"], ["y"])],
              {"x": (1, 2, 3, 3)}, ["y"], {"w": rand(2, 2, 1, 1), "s": rand(3, 3)})
    assert ops(fold_scale_axis(g)) == Counter(Conv=1, Mul=1)


# -- fusion -----------------------------------------------------------------------------------


def _fused(g):
    return [n for n in g.nodes if n.is_fused]


def _members(n):
    return [m.op_type for m in n.subgraph.nodes]


def test_node_kinds_come_from_the_stage_tags():
    g = model([node("Relu", ["x"], ["a"]), node("Add", ["a", "b"], ["c"]),
               node("Transpose", ["c"], ["t"], perm=[0, 1, 3, 2]),
               node("ReduceSum", ["t", "ax"], ["r"]), node("Conv", ["t", "w"], ["y"])],
              {"x": (1, 2, 3, 3)}, ["r", "y"],
              {"b": rand(2, 1, 1), "ax": np.array([1], np.int64), "w": rand(2, 2, 1, 1)})
    assert [node_kind(g, n) for n in g.nodes] == [Kind.ELEMWISE, Kind.BROADCAST,
                                                   Kind.INJECTIVE, Kind.REDUCE, Kind.ANCHOR]


def test_conv_bias_relu_residual_add_is_one_group():
    g = model([node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
               node("Relu", ["c"], ["r"]),
               node("Conv", ["r", "w", "b"], ["c2"], pads=[1, 1, 1, 1]),
               node("Add", ["c2", "x"], ["s"]), node("Relu", ["s"], ["y"])],
              {"x": (1, 3, 4, 4)}, ["y"], {"w": rand(3, 3, 3, 3), "b": rand(3)})
    out = fuse_ops(g)
    groups = _fused(out)
    assert [_members(n) for n in groups] == [["Conv", "Relu"], ["Conv", "Add", "Relu"]]
    assert len(out.nodes) == 2
    assert "c" not in out.values and "r" in out.values  # inner values live in the group
    assert_same(g, out)


def test_two_anchors_never_share_a_group_and_anchors_take_no_prologue():
    g = model([node("Relu", ["x"], ["r"]), node("MatMul", ["r", "w1"], ["a"]),
               node("MatMul", ["r", "w2"], ["b"]), node("Add", ["a", "b"], ["y"])],
              {"x": (3, 4)}, ["y"], {"w1": rand(4, 4), "w2": rand(4, 4)})
    out = fuse_ops(g)
    assert [_members(n) for n in _fused(out)] == [["MatMul", "Add"]]
    assert ops(out) == Counter(Relu=1, MatMul=1, Fused=1)
    assert_same(g, out)


def test_a_value_read_outside_the_group_stays_materialized():
    g = model([node("MatMul", ["x", "w"], ["m"]), node("Relu", ["m"], ["r"]),
               node("Sigmoid", ["m"], ["s"]), node("Mul", ["r", "s"], ["y"]),
               node("Tanh", ["r"], ["z"])],  # r is read by two ops: no single post-dominator
              {"x": (3, 4)}, ["y", "z"], {"w": rand(4, 4)})
    out = fuse_ops(g)
    for n in _fused(out):
        inner = {v for m in n.subgraph.nodes for v in m.outputs}
        readers_outside = {v for other in out.nodes if other is not n for v in other.inputs}
        assert not (inner - set(n.outputs)) & (readers_outside | set(out.outputs))
    assert_same(g, out)


def test_swish_after_a_conv_is_one_group():
    g = model([node("Conv", ["x", "w"], ["c"]), node("Sigmoid", ["c"], ["s"]),
               node("Mul", ["c", "s"], ["y"])],
              {"x": (1, 2, 3, 3)}, ["y"], {"w": rand(4, 2, 1, 1)})
    out = fuse_ops(g)
    assert [_members(n) for n in out.nodes] == [["Conv", "Sigmoid", "Mul"]]
    assert_same(g, out)


def test_softmax_and_layer_norm_written_as_nodes_fuse_into_one_kernel_each():
    ax = np.array([-1], np.int64)
    g = model([node("ReduceMax", ["x"], ["mx"], axes=[-1]), node("Sub", ["x", "mx"], ["d"]),
               node("Exp", ["d"], ["e"]), node("ReduceSum", ["e", "ax"], ["se"]),
               node("Div", ["e", "se"], ["p"]),
               node("ReduceMean", ["p"], ["mu"], axes=[-1]), node("Sub", ["p", "mu"], ["c"]),
               node("Mul", ["c", "c"], ["c2"]), node("ReduceMean", ["c2"], ["var"], axes=[-1]),
               node("Add", ["var", "eps"], ["ve"]), node("Sqrt", ["ve"], ["sd"]),
               node("Div", ["c", "sd"], ["y"])],
              {"x": (2, 3, 8)}, ["y"], {"ax": ax, "eps": np.float32(1e-5)})
    out = fuse_ops(g)
    assert len(out.nodes) == 1 and out.nodes[0].is_fused  # chained reductions: one kernel
    assert_same(g, out)


def test_softmax_and_layer_norm_anchors_take_elementwise_epilogues():
    g = model([node("Softmax", ["x"], ["s"], axis=-1), node("Mul", ["s", "c"], ["m"]),
               node("LayerNormalization", ["m", "g", "b"], ["n"], axis=-1),
               node("Relu", ["n"], ["y"])],
              {"x": (2, 3, 8)}, ["y"], {"c": rand(8), "g": rand(8), "b": rand(8)})
    out = fuse_ops(g)
    assert [_members(n) for n in out.nodes] == [["Softmax", "Mul"],
                                                ["LayerNormalization", "Relu"]]
    assert_same(g, out)


def test_injective_chains_fuse_but_never_follow_a_reduction():
    g = model([node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
               node("Reshape", ["t", "shape"], ["r"]), node("Relu", ["r"], ["a"]),
               node("ReduceSum", ["a", "ax"], ["s"]),
               node("Transpose", ["s"], ["y"], perm=[1, 0])],
              {"x": (2, 3, 4)}, ["y"],
              {"shape": np.array([8, 3], np.int64), "ax": np.array([1], np.int64)})
    out = fuse_ops(g)
    assert [n.op_type if not n.is_fused else _members(n) for n in out.nodes] == [
        ["Transpose", "Reshape", "Relu", "ReduceSum"], "Transpose"]
    assert_same(g, out)


def test_an_opaque_or_output_value_stops_fusion():
    g = model([node("Relu", ["x"], ["r"]), node("Exp", ["r"], ["y"])],
              {"x": (4,)}, ["r", "y"])  # r is a graph output
    assert ops(fuse_ops(g)) == Counter(Relu=1, Exp=1)


# -- horizontal fusion ------------------------------------------------------------------------


def test_sibling_matmuls_with_biases_become_one_wide_matmul():
    nodes, inits = [], {}
    for k in range(3):  # Q, K, V projections, each followed by its heads reshape
        inits.update({f"w{k}": rand(8, 8), f"b{k}": rand(8)})
        nodes += [node("MatMul", ["x", f"w{k}"], [f"m{k}"]),
                  node("Add", [f"m{k}", f"b{k}"], [f"a{k}"]),
                  node("Reshape", [f"a{k}", "heads"], [f"h{k}"])]
    inits["heads"] = np.array([1, 4, 2, 4], np.int64)
    g = model(nodes, {"x": (1, 4, 8)}, ["h0", "h1", "h2"], inits)
    out = fuse_siblings(g)
    assert ops(out) == Counter(MatMul=1, Add=1, Slice=3, Reshape=3)
    wide = next(n for n in out.nodes if n.op_type == "MatMul")
    assert out.initializers[wide.inputs[1]].shape == (8, 24)
    assert_same(g, out)
    # one kernel for the product, one per slice + reshape: 4, where there were 6
    assert len(fuse_ops(out).nodes) == 4 and len(fuse_ops(g).nodes) == 6
    assert_same(g, fuse_ops(out))


def test_sibling_convs_share_one_conv_and_activation():
    inits = {f"w{k}": rand(2 + k, 3, 1, 1) for k in range(2)}
    inits.update(b0=rand(2), w3=rand(2, 2, 3, 3), w4=rand(2, 3, 3, 3))
    g = model([node("Conv", ["x", "w0", "b0"], ["c0"]), node("Relu", ["c0"], ["r0"]),
               node("Conv", ["x", "w1"], ["c1"]), node("Relu", ["c1"], ["r1"]),
               node("Conv", ["r0", "w3"], ["y0"]), node("Conv", ["r1", "w4"], ["y1"])],
              {"x": (1, 3, 5, 5)}, ["y0", "y1"], inits)
    out = fuse_siblings(g)
    assert ops(out) == Counter(Conv=3, Relu=1, Slice=2)
    assert_same(g, out)


def test_siblings_whose_slices_would_cost_a_kernel_stay_apart():
    g = model([node("MatMul", ["x", "w0"], ["a"]), node("MatMul", ["x", "w1"], ["b"]),
               node("Mul", ["a", "b"], ["y"])],  # the slices would feed an elementwise op
              {"x": (2, 4)}, ["y"], {"w0": rand(4, 3), "w1": rand(4, 3)})
    assert fuse_siblings(g) is g


# -- layout --------------------------------------------------------------------------------------


def test_channel_blocks():
    assert [block_of(c) for c in (3, 16, 64, 24, 17, 40)] == [3, 16, 16, 12, None, 10]


def test_layout_blocks_convs_and_keeps_activations_blocked_between_them():
    g = optimize(graph.from_onnx(testing.resnet_block(channels=16, image=5)), level=1)
    out = convert_layout(g)
    assert ops(out) == Counter({"tetune.Conv2dNCHWc": 2, "tetune.LayoutTransform": 2, "Add": 3,
                                "Relu": 2})
    first, last = (n for n in out.nodes if n.op_type == "tetune.LayoutTransform")
    assert (first.inputs, first.attrs["dst"]) == (("input",), "NCHW16c")  # once, shared by
    assert (last.outputs, last.attrs["src"]) == (("output",), "NCHW16c")  # conv and residual
    conv = next(n for n in out.nodes if n.op_type == "tetune.Conv2dNCHWc")
    assert out.initializers[conv.inputs[1]].shape == (1, 1, 3, 3, 16, 16)  # blocked weights
    assert_same(g, out, rtol=1e-4, atol=1e-5)


def test_layout_covers_pools_concat_depthwise_and_per_channel_constants():
    g = model([node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
               node("Mul", ["a", "scale"], ["m"]),
               node("MaxPool", ["m"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
               node("Conv", ["p", "dw"], ["d"], group=8, pads=[1, 1, 1, 1]),
               node("Concat", ["p", "d"], ["c"], axis=1),
               node("AveragePool", ["c"], ["q"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
               node("GlobalAveragePool", ["q"], ["gp"]),
               node("Flatten", ["gp"], ["y"])],
              {"x": (1, 3, 6, 6)}, ["y"],
              {"w1": rand(8, 3, 3, 3), "b1": rand(8), "scale": rand(8, 1, 1),
               "dw": rand(8, 1, 3, 3)})
    out = convert_layout(g, block=4)
    assert ops(out) == Counter({"tetune.Conv2dNCHWc": 2, "tetune.LayoutTransform": 2,
                                "Add": 1, "Mul": 1, "tetune.MaxPool2dNCHWc": 1, "Concat": 1,
                                "tetune.AveragePool2dNCHWc": 1,
                                "tetune.GlobalAveragePool2dNCHWc": 1, "Flatten": 1})
    assert_same(g, out, rtol=1e-4, atol=1e-5)
    assert_same(g, fuse_ops(out), rtol=1e-4, atol=1e-5)


def test_layout_is_all_or_nothing():
    grouped = model([node("Conv", ["x", "w"], ["a"]), node("Conv", ["a", "g"], ["y"], group=2)],
                    {"x": (1, 4, 3, 3)}, ["y"], {"w": rand(4, 4, 1, 1), "g": rand(4, 2, 1, 1)})
    assert convert_layout(grouped) is grouped  # a grouped (not depthwise) conv stays NCHW
    single = model([node("Conv", ["x", "w"], ["y"])], {"x": (1, 4, 3, 3)}, ["y"],
                   {"w": rand(4, 4, 1, 1)})
    assert convert_layout(single) is single  # one conv does not pay for two transforms


# -- memory planning --------------------------------------------------------------------------


def _chain(n=6, shape=(4, 16)):
    nodes = [node("Relu" if k % 2 else "Neg", [f"v{k}"], [f"v{k + 1}"]) for k in range(n)]
    return model(nodes, {"v0": shape}, [f"v{n}"])


def _live_ranges(g):
    start = {v: k for k, n in enumerate(g.nodes) for v in n.outputs}
    end = dict(start)
    for k, n in enumerate(g.nodes):
        for v in n.inputs:
            if v in end:
                end[v] = max(end[v], k)
    for v in g.outputs:
        end[v] = len(g.nodes)
    return start, end


def test_memory_plan_reuses_buffers_of_dead_values():
    g = _chain()
    plan = plan_memory(g)
    assert len(plan.block_bytes) == 2 and plan.naive_bytes == 6 * 4 * 16 * 4
    assert plan.planned_bytes == 2 * 4 * 16 * 4
    start, end = _live_ranges(g)
    for a in plan.placement:  # values alive at the same time never share a block
        for b in plan.placement:
            if a < b and plan.placement[a][0] == plan.placement[b][0]:
                assert end[a] < start[b] or end[b] < start[a]
    feeds = feeds_for(g)
    np.testing.assert_array_equal(run(g, feeds, memory_plan=True)[0], run(g, feeds)[0])
    assert "saved" in str(plan)


def test_memory_plan_never_gives_an_output_its_inputs_buffer():
    g = model([node("Neg", ["x"], ["a"]), node("Transpose", ["a"], ["b"], perm=[1, 0]),
               node("Exp", ["b"], ["c"]), node("Transpose", ["c"], ["y"], perm=[1, 0])],
              {"x": (8, 8)}, ["y"])
    plan = plan_memory(g)
    for n in g.nodes:
        for v in n.inputs:
            if v in plan.placement:
                assert plan.placement[v][0] != plan.placement[n.outputs[0]][0]
    feeds = feeds_for(g)
    np.testing.assert_allclose(run(g, feeds, memory_plan=True)[0], run(g, feeds)[0])


def test_concat_reshape_and_slice_become_views():
    g = model([node("Relu", ["x"], ["a"]), node("Exp", ["x"], ["b"]),
               node("Neg", ["x"], ["c"]),
               node("Concat", ["a", "b", "c"], ["cat"], axis=1),
               node("Reshape", ["cat", "flat"], ["r"]),
               node("Slice", ["cat", "st", "en", "ax"], ["s"]),
               node("Add", ["r", "one"], ["y"]), node("Sigmoid", ["s"], ["z"])],
              {"x": (1, 2, 3)}, ["y", "z"],
              {"flat": np.array([1, 18], np.int64), "st": np.array([1], np.int64),
               "en": np.array([4], np.int64), "ax": np.array([1], np.int64),
               "one": np.float32(1)})
    plan = plan_memory(g)
    assert plan.elided == {"Concat_3", "Reshape_4", "Slice_5"}
    block = plan.placement["cat"][0]
    assert [plan.placement[v] for v in "abc"] == [(block, 0), (block, 24), (block, 48)]
    assert plan.placement["s"] == (block, 12)
    module = graph.compile(g, target="python", passes=None)
    assert len(module.steps) == len(g.nodes) - 3  # the views have no kernel
    feeds = feeds_for(g)
    for want, got in zip(run(g, feeds), module.run(feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_saved_module_with_views_loads_and_runs(tmp_path):
    g = model([node("MatMul", ["x", "w1"], ["a"]), node("MatMul", ["x", "w2"], ["b"]),
               node("Concat", ["a", "b"], ["y"], axis=1)],
              {"x": (1, 3)}, ["y"], {"w1": rand(3, 3), "w2": rand(3, 4)})
    module = graph.compile(g, target="python")
    assert module.memory_plan.elided == {"Concat_2"}
    module.save(tmp_path / "m.tetune")
    loaded = graph.load(tmp_path / "m.tetune")  # the plan is made again from the graph
    assert loaded.memory_plan.elided == {"Concat_2"}
    feeds = feeds_for(g)
    np.testing.assert_allclose(loaded.run(feeds)[0], run(g, feeds)[0], rtol=1e-6)


def test_concat_that_cannot_be_written_in_place_is_kept():
    g = model([node("Relu", ["x"], ["a"]), node("Concat", ["a", "a", "x"], ["y"], axis=1)],
              {"x": (1, 2)}, ["y"])  # a twice, and a graph input
    assert plan_memory(g).elided == frozenset()
    g = model([node("Relu", ["x"], ["a"]), node("Exp", ["x"], ["b"]),
               node("Concat", ["a", "b"], ["y"], axis=1)], {"x": (2, 2)}, ["y"])  # batch 2
    assert plan_memory(g).elided == frozenset()


# -- the pass manager -------------------------------------------------------------------------


def test_optimize_levels_and_report():
    g = graph.from_onnx(testing.resnet_block(channels=4, image=4))
    assert optimize(g, level=0) is g
    report = PassReport()
    level1 = optimize(g, level=1, report=report)
    assert ops(level1) == Counter(Conv=2, Relu=2, Add=1)
    assert [r.name for r in report.records][:3] == ["fold_constants", "simplify",
                                                   "fold_batch_norm"]
    assert report.records[2].changes == {"BatchNormalization": -2}
    level2 = optimize(g)
    assert ops(level2) == Counter(Fused=2)
    assert default_passes("cpu", 2)[-1] is fuse_ops
    assert default_passes("cpu", 3)[-2:] == [convert_layout, fuse_ops]
    assert convert_layout not in default_passes("cuda", 3)
    assert ops(optimize(g, level=3)) == Counter({"Fused": 2, "tetune.LayoutTransform": 2})
    assert_same(g, level2, rtol=1e-4, atol=1e-5)


def test_optimize_twice_changes_nothing_more():
    g = graph.optimize(graph.from_onnx(NETS["bert"]()))
    again = graph.optimize(g)
    assert [n.name for n in again.nodes] == [n.name for n in g.nodes]


def test_rewrites_keep_fused_groups_consistent():
    g = fuse_ops(model([node("Relu", ["x"], ["a"]), node("Exp", ["a"], ["b"]),
                        node("Add", ["b", "c1"], ["y0"])], {"x": (3,)}, ["y0"],
                       {"c1": np.ones(3, np.float32)}))
    extra = graph.Node("Identity", "copy", ("y0",), ("y",))
    g = g.replace(nodes=[*g.nodes, extra], outputs=("y",),
                  values={**g.values, "y": g.values["y0"]})
    out = simplify(g)  # the group now writes y itself
    assert [n.outputs for n in out.nodes] == [("y",)]
    assert out.nodes[0].subgraph.outputs == ("y",)
    assert_same(g, out)


def test_run_passes_names_a_pass_that_breaks_the_graph():
    def bad_pass(g):
        return g.replace(nodes=g.nodes[1:])  # drops the producer of a used value

    g = _chain(2)
    with pytest.raises(graph.GraphError, match="bad_pass"):
        run_passes(g, [bad_pass])


def test_compile_reports_passes_and_memory(capsys):
    model_proto = testing.small_cnn(image=8)
    module = graph.compile(model_proto, target="python", verbose=True)
    printed = capsys.readouterr().out
    assert "fuse_ops" in printed and "memory plan" in printed
    report = module.pass_report
    assert report.fused_groups == 2 and report.memory is module.memory_plan
    assert module.memory_plan.planned_bytes < module.memory_plan.naive_bytes
    feeds = testing.random_inputs(model_proto)
    want = graph.compile(model_proto, target="python", passes=None, memory_plan=False).run(feeds)
    np.testing.assert_allclose(module.run(feeds)[0], want[0], rtol=1e-4, atol=1e-5)


NETS = {
    "resnet_block": lambda: testing.resnet_block(channels=4, image=6, stride=2, bottleneck=True),
    "inverted_residual": lambda: testing.inverted_residual(channels=4, image=5),
    "bert": lambda: testing.bert_encoder(layers=1, seq=4, hidden=8, heads=2, intermediate=16),
    "bert_decomposed": lambda: testing.bert_encoder(layers=1, seq=4, hidden=8, heads=2,
                                                    intermediate=16, decomposed_layernorm=True),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_test_networks_compute_the_same_after_all_passes(name):
    proto = NETS[name]()
    g = graph.from_onnx(proto)
    out = optimize(g, level=3)
    kernels = [n for n in out.nodes if n.op_type != "tetune.LayoutTransform"]
    assert len(kernels) < len(g.nodes) / 2  # plus the two layout transforms of a CNN
    assert "BatchNormalization" not in ops(out)
    feeds = testing.random_inputs(proto)
    want = run(g, feeds)
    got = graph.compile(out, target="python", passes=None).run(feeds)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, level", [("resnet_block", 3), ("bert_decomposed", 2)])
def test_fused_networks_on_the_cpu_target(name, level):
    proto = NETS[name]()
    feeds = testing.random_inputs(proto)
    want = graph.compile(proto, target="python", passes=None, memory_plan=False).run(feeds)
    module = graph.compile(proto, target="cpu", passes=default_passes("cpu", level))
    assert module.pass_report.fused_groups >= 3
    for v in module.memory_plan.placement:  # no kernel may rely on zeroed or fresh memory
        module.buffers[v].fill(np.nan)
    for a, b in zip(want, module.run(feeds)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)

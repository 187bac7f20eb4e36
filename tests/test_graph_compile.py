"""graph.compile and the executor, against onnxruntime: every supported op in a one-node
model (python target: no numba compiles), a small network and a fused group on the cpu
target, save/load, profile, kernel sharing, task extraction and run-time errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

import graph
from graph import testing
from tests.ops_check import onnx_model

ort = pytest.importorskip("onnxruntime")

R = np.random.default_rng(0)


def f(*shape):
    return R.standard_normal(shape).astype(np.float32)


def pos(*shape):
    return R.uniform(0.5, 2.0, shape).astype(np.float32)


def bools(*shape):
    return R.random(shape) < 0.5


def ints(*values):
    return np.array(values, np.int64)


def ort_run(m, feeds):
    # onnxruntime wants typed outputs; onnx_model leaves them to shape inference
    m = onnx.shape_inference.infer_shapes(m)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


# (id, op type, graph inputs, initializer inputs (None: omitted), attributes[, outputs])
OPS = [
    ("conv", "Conv", [f(1, 3, 9, 9)], [f(4, 3, 3, 3), f(4)], dict(pads=[1, 1, 1, 1],
                                                                  strides=[2, 2])),
    ("conv_group", "Conv", [f(1, 4, 6, 6)], [f(4, 2, 3, 3)], dict(group=2, auto_pad="SAME_UPPER")),
    ("conv_1d", "Conv", [f(1, 2, 10)], [f(3, 2, 3)], dict(dilations=[2])),
    ("conv_transpose", "ConvTranspose", [f(1, 2, 4, 4)], [f(2, 3, 3, 3), f(3)],
     dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])),
    ("batch_norm", "BatchNormalization", [f(2, 3, 4, 4)], [pos(3), f(3), f(3), pos(3)], {}),
    ("relu", "Relu", [f(3, 4)], [], {}),
    ("leaky_relu", "LeakyRelu", [f(3, 4)], [], dict(alpha=0.2)),
    ("prelu", "PRelu", [f(2, 3, 4)], [f(3, 1)], {}),
    ("sigmoid", "Sigmoid", [f(3, 4)], [], {}),
    ("tanh", "Tanh", [f(3, 4)], [], {}),
    ("clip", "Clip", [f(3, 4)], [np.float32(-0.5), np.float32(0.5)], {}),
    ("elu", "Elu", [f(3, 4)], [], dict(alpha=0.5)),
    ("selu", "Selu", [f(3, 4)], [], {}),
    ("hard_sigmoid", "HardSigmoid", [f(3, 4) * 4], [], dict(alpha=0.3, beta=0.4)),
    ("hard_swish", "HardSwish", [f(3, 4) * 4], [], {}),
    ("gelu", "Gelu", [f(3, 4)], [], dict(approximate="tanh")),
    ("erf", "Erf", [f(3, 4)], [], {}),
    ("softmax", "Softmax", [f(2, 3, 5)], [], dict(axis=1)),
    ("log_softmax", "LogSoftmax", [f(2, 3, 5)], [], {}),
    ("lrn", "LRN", [f(1, 5, 3, 3)], [], dict(size=3, alpha=1e-3, beta=0.75, bias=2.0)),
    ("max_pool", "MaxPool", [f(1, 2, 7, 7)], [], dict(kernel_shape=[3, 3], strides=[2, 2],
                                                      pads=[1, 1, 1, 1])),
    ("max_pool_ceil", "MaxPool", [f(1, 2, 6, 6)], [], dict(kernel_shape=[3, 3],
                                                           strides=[2, 2], ceil_mode=1)),
    ("avg_pool", "AveragePool", [f(1, 2, 7, 7)], [], dict(kernel_shape=[3, 3], strides=[2, 2],
                                                          pads=[1, 1, 1, 1])),
    ("avg_pool_1d", "AveragePool", [f(1, 2, 9)], [], dict(kernel_shape=[3],
                                                          count_include_pad=1, pads=[1, 1])),
    ("global_avg_pool", "GlobalAveragePool", [f(1, 3, 4, 5)], [], {}),
    ("global_max_pool", "GlobalMaxPool", [f(1, 3, 4, 5)], [], {}),
    ("gemm_dense", "Gemm", [f(3, 5)], [f(4, 5), f(4)], dict(transB=1)),
    ("gemm_general", "Gemm", [f(5, 3)], [f(5, 4), f(3, 4)], dict(transA=1, alpha=0.5,
                                                                  beta=2.0)),
    ("matmul_3d_2d", "MatMul", [f(2, 3, 4)], [f(4, 5)], {}),
    ("matmul_batch", "MatMul", [f(2, 3, 4), f(2, 4, 5)], [], {}),
    ("add", "Add", [f(2, 3, 4), f(4)], [], {}),
    ("sub", "Sub", [f(2, 3, 4), f(3, 1)], [], {}),
    ("mul", "Mul", [f(2, 3, 4)], [f(1, 4)], {}),
    ("div", "Div", [f(2, 3), pos(2, 3)], [], {}),
    ("pow", "Pow", [pos(3, 4), f(3, 4)], [], {}),
    ("sqrt", "Sqrt", [pos(3, 4)], [], {}),
    ("reciprocal", "Reciprocal", [pos(3, 4)], [], {}),
    ("exp", "Exp", [f(3, 4)], [], {}),
    ("log", "Log", [pos(3, 4)], [], {}),
    ("abs", "Abs", [f(3, 4)], [], {}),
    ("neg", "Neg", [f(3, 4)], [], {}),
    ("min", "Min", [f(3, 4), f(4), f(3, 1)], [], {}),
    ("max", "Max", [f(3, 4), f(4)], [], {}),
    ("sum", "Sum", [f(3, 4), f(4), f(3, 4)], [], {}),
    ("mean", "Mean", [f(3, 4), f(3, 4)], [], {}),
    ("where", "Where", [bools(3, 4), f(3, 4), f(4)], [], {}),
    ("equal", "Equal", [ints(1, 2, 3), ints(1, 5, 3)], [], {}),
    ("less", "Less", [f(3, 4), f(4)], [], {}),
    ("greater", "Greater", [f(3, 4), f(4)], [], {}),
    ("not", "Not", [bools(3, 4)], [], {}),
    ("and", "And", [bools(3, 4), bools(4)], [], {}),
    ("or", "Or", [bools(3, 4), bools(3, 4)], [], {}),
    ("cast", "Cast", [f(3, 4) * 10], [], dict(to=TP.INT32)),
    ("reshape", "Reshape", [f(2, 3, 4)], [ints(4, -1)], {}),
    ("flatten", "Flatten", [f(2, 3, 4)], [], dict(axis=2)),
    ("transpose", "Transpose", [f(2, 3, 4)], [], dict(perm=[2, 0, 1])),
    ("concat", "Concat", [f(2, 3), f(2, 2)], [], dict(axis=1)),
    ("split", "Split", [f(2, 6)], [ints(2, 4)], dict(axis=1), 2),
    ("slice", "Slice", [f(5, 6)], [ints(1, -1), ints(4, 0), ints(0, 1), ints(1, -2)], {}),
    ("gather", "Gather", [f(5, 4)], [np.array([[0, 4], [-1, 2]], np.int64)], {}),
    ("squeeze", "Squeeze", [f(1, 3, 1)], [ints(0, 2)], {}),
    ("unsqueeze", "Unsqueeze", [f(3, 4)], [ints(0, 3)], {}),
    ("expand", "Expand", [f(3, 1)], [ints(2, 3, 4)], {}),
    ("pad", "Pad", [f(2, 3)], [ints(1, 0, 2, 1), np.float32(1.5)], {}),
    ("pad_reflect", "Pad", [f(3, 4)], [ints(1, 2, 1, 2)], dict(mode="reflect")),
    ("resize_linear", "Resize", [f(1, 1, 3, 4)],
     [None, np.array([1, 1, 2, 1.5], np.float32)], dict(mode="linear")),
    ("resize_nearest", "Resize", [f(1, 1, 3, 4)], [None, None, ints(1, 1, 5, 7)], {}),
    ("shape", "Shape", [f(2, 3, 4)], [], {}),
    ("size", "Size", [f(2, 3, 4)], [], {}),
    ("constant_of_shape", "ConstantOfShape", [], [ints(2, 3)],
     dict(value=numpy_helper.from_array(np.array([7], np.float32)))),
    ("identity", "Identity", [f(3)], [], {}),
    ("dropout", "Dropout", [f(3, 4)], [], {}),
    ("reduce_sum", "ReduceSum", [f(3, 4, 5)], [ints(1)], dict(keepdims=0)),
    ("reduce_mean", "ReduceMean", [f(3, 4, 5)], [ints(0, 2)], {}),
    ("reduce_max", "ReduceMax", [f(3, 4, 5)], [ints(-1)], {}),
    ("reduce_min", "ReduceMin", [f(3, 4, 5)], [], dict(keepdims=0)),
    ("reduce_prod", "ReduceProd", [pos(3, 4)], [ints(1)], {}),
    ("argmax", "ArgMax", [f(3, 4)], [], dict(axis=1, keepdims=0)),
    ("layer_norm", "LayerNormalization", [f(2, 3, 4)], [pos(4), f(4)], {}),
    ("tile", "Tile", [f(2, 3)], [ints(2, 2)], {}),
    ("range", "Range", [], [np.float32(1), np.float32(4), np.float32(0.5)], {}),
    ("einsum", "Einsum", [f(2, 3, 4), f(2, 4, 5)], [], dict(equation="bij,bjk->bik")),
    ("constant", "Constant", [], [], dict(value=numpy_helper.from_array(f(2, 2)))),
]


def test_every_supported_op_has_a_row():
    covered = {row[1] for row in OPS}
    extra = {"Floor", "Ceil", "Xor", "LessOrEqual", "GreaterOrEqual", "Softplus", "CastLike",
             "ArgMin", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum",
             "ReduceLogSumExp"}  # beyond the list; the ONNX node tests cover them
    assert set(graph.supported_ops()) - covered == extra


@pytest.mark.parametrize("row", OPS, ids=[r[0] for r in OPS])
def test_op_matches_onnxruntime(row):
    _, op, arrays, consts, attrs, *n_out = row
    m = onnx_model(op, arrays, consts, n_out[0] if n_out else 1, **attrs)
    feeds = {f"x{k}": a for k, a in enumerate(arrays)}
    got = graph.compile(m, target="python").run(feeds)
    want = ort_run(m, feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
        else:
            np.testing.assert_array_equal(g, w)


def _old(op, opset, attrs, inits=(), outs=("y",)):
    """A one-node model of an older opset: input x [1, 2, 3, 4], initializers ``inits``."""
    inits = dict(inits)
    node = helper.make_node(op, ["x", *inits], list(outs), **attrs)
    g = helper.make_graph([node], "old", [helper.make_tensor_value_info("x", TP.FLOAT,
                                                                        [1, 2, 3, 4])],
                          [helper.make_tensor_value_info(o, TP.FLOAT, None) for o in outs],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)
    return onnx.shape_inference.infer_shapes(m)


OLD_OPSETS = [  # attributes that later opsets turned into inputs, and changed defaults
    ("resize_10", _old("Resize", 10, {"mode": "nearest"},
                       {"s": np.array([1, 1, 2, 2.5], np.float32)})),
    ("split_11", _old("Split", 11, {"axis": 3, "split": [1, 3]}, outs=("a", "b"))),
    ("split_7_equal", _old("Split", 7, {"axis": 3}, outs=("a", "b"))),
    ("pad_7", _old("Pad", 7, {"pads": [0, 0, 1, 2, 0, 0, 0, 1], "value": 3.0})),
    ("unsqueeze_11", _old("Unsqueeze", 11, {"axes": [0, 5]})),
    ("dropout_7", _old("Dropout", 7, {"ratio": 0.3})),
    ("softmax_7", _old("Softmax", 7, {})),
    ("reduce_mean_7", _old("ReduceMean", 7, {"axes": [2]})),
    ("slice_7", _old("Slice", 7, {"starts": [1], "ends": [3], "axes": [3]})),
    ("batch_norm_7", _old("BatchNormalization", 7, {},
                          {k: pos(2) for k in ("scale", "b", "mean", "var")})),
]


@pytest.mark.parametrize("m", [m for _, m in OLD_OPSETS], ids=[i for i, _ in OLD_OPSETS])
def test_older_opsets_match_onnxruntime(m):
    feeds = {"x": f(1, 2, 3, 4)}
    got = graph.compile(m, target="python").run(feeds)
    for g, w in zip(got, ort_run(m, feeds)):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


# -- networks on the cpu target ----------------------------------------------------------------


@pytest.fixture(scope="module")
def block():
    """A ResNet basic block, compiled once for the cpu target (numba compiles are slow)."""
    m = testing.resnet_block(channels=8, image=6)
    return m, graph.compile(m, target="cpu")


def test_network_on_cpu_matches_onnxruntime(block):
    m, module = block
    feeds = testing.random_inputs(m)
    (got,) = module.run(feeds)
    (want,) = ort_run(m, feeds)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert module.target == "cpu" and len(module.codes) <= len(module.steps)


def test_save_load_round_trip(block, tmp_path):
    m, module = block
    feeds = testing.random_inputs(m, seed=3)
    module.save(tmp_path / "block.tetune")
    loaded = graph.load(tmp_path / "block.tetune")
    assert [s.node for s in loaded.steps] == [s.node for s in module.steps]
    # the convs' weights are packed once, by prologues saved next to their kernels
    prologues = [c.prologue.name for c in loaded.codes if c.prologue is not None]
    assert prologues == [c.prologue.name for c in module.codes if c.prologue is not None]
    assert prologues and all((tmp_path / "block.tetune" / "kernels").glob(f"*_{p}.py")
                             for p in prologues)
    np.testing.assert_array_equal(loaded.run(feeds)[0], module.run(feeds)[0])
    with np.load(tmp_path / "block.tetune" / "weights.npz", allow_pickle=False) as npz:
        assert len(npz.files) >= len(module.graph.initializers)


def test_profile_lists_every_node_slowest_first(block):
    m, module = block
    table = module.profile(testing.random_inputs(m), runs=2)
    assert sorted(r.node for r in table) == sorted(n.name for n in module.graph.nodes)
    assert [r.mean_ms for r in table] == sorted((r.mean_ms for r in table), reverse=True)
    assert abs(sum(r.percent for r in table) - 100.0) < 1e-6
    assert "total" in str(table) and table.by_op_type()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="matplotlib"):
            table.plot()


def test_fused_group_runs_as_one_kernel():
    nodes = [helper.make_node("Add", ["x", "b"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "x"], ["y"], name="mul")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, [4, 8])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, None)],
                          [numpy_helper.from_array(f(8), "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    fused = graph.fuse_nodes(graph.from_onnx(m), ["add", "relu", "mul"], "add_relu_mul")
    module = graph.compile(fused, target="cpu", passes=None)
    assert len(module.steps) == 1 and module.steps[0].op_type == graph.FUSED
    x = f(4, 8)
    np.testing.assert_allclose(module.run({"x": x})[0], ort_run(m, {"x": x})[0], rtol=1e-6)


def test_fused_group_with_private_constants():
    nodes = [helper.make_node("Add", ["x", "b"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, None)],
                          [numpy_helper.from_array(f(3), "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    plain = graph.from_onnx(m)
    (node,) = graph.fuse_nodes(plain, ["add", "relu"], "grp").nodes
    b = plain.initializers["b"]
    sub = node.subgraph.replace(inputs=("x",), initializers={"b": b})
    fused = plain.replace(nodes=[node.replace(inputs=("x",), subgraph=sub)], initializers={})
    module = graph.compile(fused.validate(), target="python", passes=None)
    x = f(2, 3)
    np.testing.assert_allclose(module.run({"x": x})[0], np.maximum(x + b, 0), rtol=1e-6)


# -- kernels, tasks, errors --------------------------------------------------------------------


def _twin_relus():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r1"),
             helper.make_node("Relu", ["a"], ["b"], name="r2"),
             helper.make_node("Gemm", ["b", "w"], ["c"], name="g1", transB=1),
             helper.make_node("Gemm", ["c", "w"], ["y"], name="g2", transB=1)]
    g = helper.make_graph(nodes, "twins", [helper.make_tensor_value_info("x", TP.FLOAT, [4, 16])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, None)],
                          [numpy_helper.from_array(f(16, 16), "w")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_equal_nodes_share_a_kernel():
    module = graph.compile(_twin_relus(), target="python", passes=None)
    assert len(module.steps) == 4 and len(module.codes) == 2
    assert module.steps[0].code == module.steps[1].code
    assert module.steps[0].args != module.steps[1].args


def test_kernels_pack_constant_weights_once():
    """The twin Gemms read one constant W through one kernel: its prologue packs W once,
    into one array both steps read; a MatMul of two activations has no prologue."""
    module = graph.compile(_twin_relus(), target="python", passes=None)
    g1, g2 = module.steps[2:]
    code = module.codes[g1.code]
    assert code.prologue is not None and code.prepared and g1.args[-1] == g2.args[-1]
    assert sum(".prepared" in name for name in module.buffers) == len(code.prepared)
    x = f(4, 16)
    w = module.graph.initializers["w"]
    np.testing.assert_allclose(module.run({"x": x})[0], np.maximum(x, 0) @ w.T @ w.T,
                               rtol=1e-4, atol=1e-4)


def test_constant_and_variable_operands_do_not_share_a_kernel():
    """Same shapes, but one MatMul's B is a weight and the other's an activation: a kernel
    that reads a packed copy made once cannot serve the second."""
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="t"),
             helper.make_node("MatMul", ["x", "w"], ["a"], name="mw"),
             helper.make_node("MatMul", ["a", "xt"], ["y"], name="mx")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, [16, 16])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, None)],
                          [numpy_helper.from_array(f(16, 16), "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    module = graph.compile(m, target="python", passes=None)
    mw, mx = module.steps[1:]
    assert mw.code != mx.code
    x = f(16, 16)
    np.testing.assert_allclose(module.run({"x": x})[0], ort_run(m, {"x": x})[0], rtol=1e-4,
                               atol=1e-4)


def test_extract_tasks_counts_repeated_workloads():
    tasks = graph.extract_tasks(_twin_relus(), target="cpu", passes=None)
    if not tasks:
        pytest.skip("the operator library puts no tuning workloads on dense yet")
    (dense,) = [t for t in tasks if set(t.nodes) == {"g1", "g2"}]
    assert dense.weight == 2 and dense.target == "cpu"


def test_compile_with_a_tuning_log_names_untuned_workloads(tmp_path):
    log = tmp_path / "empty.jsonl"
    log.write_text("")
    with pytest.warns(UserWarning):
        module = graph.compile(_twin_relus(), target="python", tuning_log=str(log),
                               passes=None)
    if not graph.extract_tasks(_twin_relus(), target="cpu", passes=None):
        pytest.skip("the operator library puts no tuning workloads on dense yet")
    assert module.untuned and module.untuned[0][0]


def test_run_checks_its_inputs():
    module = graph.compile(_twin_relus(), target="python", passes=None)
    with pytest.raises(graph.GraphError, match="missing input.*'x'"):
        module.run({})
    with pytest.raises(graph.GraphError, match="'x' must have shape \\(4, 16\\)"):
        module.run({"x": np.zeros((2, 2), np.float32)})
    with pytest.raises(graph.GraphError, match="'z' is not an input"):
        module.run({"x": np.zeros((4, 16), np.float32), "z": 1})


def test_load_rejects_a_directory_without_manifest(tmp_path):
    with pytest.raises(graph.GraphError, match="not a tetune artifact"):
        graph.load(tmp_path)


def test_load_reads_version_1_artifacts(tmp_path):
    """Artifacts written before kernels had prologues (format 1) still load; unknown
    versions are refused with the file named."""
    import json

    nodes = [helper.make_node("Relu", ["x"], ["y"], name="r")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, [3, 4])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    graph.compile(m, target="python").save(tmp_path / "v1")
    manifest = tmp_path / "v1" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["version"] = 1
    manifest.write_text(json.dumps(data))
    x = f(3, 4)
    np.testing.assert_array_equal(graph.load(tmp_path / "v1").run({"x": x})[0],
                                  np.maximum(x, 0))
    data["version"] = 99
    manifest.write_text(json.dumps(data))
    with pytest.raises(graph.GraphError, match="manifest.json: format .* version 99"):
        graph.load(tmp_path / "v1")


def test_model_path_and_bytes_compile_alike(tmp_path):
    m = _twin_relus()
    path = tmp_path / "twins.onnx"
    onnx.save(m, path)
    x = {"x": f(4, 16)}
    a = graph.compile(path, target="python").run(x)[0]
    b = graph.compile(m.SerializeToString(), target="python").run(x)[0]
    np.testing.assert_array_equal(a, b)


# -- the command line --------------------------------------------------------------------------


def test_cli_compile_run_bench(tmp_path, capsys):
    from tetune.cli import main

    m = _twin_relus()
    onnx.save(m, tmp_path / "twins.onnx")
    x = f(4, 16)
    np.save(tmp_path / "x.npy", x)
    art, out = str(tmp_path / "twins.tetune"), str(tmp_path / "out.npz")
    assert main(["compile", str(tmp_path / "twins.onnx"), "--target", "python", "-o", art]) == 0
    assert main(["run", art, "--input", f"x={tmp_path / 'x.npy'}", "-o", out]) == 0
    with np.load(out) as npz:
        np.testing.assert_allclose(npz["y"], ort_run(m, {"x": x})[0], rtol=1e-5, atol=1e-5)
    capsys.readouterr()
    assert main(["bench", str(tmp_path / "twins.onnx"), "--target", "python", "--runs", "1",
                 "--threads", "1", "--profile"]) == 0
    text = capsys.readouterr().out
    assert "onnxruntime" in text and "agree" in text and "g1" in text
    assert main(["run", art, "--input", f"nope={tmp_path / 'x.npy'}"]) == 2
    assert "no input 'nope'" in capsys.readouterr().err


def test_cli_tune_net_without_tunable_ops(tmp_path, capsys):
    from tetune.cli import main

    m = onnx_model("Relu", [f(3, 4)])
    onnx.save(m, tmp_path / "relu.onnx")
    assert main(["tune-net", str(tmp_path / "relu.onnx"), "--log",
                 str(tmp_path / "log.jsonl")]) == 0
    assert "no tunable task" in capsys.readouterr().out


def test_without_a_log_the_shipped_logs_are_used_quietly(tmp_path, monkeypatch):
    """No tuning log: the logs shipped in tuning_logs/ choose the configs (TVM's TopHub),
    workloads they lack use their defaults without warnings; default_logs=False opts out."""
    import warnings

    from autotune import MeasureErrorNo, MeasureInput, MeasureResult
    from autotune.record import append_records

    model = _twin_relus()
    (task,) = graph.extract_tasks(model, target="python", passes=None)
    space = task.config_space
    other = space.get((space.default_index + 1) % len(space))
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    append_records(shipped / "test_python.jsonl",
                   [(MeasureInput(task, other), MeasureResult((1e-3,), MeasureErrorNo.NO_ERROR,
                                                              1.0, 1.7e9))])
    monkeypatch.setattr("autotune.dispatch._shipped_dir", lambda: shipped)
    x = f(4, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tuned = graph.compile(model, target="python", passes=None)
    plain = graph.compile(model, target="python", passes=None, default_logs=False)
    assert tuned.untuned == () and plain.untuned == ()
    kernel = plain.steps[-1].code
    assert tuned.codes[kernel].source != plain.codes[kernel].source
    np.testing.assert_allclose(tuned.run({"x": x})[0], plain.run({"x": x})[0], rtol=1e-5)

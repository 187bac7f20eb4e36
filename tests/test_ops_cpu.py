"""The operator library on the "cpu" target through ``schedule_for``: the default schedules
(generic and per-op) compute what the python target computes, and the code they generate has
the shape that makes it fast."""

import numpy as np
import pytest
from conftest import concrete_shape
from ops_check import OpCase, check_group, f32, onnx_ref

import te
from runtime import build
from schedules import schedule_for
from te import ops


def test_float_max_reduction_uses_maxnum(tmp_path, monkeypatch):
    # numba's max() is a compare and a select that LLVM does not vectorize as a reduction;
    # the cpu target emits llvm.maxnum / minnum instead (10x on a row maximum).
    monkeypatch.setenv("TETUNE_CACHE_DIR", str(tmp_path))  # numba shows no asm of cached code
    x = te.placeholder((6, 40), name="x")
    hi, lo = ops.reduce_max(x, axis=1), ops.reduce_min(x, axis=1)
    f = build(schedule_for([hi, lo], "cpu"), [x, hi, lo], "cpu")
    assert "fast_max(" in f.source and "fast_min(" in f.source
    a = np.random.default_rng(0).standard_normal((6, 40)).astype("float32")
    got_hi, got_lo = np.empty(6, "float32"), np.empty(6, "float32")
    f(a, got_hi, got_lo)
    np.testing.assert_array_equal(got_hi, a.max(1))
    np.testing.assert_array_equal(got_lo, a.min(1))
    assert f.vector_stats()["zmm_ops"] + f.vector_stats()["ymm_ops"] > 0


def test_row_reduction_accumulates_in_a_scalar_with_full_fastmath():
    # A one-element local buffer is a scalar accumulator: the kernel keeps reassoc so that
    # LLVM vectorizes the row sums (only tiles of several elements need it off).
    x, g = te.placeholder((4, 96), name="x"), te.placeholder((96,), name="g")
    y = ops.layer_norm(x, g)
    f = build(schedule_for(y, "cpu"), [x, g, y], "cpu")
    assert f.build_info["fastmath"] is True
    assert sorted(f.build_info["register_tiles"]) == ["layer_norm_sqsum", "layer_norm_sum"]
    assert "layer_norm_sum_0 = layer_norm_sum_0 + " in f.source


def test_module_call_checks_every_new_argument_layout():
    # Module.__call__ remembers layouts it has checked; any other layout is checked again.
    from runtime.module import ArgumentError

    n = te.var("n")
    x = te.placeholder((n, 8), name="x")
    y = ops.relu(x)
    f = build(schedule_for(y, "cpu"), [x, y], "cpu")
    a = np.random.default_rng(0).standard_normal((3, 8)).astype("float32")
    out = np.empty_like(a)
    for _ in range(2):
        f(a, out)
        np.testing.assert_array_equal(out, np.maximum(a, 0))
    f(a[:2], out[:2])
    np.testing.assert_array_equal(out[:2], np.maximum(a[:2], 0))
    with pytest.raises(ArgumentError, match="n is 3"):
        f(a, out[:2])
    with pytest.raises(ArgumentError, match="dtype float32"):
        f(a.astype("float64"), out)
    with pytest.raises(ArgumentError, match="C-contiguous"):
        f(np.asfortranarray(a), out)


# -- the generic schedule ------------------------------------------------------------------


def _run_cpu(outs, inputs, arrays):
    outs = outs if isinstance(outs, list) else [outs]
    s = schedule_for(outs, "cpu")
    f = build(s, inputs + outs, "cpu")
    sizes = {d.name: n for t, a in zip(inputs, arrays) for d, n in zip(t.shape, a.shape)
             if isinstance(d, te.Var)}
    results = [np.empty(concrete_shape(o, sizes), o.dtype) for o in outs]
    f(*arrays, *results)
    return s, f, results


def _kinds(stage):
    return {iv.name: attr.kind for iv, attr in stage.iter_attrs.items()}


def test_generic_computes_row_reductions_inside_the_row_loop():
    x = te.placeholder((64, 600), name="x")
    e = ops.exp(ops.subtract(x, ops.reduce_max(x, axis=1, keepdims=True)))
    y = ops.divide(e, ops.reduce_sum(e, axis=1, keepdims=True))
    a = np.random.default_rng(0).standard_normal((64, 600)).astype("float32")
    s, f, (got,) = _run_cpu(y, [x], [a])
    want = np.exp(a - a.max(1, keepdims=True))
    np.testing.assert_allclose(got, want / want.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    stages = {st.name: st for st in s.stages}
    assert stages["reduce_max"].attach_stage is s[y] and stages["reduce_sum"].attach_stage is s[y]
    assert "parallel" in _kinds(s[y]).values() and "vectorized" in _kinds(s[y]).values()
    assert stages["exp"].attach_type == "inline" and f.build_info["parallel"]


def test_generic_outer_reduction_accumulates_a_row():
    x = te.placeholder((300, 1000), name="x")
    y = ops.reduce_sum(x, axis=0)
    a = np.random.default_rng(0).standard_normal((300, 1000)).astype("float32")
    s, _, (got,) = _run_cpu(y, [x], [a])
    np.testing.assert_allclose(got, a.sum(0), rtol=1e-4, atol=1e-4)
    leaves = [iv.name for iv in s[y].leaf_iter_vars]
    assert leaves == ["i0.outer", "k0", "i0.inner"]  # chunks of columns, then rows
    assert _kinds(s[y]) == {"i0.outer": "parallel", "i0.inner": "vectorized"}


def test_generic_mean_over_a_middle_axis():
    x = te.placeholder((16, 30, 130), name="x")
    y = ops.reduce_mean(x, axis=1)
    a = np.random.default_rng(0).standard_normal((16, 30, 130)).astype("float32")
    s, _, (got,) = _run_cpu(y, [x], [a])
    np.testing.assert_allclose(got, a.mean(1), rtol=1e-5, atol=1e-6)
    total = s.stage_by_name("reduce_mean_sum")
    assert total.attach_stage is s[y]  # a row of 130 partial sums per output row
    assert [iv.name for iv in total.leaf_iter_vars][-2:] == ["k1", "i1"]


def test_zero_d_tensors_in_a_parallel_kernel():
    # numba cannot pass 0-d arrays into a prange body: the cpu target makes them 1-element
    x, c = te.placeholder((64, 600), name="x"), te.placeholder((), name="c")
    total = ops.reduce_sum(x)  # 0-d, computed at the root, read by every element
    y = ops.multiply(ops.add(x, c), total)
    a = np.random.default_rng(0).standard_normal((64, 600)).astype("float32")
    cv = np.array(1.5, "float32")
    _, f, (got, got_total) = _run_cpu([y, total], [x, c], [a, cv])
    assert f.build_info["parallel"]
    np.testing.assert_allclose(got_total, a.sum(), rtol=1e-4)
    np.testing.assert_allclose(got, (a + 1.5) * a.sum(), rtol=1e-4, atol=1e-3)


def test_several_anchors_each_schedule_their_subgraph():
    x = te.placeholder((32, 200), name="x")
    g = te.placeholder((200,), name="g")
    sm = ops.softmax(ops.relu(x))
    ln = ops.layer_norm(sm, g)
    y = ops.reduce_mean(ops.multiply(ln, 2.0), axis=1)
    rng = np.random.default_rng(0)
    a, gv = rng.standard_normal((32, 200)).astype("float32"), rng.random(200).astype("float32")
    s, _, (got_sm, got) = _run_cpu([sm, y], [x, g], [a, gv])
    r = np.maximum(a, 0)
    e = np.exp(r - r.max(1, keepdims=True))
    want_sm = e / e.sum(1, keepdims=True)
    m, v = want_sm.mean(1, keepdims=True), want_sm.var(1, keepdims=True)
    want = ((want_sm - m) / np.sqrt(v + 1e-5) * gv * 2).mean(1)
    np.testing.assert_allclose(got_sm, want_sm, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert s.stage_by_name("softmax_max").attach_stage is s[sm]
    # layer_norm's subgraph ends in the multiply (the reduction after it is not elementwise)
    assert s.stage_by_name("layer_norm").attach_type == "inline"
    assert s.stage_by_name("layer_norm_sum").attach_stage.name == "multiply"
    assert s.stage_by_name("relu").attach_type == "inline"


def test_symbolic_extents_on_cpu():
    n = te.var("n")
    a = te.placeholder((n, 3), name="A")
    out = ops.concat([ops.softmax(ops.relu(a), axis=0), ops.reduce_mean(a, 0, keepdims=True)])
    rows = ops.log_softmax(a, axis=1)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype("float32")
    _, _, (got, got_rows) = _run_cpu([out, rows], [a], [x])
    e = np.exp(np.maximum(x, 0) - np.maximum(x, 0).max(0))
    np.testing.assert_allclose(got, np.concatenate([e / e.sum(0), x.mean(0, keepdims=True)]),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_rows, x - x.max(1, keepdims=True) - np.log(
        np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)), rtol=1e-5, atol=1e-6)


# -- op schedules and their templates ---------------------------------------------------------


@pytest.mark.parametrize("make, knobs", [
    (lambda: ops.softmax(te.placeholder((6, 40))), {"row_tile", "keep_exp"}),
    (lambda: ops.softmax(te.placeholder((2, 6, 40)), axis=1), {"vec_chunk", "keep_exp"}),
    (lambda: ops.log_softmax(te.placeholder((6, 40))), {"row_tile"}),
    (lambda: ops.layer_norm(te.placeholder((6, 40)), te.placeholder((40,))), {"row_tile"}),
    (lambda: ops.max_pool2d(te.placeholder((1, 2, 9, 9)), 3, 2, 1),
     {"row_tile", "unroll_window"}),
    (lambda: ops.avg_pool2d(te.placeholder((1, 2, 9, 9)), 2, 2), {"row_tile", "unroll_window"}),
    (lambda: ops.global_avg_pool2d(te.placeholder((1, 2, 9, 9))), {"row_tile"}),
    (lambda: ops.lrn(te.placeholder((1, 5, 3, 3)), 3), {"row_tile"}),
])
def test_templates_rebuild_the_anchor_from_its_workload(make, knobs):
    from schedules import get_template

    out = make()
    workload = out.op.attrs["workload"]
    tmpl = get_template(workload[0])
    space = tmpl.space(workload[1:])
    assert set(space.space_map) == knobs
    s, tensors = tmpl.instantiate(workload[1:], space.get(len(space) - 1))
    rng = np.random.default_rng(0)
    arrays = [rng.random(tuple(int(d) for d in t.shape)).astype("float32") + 0.5
              for t in tensors[:-1]]
    got = np.empty(tuple(int(d) for d in tensors[-1].shape), "float32")
    build(s, tensors, "python")(*arrays, got)
    want = np.empty_like(got)
    ref_s = te_create(tensors[-1])
    build(ref_s, tensors, "python")(*arrays, want)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def te_create(out):
    from schedules import create_schedule

    return create_schedule(out.op)


def _softmax(a):
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _gelu(x):
    from math import erf, sqrt

    return x * 0.5 * (1 + np.vectorize(erf)(x / sqrt(2)).astype(x.dtype))


def _conv_relu_pool(x, w):
    return onnx_ref("MaxPool", kernel_shape=[2, 2], strides=[2, 2])(
        np.maximum(onnx_ref("Conv", pads=[1, 1, 1, 1])(x, w), 0))


NETWORK_PIECES = [
    OpCase("dense_softmax", lambda x, w, b: ops.softmax(ops.dense(x, w, b)),
           lambda x, w, b: _softmax(x @ w.T + b), [f32(8, 20), f32(13, 20), f32(13)],
           rtol=1e-4, atol=1e-6),
    OpCase("conv_relu_maxpool", lambda x, w: ops.max_pool2d(ops.relu(ops.conv2d(x, w, padding=1)),
                                                            2, 2),
           _conv_relu_pool, [f32(1, 4, 9, 9), f32(8, 4, 3, 3)], rtol=1e-4, atol=1e-5),
    OpCase("layer_norm_dense_gelu", lambda x, g, w: ops.gelu(ops.dense(ops.layer_norm(x, g), w)),
           lambda x, g, w: _gelu((x - x.mean(-1, keepdims=True))
                                 / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * g @ w.T),
           [f32(8, 20), f32(20), f32(24, 20)], rtol=1e-4, atol=1e-5),
]


def test_network_pieces_with_several_anchors_in_one_kernel():
    # each anchor (dense, conv2d, softmax, max_pool2d, layer_norm) schedules its own part
    check_group(NETWORK_PIECES)


def test_small_costly_stages_stay_at_the_root():
    # batch_norm's per-channel rsqrt is computed once per channel, not per element
    x = te.placeholder((2, 8, 5, 6), name="x")
    m, v = te.placeholder((8,), name="m"), te.placeholder((8,), name="v")
    y = ops.relu(ops.batch_norm_inference(x, m, v))
    s = schedule_for(y, "cpu")
    assert s.stage_by_name("batch_norm_inference_scale").attach_type == "root"
    assert s.stage_by_name("batch_norm_inference_shift").attach_type == "inline"
    assert s.stage_by_name("batch_norm_inference").attach_type == "inline"


def test_generic_copies_a_transpose_in_square_tiles():
    x = te.placeholder((40, 3, 50), name="x")
    y = ops.transpose(x, (1, 2, 0))  # y[c, w, n] = x[n, c, w]: the innermost read is along w
    a = np.random.default_rng(0).standard_normal((40, 3, 50)).astype("float32")
    s, _, (got,) = _run_cpu(y, [x], [a])
    np.testing.assert_array_equal(got, a.transpose(1, 2, 0))
    assert [iv.name for iv in s[y].leaf_iter_vars] == [
        "i0.i1.outer.fused", "i2.outer", "i1.inner", "i2.inner"]
    assert _kinds(s[y])["i2.inner"] == "vectorized"

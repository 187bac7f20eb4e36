"""The cpu schedules of matmul, dense, batch_matmul and conv2d (schedules/cpu/gemm.py and
conv2d.py) against numpy, through ``schedule_for`` and through random points of their
tuning spaces; fused epilogues build one loop nest without an anchor-sized buffer.

numba builds take seconds each, so the cpu cases use tiny shapes and one build per case;
the python target (the same loops, interpreted) covers transposes, odd shapes and the
random configs."""

import random

import numpy as np
import pytest
from conftest import random_array, run, run_python

import te
from autotune.task import create_task
from runtime import build
from schedules import create_schedule, ir, lower, replay, schedule_for
from schedules.auto import anchor_op
from schedules.registry import apply_config
from te import ops

# -- references -------------------------------------------------------------------------------


def conv_ref(x, w, stride=1, padding=0, dilation=1, groups=1):
    """Direct NCHW convolution in float64; padding as te.ops.conv2d takes it."""
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    pads = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
    top, left, bottom, right = pads * 2 if len(pads) == 2 else pads
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, _c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = (h - (kh - 1) * dh - 1) // sh + 1
    ow = (wd - (kw - 1) * dw - 1) // sw + 1
    og = o // groups
    out = np.zeros((n, o, oh, ow))
    for oc in range(o):
        g = oc // og
        for ky in range(kh):
            for kx in range(kw):
                patch = x[:, g * cg:(g + 1) * cg, ky * dh:ky * dh + sh * (oh - 1) + 1:sh,
                          kx * dw:kx * dw + sw * (ow - 1) + 1:sw]
                out[:, oc] += np.einsum("nchw,c->nhw", patch, w[oc, :, ky, kx])
    return out


def to_nchwc(x, c):
    n, ch, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, ch // c, c, h, w).transpose(0, 1, 3, 4, 2))


def to_oihwio(w, i, o):
    oc, ic, kh, kw = w.shape
    return np.ascontiguousarray(
        w.reshape(oc // o, o, ic // i, i, kh, kw).transpose(0, 2, 4, 5, 3, 1))


def from_nchwc(y):
    n, cb, h, w, c = y.shape
    return y.transpose(0, 1, 4, 2, 3).reshape(n, cb * c, h, w)


def allocations(func) -> dict:
    """``{buffer name: elements}`` of every buffer the lowered function allocates."""
    out = {}
    for st in ir.walk_stmts(func.body):
        if isinstance(st, ir.Allocate):
            out[st.buffer.name] = int(np.prod([int(d) for d in st.buffer.shape]))
    return out


def stores_to(func, name: str) -> int:
    return sum(1 for st in ir.walk_stmts(func.body)
               if isinstance(st, ir.Store) and st.buffer.name == name)


# -- the layout primitive the schedules pack with ---------------------------------------------


def test_cache_read_with_a_layout_packs_and_replays(rng):
    A = te.placeholder((5, 7), name="A")
    W = te.placeholder((11, 7), name="W")
    C = ops.dense(A, W)
    s = create_schedule(C.op)
    packed = s.cache_read(W, "global", [C], layout=("AB", "AB4a"))
    assert [int(d) for d in packed.shape] == [3, 7, 4]  # 11 rows in blocks of 4, zero-padded
    text = str(lower(s, [A, W, C]))
    assert "W.global[j // 4, k, j % 4]" in text
    a, w = random_array(rng, (5, 7)), random_array(rng, (11, 7))
    np.testing.assert_allclose(run_python(s, [A, W, C], [a, w])[0], a @ w.T, rtol=1e-5)
    again = replay([C.op], s.steps)
    assert str(lower(again, [A, W, C])) == text


def test_outlined_prange_body_does_not_gather(tmp_path, monkeypatch):
    """Regression (cpu codegen): a prange body outlined into a helper gets its index as a
    parameter; unless told it is >= 0, numba's negative-index wraparound turned the
    vectorized copy below into gathers (3x slower packing of B)."""
    A = te.placeholder((8, 64), name="A")
    B = te.compute((2, 8, 32), lambda x, y, z: A[y, x * 32 + z], name="B")
    s = create_schedule(B.op)
    s[B].parallel(B.op.axis[0])
    s[B].vectorize(B.op.axis[2])
    monkeypatch.setenv("TETUNE_CACHE_DIR", str(tmp_path))  # numba has no assembly of cached code
    f = build(s, [A, B], target="cpu")
    stats = f.vector_stats()
    assert stats["instructions"] > 0 and stats["gathers"] == 0, stats
    a = random_array(np.random.default_rng(0), (8, 64))
    b = np.empty((2, 8, 32), np.float32)
    f(a, b)
    np.testing.assert_array_equal(b, a.reshape(8, 2, 32).transpose(1, 0, 2))


# -- gemm ---------------------------------------------------------------------------------


def test_dense_bias_relu_is_one_kernel_on_cpu(rng):
    """dense + bias + relu at odd sizes: the anchor accumulates in a register tile at each
    output tile, the output is stored once, nothing of the anchor's size is allocated."""
    X = te.placeholder((14, 5), name="X")
    W = te.placeholder((13, 5), name="W")
    b = te.placeholder((13,), name="b")
    Y = ops.relu(ops.dense(X, W, b))
    s = schedule_for(Y, "cpu")
    func = lower(s, [X, W, b, Y])
    allocs = allocations(func)
    assert set(allocs) == {"dense", "W.global"}, allocs  # the tile and the packed W
    assert allocs["dense"] == 7 * 13  # the default tile (8 x 32) moved to divisors
    assert stores_to(func, "relu") == 1
    x, w, bias = random_array(rng, (14, 5)), random_array(rng, (13, 5)), random_array(rng, (13,))
    got = run(s, [X, W, b, Y], [x, w, bias], target="cpu")[0]
    np.testing.assert_allclose(got, np.maximum(x @ w.T + bias, 0), rtol=1e-4, atol=1e-5)


def test_matmul_row_vector_with_an_edge_tile_on_cpu(rng):
    """M = 1 (a GEMV), N = 13 in tiles of 8: the last tile is cut by guards."""
    A = te.placeholder((1, 7), name="A")
    B = te.placeholder((7, 13), name="B")
    C = ops.matmul(A, B)
    task = create_task(*_split(C.op.attrs["workload"]))
    knobs = task.config_space.default_config().to_json()
    knobs.update(tile_x=[-1, 8], pack_b="panel")
    with apply_config(task.config_space.from_json(knobs)):
        s = schedule_for(C, "cpu")
    a, b = random_array(rng, (1, 7)), random_array(rng, (7, 13))
    got = run(s, [A, B, C], [a, b], target="cpu")[0]
    np.testing.assert_allclose(got, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_transposes(rng, ta, tb):
    A = te.placeholder((7, 13) if ta else (13, 7), name="A")
    B = te.placeholder((5, 7) if tb else (7, 5), name="B")
    C = ops.matmul(A, B, transpose_a=ta, transpose_b=tb)
    a, b = random_array(rng, A.shape), random_array(rng, B.shape)
    want = (a.T if ta else a) @ (b.T if tb else b)
    got = run_python(schedule_for(C, "python"), [A, B, C], [a, b])[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_matmul_int8_accumulates_in_int32(rng):
    A = te.placeholder((3, 9), dtype="int8", name="A")
    B = te.placeholder((9, 4), dtype="int8", name="B")
    C = ops.matmul(A, B, out_dtype="int32")
    a = rng.integers(-100, 100, (3, 9)).astype("int8")
    b = rng.integers(-100, 100, (9, 4)).astype("int8")
    got = run_python(schedule_for(C, "python"), [A, B, C], [a, b])[0]
    np.testing.assert_array_equal(got, a.astype("int32") @ b.astype("int32"))


def test_batch_matmul_broadcast_transpose_b_on_cpu(rng):
    """Batch axes broadcast (2x1 with 3), B read along k (packed), edge tiles."""
    A = te.placeholder((2, 1, 5, 6), name="A")
    B = te.placeholder((3, 7, 6), name="B")
    C = ops.batch_matmul(A, B, transpose_b=True)
    a, b = random_array(rng, (2, 1, 5, 6)), random_array(rng, (3, 7, 6))
    got = run(schedule_for(C, "cpu"), [A, B, C], [a, b], target="cpu")[0]
    np.testing.assert_allclose(got, a @ np.swapaxes(b, -1, -2), rtol=1e-4, atol=1e-5)


def test_batch_matmul_transpose_a_python(rng):
    A = te.placeholder((3, 4, 5), name="A")
    B = te.placeholder((1, 4, 13), name="B")
    C = ops.batch_matmul(A, B, transpose_a=True)
    a, b = random_array(rng, (3, 4, 5)), random_array(rng, (1, 4, 13))
    got = run_python(schedule_for(C, "python"), [A, B, C], [a, b])[0]
    np.testing.assert_allclose(got, np.swapaxes(a, -1, -2) @ b, rtol=1e-5, atol=1e-5)


def test_gemm_epilogue_with_residual_and_cast_python(rng):
    """A broadcast bias, gelu, a residual add and a cast after a matmul: all inlined into the
    output's tiles."""
    A = te.placeholder((16, 5), name="A")
    B = te.placeholder((5, 40), name="B")
    bias = te.placeholder((40,), name="bias")
    res = te.placeholder((16, 40), name="res")
    Y = ops.cast(ops.add(ops.gelu(ops.add(ops.matmul(A, B), bias)), res), "float64")
    s = schedule_for(Y, "python")
    func = lower(s, [A, B, bias, res, Y])
    assert set(allocations(func)) <= {"matmul", "B.global"}  # the tile (and packed B)
    assert allocations(func)["matmul"] == 8 * 40
    a, b = random_array(rng, (16, 5)), random_array(rng, (5, 40))
    bv, r = random_array(rng, (40,)), random_array(rng, (16, 40))
    z = a.astype(np.float64) @ b + bv
    from math import erf
    gelu = 0.5 * z * (1 + np.vectorize(erf)(z / np.sqrt(2)))
    got = run_python(s, [A, B, bias, res, Y], [a, b, bv, r])[0]
    np.testing.assert_allclose(got, gelu + r, rtol=1e-4, atol=1e-5)


def test_a_transposed_producer_is_read_in_place(rng):
    """An injective producer (transpose) of the anchor is inlined, not materialized."""
    A = te.placeholder((5, 6), name="A")
    W = te.placeholder((6, 4), name="W")
    Y = ops.dense(A, ops.transpose(W, (1, 0)))
    s = schedule_for(Y, "python")
    func = lower(s, [A, W, Y])
    assert "transpose" not in allocations(func)
    a, w = random_array(rng, (5, 6)), random_array(rng, (6, 4))
    np.testing.assert_allclose(run_python(s, [A, W, Y], [a, w])[0], a @ w, rtol=1e-5)


def test_symbolic_sizes_fall_back_to_plain_loops(rng):
    n = te.var("n")
    A = te.placeholder((n, 4), name="A")
    B = te.placeholder((4, 3), name="B")
    C = ops.matmul(A, B)
    a, b = random_array(rng, (5, 4)), random_array(rng, (4, 3))
    got = run_python(schedule_for(C, "python"), [A, B, C], [a, b])[0]
    np.testing.assert_allclose(got, a @ b, rtol=1e-5)


# -- conv2d -------------------------------------------------------------------------------


def _conv_graph(data, weight, epilogue=False, **kw):
    X = te.placeholder(data, name="X")
    Wt = te.placeholder(weight, name="Wt")
    Y = ops.conv2d(X, Wt, **kw)
    if not epilogue:
        return [X, Wt], Y
    bias = te.placeholder((weight[0], 1, 1), name="bias")
    res = te.placeholder(tuple(int(d) for d in Y.shape), name="res")
    return [X, Wt, bias, res], ops.add(ops.relu(ops.add(Y, bias)), res)


def test_conv2d_bias_relu_add_is_one_kernel_on_cpu(rng):
    """conv + bias + relu + residual add, odd sizes, asymmetric padding: one loop nest, the
    output stored once, only tile-sized buffers besides the packed weights."""
    args, Y = _conv_graph((1, 3, 7, 9), (5, 3, 3, 3), epilogue=True, padding=(1, 0, 2, 1))
    s = schedule_for(Y, "cpu")
    func = lower(s, args + [Y])
    allocs = allocations(func)
    out_size = int(np.prod([int(d) for d in Y.shape]))
    assert "Wt.global" in allocs
    assert all(size < out_size for name, size in allocs.items() if name != "Wt.global"), allocs
    assert stores_to(func, s[Y].name) == 1
    x, w = random_array(rng, (1, 3, 7, 9)), random_array(rng, (5, 3, 3, 3))
    bias, res = random_array(rng, (5, 1, 1)), random_array(rng, tuple(int(d) for d in Y.shape))
    got = run(s, args + [Y], [x, w, bias, res], target="cpu")[0]
    want = np.maximum(conv_ref(x, w, padding=(1, 0, 2, 1)) + bias, 0) + res
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_depthwise_conv2d_on_cpu(rng):
    """Depthwise with a channel multiplier, stride 2 and padding (row windows)."""
    args, Y = _conv_graph((1, 3, 17, 19), (6, 1, 3, 3), groups=3, stride=2, padding=1)
    x, w = random_array(rng, (1, 3, 17, 19)), random_array(rng, (6, 1, 3, 3))
    got = run(schedule_for(Y, "cpu"), args + [Y], [x, w], target="cpu")[0]
    np.testing.assert_allclose(got, conv_ref(x, w, 2, 1, 1, 3), rtol=1e-4, atol=1e-4)


def _conv_knobs(Y):
    """The task of a conv's workload and the knobs of its default config."""
    task = create_task(*_split(anchor_op(Y, "cpu").attrs["workload"]))
    return task, task.config_space.default_config().to_json()


def test_pointwise_conv_vectorized_along_rows_on_cpu(rng):
    """A 1x1 conv over wide rows defaults to lanes="ow" (columns vectorized, weights read in
    place: no packed copy) with the bias+relu+add epilogue in the same kernel; a forced
    16-column tile leaves a tail of 9 and an 8-channel tile a tail of 5."""
    args, Y = _conv_graph((1, 6, 3, 57), (13, 6, 1, 1), epilogue=True)
    task, knobs = _conv_knobs(Y)
    assert knobs["lanes"] == "ow"
    x, w = random_array(rng, (1, 6, 3, 57)), random_array(rng, (13, 6, 1, 1))
    bias, res = random_array(rng, (13, 1, 1)), random_array(rng, (1, 13, 3, 57))
    want = np.maximum(conv_ref(x, w) + bias, 0) + res
    s = schedule_for(Y, "cpu")
    assert "Wt.global" not in allocations(lower(s, args + [Y]))
    assert stores_to(lower(s, args + [Y]), s[Y].name) == 1
    got = run(s, args + [Y], [x, w, bias, res], target="cpu")[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    knobs.update(tile_ow=[-1, 16], tile_oc=[-1, 8])
    with apply_config(task.config_space.from_json(knobs)):
        s = schedule_for(Y, "cpu")
    got = run(s, args + [Y], [x, w, bias, res], target="cpu")[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("data, weight, kw", [
    ((1, 4, 30, 30), (8, 4, 3, 3), {"padding": 1}),  # a window: rows are not contiguous
    ((1, 4, 30, 30), (8, 4, 1, 1), {"stride": 2}),
    ((1, 4, 14, 14), (8, 4, 1, 1), {}),  # rows narrower than a vector
    ((1, 4, 30, 30), (8, 2, 1, 1), {"groups": 2}),
])
def test_lanes_knob_only_where_rows_can_be_vectors(data, weight, kw):
    """Other convs keep the channel-vector tile and the space they had (so logged configs
    of them stay valid)."""
    _, Y = _conv_graph(data, weight, **kw)
    _, knobs = _conv_knobs(Y)
    assert "lanes" not in knobs


def test_conv2d_nchwc_on_cpu(rng):
    """NCHW4c data, OIHW4i8o weights, a 3x3 window with padding, batch 2."""
    X = te.placeholder((2, 2, 6, 7, 4), name="X")
    Wt = te.placeholder((2, 2, 3, 3, 4, 8), name="Wt")
    Y = ops.conv2d(X, Wt, padding=1, layout="NCHW4c")
    x, w = random_array(rng, (2, 8, 6, 7)), random_array(rng, (16, 8, 3, 3))
    got = run(schedule_for(Y, "cpu"), [X, Wt, Y], [to_nchwc(x, 4), to_oihwio(w, 4, 8)],
              target="cpu")[0]
    np.testing.assert_allclose(from_nchwc(got), conv_ref(x, w, padding=1), rtol=1e-4,
                               atol=1e-4)


CONV_PYTHON = [
    ("stride_dilation", (1, 2, 9, 8), (4, 2, 3, 2), {"stride": (2, 1), "dilation": (2, 1),
                                                          "padding": (0, 1)}),
    ("grouped", (2, 4, 5, 6), (6, 2, 3, 3), {"groups": 2, "padding": 1}),
    ("pointwise_odd", (1, 7, 5, 13), (13, 7, 1, 1), {}),
    ("single_channel", (1, 1, 7, 1), (2, 1, 3, 1), {"padding": (1, 0)}),
    ("depthwise_asymmetric", (1, 4, 6, 7), (4, 1, 3, 3), {"groups": 4, "padding": (0, 1, 2, 1)}),
]


@pytest.mark.parametrize("data, weight, kw", [c[1:] for c in CONV_PYTHON],
                         ids=[c[0] for c in CONV_PYTHON])
def test_conv2d_python(rng, data, weight, kw):
    args, Y = _conv_graph(data, weight, **kw)
    x, w = random_array(rng, data), random_array(rng, weight)
    got = run_python(schedule_for(Y, "python"), args + [Y], [x, w])[0]
    np.testing.assert_allclose(got, conv_ref(x, w, **kw), rtol=1e-4, atol=1e-4)


def test_grouped_nchwc_python(rng):
    X = te.placeholder((1, 2, 4, 5, 4), name="X")
    Wt = te.placeholder((2, 1, 3, 3, 4, 4), name="Wt")
    Y = ops.conv2d(X, Wt, padding=1, groups=2, layout="NCHW4c")
    x, w = random_array(rng, (1, 8, 4, 5)), random_array(rng, (8, 4, 3, 3))
    got = run_python(schedule_for(Y, "python"), [X, Wt, Y], [to_nchwc(x, 4),
                                                              to_oihwio(w, 4, 4)])[0]
    np.testing.assert_allclose(from_nchwc(got), conv_ref(x, w, padding=1, groups=2),
                               rtol=1e-4, atol=1e-4)


# -- random points of every template's config space ----------------------------------------

T = ("TENSOR",)
F32 = "float32"
TEMPLATE_CASES = [
    ("matmul", [T + ((5, 7), F32), T + ((7, 13), F32), False, False, F32]),
    ("matmul", [T + ((7, 5), F32), T + ((13, 7), F32), True, True, F32]),
    ("dense", [T + ((3, 8), F32), T + ((10, 8), F32), F32]),
    ("batch_matmul", [T + ((2, 3, 4), F32), T + ((1, 4, 6), F32), False, False, F32]),
    ("conv2d_nchw", [T + ((1, 3, 6, 7), F32), T + ((8, 3, 3, 3), F32), (1, 1), (1, 1, 1, 1),
                     (1, 1), 1, "NCHW", F32]),
    ("conv2d_nchw", [T + ((1, 5, 3, 17), F32), T + ((7, 5, 1, 1), F32), (1, 1), (0, 0, 0, 0),
                     (1, 1), 1, "NCHW", F32]),  # 1x1 over 17 columns: both lanes
    ("group_conv2d_nchw", [T + ((1, 4, 5, 5), F32), T + ((4, 2, 3, 3), F32), (2, 2),
                           (1, 0, 1, 0), (1, 1), 2, "NCHW", F32]),
    ("depthwise_conv2d_nchw", [T + ((1, 2, 6, 9), F32), T + ((2, 1, 3, 3), F32), (1, 1),
                               (1, 1, 1, 1), (1, 1), 2, "NCHW", F32]),
    ("conv2d_nchwc", [T + ((1, 2, 5, 6, 2), F32), T + ((1, 2, 3, 3, 2, 4), F32), (1, 1),
                      (1, 1, 1, 1), (1, 1), 1, "NCHW2c", F32]),
]


def _template_reference(name, args, arrays):
    a, b = arrays
    if name == "matmul":
        return (a.T if args[2] else a) @ (b.T if args[3] else b)
    if name == "dense":
        return a @ b.T
    if name == "batch_matmul":
        return a @ b
    stride, pads, dilation, groups, layout = args[2:7]
    if layout == "NCHW":
        return conv_ref(a, b, stride, pads, dilation, groups)
    c = int(layout[4:-1])
    n, cb, h, w, _ = a.shape
    ob, ib, kh, kw, i, o = b.shape
    x = a.transpose(0, 1, 4, 2, 3).reshape(n, cb * c, h, w)
    wt = b.transpose(0, 5, 1, 4, 2, 3).reshape(ob * o, ib * i, kh, kw)
    return to_nchwc(conv_ref(x, wt, stride, pads, dilation, groups).astype(F32), o)


@pytest.mark.parametrize("name, args", TEMPLATE_CASES,
                         ids=[f"{c[0]}-{n}" for n, c in enumerate(TEMPLATE_CASES)])
def test_random_configs_compute_the_same(name, args):
    """Seeded random points of the template's space, on the python target."""
    task = create_task(name, args)
    space = task.config_space
    assert len(space) > 1
    pick = random.Random(f"{name}{args}")
    indices = {space.default_index} | {pick.randrange(len(space)) for _ in range(3)}
    rng = np.random.default_rng(0)
    for index in sorted(indices):
        s, tensors = task.instantiate(space.get(index))
        arrays = [random_array(rng, tuple(int(d) for d in t.shape)) for t in tensors[:2]]
        got = run_python(s, tensors, arrays)[0]
        want = _template_reference(name, args, arrays)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4,
                                   err_msg=f"{name} at {space.get(index)}")


def test_a_tuned_config_reaches_schedule_for():
    """``schedule_for`` under a dispatch context uses the given point of the space."""
    X = te.placeholder((4, 8), name="X")
    W = te.placeholder((12, 8), name="W")
    Y = ops.dense(X, W)
    task = create_task(*_split(Y.op.attrs["workload"]))
    space = task.config_space
    knobs = space.default_config().to_json()
    knobs.update(tile_x=[-1, 4], pack_b="none")
    with apply_config(space.from_json(knobs)):
        s = schedule_for(Y, "cpu")
    assert "W.global" not in allocations(lower(s, [X, W, Y]))
    assert any(st.kind == "split" and st.args.get("factor") == 4 for st in s.steps)


def _split(workload):
    return workload[0], workload[1:]


@pytest.mark.slow
@pytest.mark.parametrize("name, args", TEMPLATE_CASES[::2],
                         ids=[f"{c[0]}-{n}" for n, c in enumerate(TEMPLATE_CASES[::2])])
def test_random_config_on_cpu(name, args):
    """One random point per template, built by numba (register tiles, guards, unrolling)."""
    task = create_task(name, args)
    space = task.config_space
    index = random.Random(name).randrange(len(space))
    s, tensors = task.instantiate(space.get(index))
    rng = np.random.default_rng(1)
    arrays = [random_array(rng, tuple(int(d) for d in t.shape)) for t in tensors[:2]]
    got = run(s, tensors, arrays, target="cpu")[0]
    np.testing.assert_allclose(got, _template_reference(name, args, arrays), rtol=1e-4,
                               atol=1e-4, err_msg=f"{name} at {space.get(index)}")

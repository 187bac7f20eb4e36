"""The CUDA op schedules (schedules/cuda) in numba's CUDA simulator, against numpy.

Each template runs at a small config (few threads: the simulator runs each CUDA thread as a
Python thread) on shapes its tiles do not divide.
"""

import random
import re

import numpy as np
import pytest
from conftest import random_array
from cuda_sim import rerun, simulator  # noqa: F401 - simulator is an autouse fixture

import te
from runtime import build
from schedules import (
    ApplyConfig,
    ConfigSpace,
    create_schedule,
    replay,
    schedule_for,
    steps_from_json,
    steps_to_json,
)
from schedules.auto import anchor_op
from schedules.cuda import schedule_generic, schedule_injective
from schedules.registry import op_schedule

test_in_subprocess = rerun(__file__)


def configured(outs, **knobs):
    """The op schedule of ``outs``' anchor on cuda at its default config with ``knobs``
    changed; returns the schedule and the config space."""
    anchor = anchor_op(outs, "cuda")
    func = op_schedule(te.ops.tags.anchor_name(anchor.tag), "cuda")
    space = ConfigSpace()
    func(space, create_schedule([o.op for o in outs]), outs, anchor)
    cfg = space.from_json({**space.default_config().to_json(), **knobs})
    s = create_schedule([o.op for o in outs])
    func(cfg, s, outs, anchor)
    return s, space


def check(outs, inputs, arrays, expected, tol=1e-4, **knobs):
    outs = outs if isinstance(outs, list) else [outs]
    s, space = configured(outs, **knobs)
    f = build(s, inputs + outs, target="cuda")
    got = np.zeros([int(d.value) for d in outs[0].shape], outs[0].dtype)
    f(*arrays, got)
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    return f, space


# --- matrix products --------------------------------------------------------------------------

def test_matmul_shared_tiles_and_register_tiles(rng):
    A, B = te.placeholder((20, 12), name="A"), te.placeholder((12, 24), name="B")
    a, b = random_array(rng, (20, 12)), random_array(rng, (12, 24))
    f, space = check(te.ops.matmul(A, B), [A, B], [a, b], a @ b,
                     tile_y=[-1, 4, 2], tile_x=[-1, 4, 2], tile_k=[-1, 4])
    assert set(space.space_map) == {"tile_y", "tile_x", "tile_k", "unroll_k", "double_buffer"}
    assert f.source.count("cuda.shared.array") == 2
    assert f.build_info["kernels"][0]["register_tiles"] == ["matmul.local", "A.shared.local",
                                                            "B.shared.local"]


def test_matmul_with_transposed_operands_and_double_buffering(rng):
    A, B = te.placeholder((9, 6), name="A"), te.placeholder((10, 9), name="B")
    a, b = random_array(rng, (9, 6)), random_array(rng, (10, 9))
    f, _ = check(te.ops.matmul(A, B, transpose_a=True, transpose_b=True), [A, B], [a, b],
                 a.T @ b.T, tile_y=[-1, 2, 2], tile_x=[-1, 4, 1], tile_k=[-1, 4],
                 double_buffer=True, unroll_k=False)
    assert "cuda.shared.array((2, 4, 4), np.float32)" in f.source


def test_dense_with_bias_epilogue(rng):
    X, W = te.placeholder((6, 12), name="X"), te.placeholder((10, 12), name="W")
    bias = te.placeholder((10,), name="bias")
    x, w, b = random_array(rng, (6, 12)), random_array(rng, (10, 12)), random_array(rng, 10)
    out = te.ops.relu(te.ops.dense(X, W, bias))
    f, _ = check(out, [X, W, bias], [x, w, b], np.maximum(x @ w.T + b, 0),
                 tile_y=[-1, 2, 2], tile_x=[-1, 4, 2], tile_k=[-1, 4])
    assert len(f.plan.kernels) == 1  # the epilogue is fused


def test_batch_matmul_binds_the_batch_to_blockIdx_z(rng):
    A, B = te.placeholder((2, 5, 7), name="A"), te.placeholder((2, 7, 6), name="B")
    a, b = random_array(rng, (2, 5, 7)), random_array(rng, (2, 7, 6))
    f, _ = check(te.ops.batch_matmul(A, B), [A, B], [a, b], a @ b,
                 tile_y=[-1, 2, 2], tile_x=[-1, 2, 2], tile_k=[-1, 4])
    assert [str(g) for g in f.plan.kernels[0].grid] == ["2", "2", "2"]


# --- convolutions and pools -------------------------------------------------------------------

def conv_ref(x, w, pad, stride=1, groups=1, dilation=1):
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * pad - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, oh, ow), np.float32)
    for oc in range(o):
        g = oc // (o // groups)
        for r in range(cg):
            for dy in range(kh):
                for dx in range(kw):
                    y0, x0 = dy * dilation, dx * dilation
                    win = xp[:, g * cg + r, y0:y0 + stride * oh:stride, x0:x0 + stride * ow:stride]
                    out[:, oc] += w[oc, r, dy, dx] * win
    return out


def test_conv2d_direct_with_shared_input_and_weight_tiles(rng):
    X, W = te.placeholder((1, 4, 7, 7), name="data"), te.placeholder((6, 4, 3, 3), name="w")
    x, w = random_array(rng, (1, 4, 7, 7)), random_array(rng, (6, 4, 3, 3))
    f, space = check(te.ops.conv2d(X, W, 1, 1), [X, W], [x, w], conv_ref(x, w, 1),
                     tile_f=[-1, 2, 2], tile_y=[-1, 2, 2], tile_x=[-1, 4, 1], tile_rc=[-1, 2],
                     tile_ry=[-1, 3], tile_rx=[-1, 1])
    assert {"tile_f", "tile_y", "tile_x", "tile_rc", "tile_ry", "tile_rx"} <= set(space.space_map)
    assert f.source.count("cuda.shared.array") == 2


IMPLICIT = {"algorithm": "implicit_gemm"}


def implicit_case(data, weight, stride=1, pad=0, dilation=1, epilogue=True, **knobs):
    return pytest.param(data, weight, stride, pad, dilation, epilogue, knobs)


@pytest.mark.parametrize("data, weight, stride, pad, dilation, epilogue, knobs", [
    # 3x3 pad 1; no tile divides 5 channels, 49 positions or K = 27
    implicit_case((1, 3, 7, 7), (5, 3, 3, 3), pad=1, tile_n=[-1, 2, 2], tile_m=[-1, 8, 2],
                  tile_k=[-1, 4]),
    # the same without an epilogue: the convolution's own stage writes the output
    implicit_case((1, 3, 7, 7), (5, 3, 3, 3), pad=1, epilogue=False, tile_n=[-1, 2, 2],
                  tile_m=[-1, 8, 2], tile_k=[-1, 4]),
    # strided, two images in M (72 positions), double buffered, k loop not unrolled
    implicit_case((2, 2, 13, 13), (3, 2, 3, 3), stride=2, tile_n=[-1, 1, 2],
                  tile_m=[-1, 8, 4], tile_k=[-1, 8], double_buffer=True, unroll_k=False),
    # dilated and padded, two images (M = 2 * 7 * 6, M tiles cross from one image to the next)
    implicit_case((2, 3, 7, 6), (5, 3, 3, 3), pad=2, dilation=2, epilogue=False,
                  tile_n=[-1, 2, 2], tile_m=[-1, 8, 2], tile_k=[-1, 8]),
    # strided, padded and dilated at once: 6 channels, 20 positions, K = 45
    implicit_case((1, 5, 11, 9), (6, 5, 3, 3), stride=2, pad=1, dilation=2,
                  tile_n=[-1, 2, 2], tile_m=[-1, 4, 2], tile_k=[-1, 8]),
    # 1x1 (K = in_channels)
    implicit_case((1, 6, 5, 5), (4, 6, 1, 1), tile_n=[-1, 2, 1], tile_m=[-1, 4, 4],
                  tile_k=[-1, 4]),
    # one input channel (no rc axis), 13 rows
    implicit_case((1, 1, 13, 7), (2, 1, 3, 3), pad=1, tile_n=[-1, 2, 1], tile_m=[-1, 16, 2],
                  tile_k=[-1, 2]),
])
def test_conv2d_implicit_gemm(rng, data, weight, stride, pad, dilation, epilogue, knobs):
    X, W = te.placeholder(data, name="data"), te.placeholder(weight, name="w")
    x, w = random_array(rng, data), random_array(rng, weight)
    out = te.ops.conv2d(X, W, stride, pad, dilation)
    want = conv_ref(x, w, pad, stride, dilation=dilation)
    inputs, arrays = [X, W], [x, w]
    if epilogue:
        bias = te.placeholder((weight[0], 1, 1), name="bias")
        b = random_array(rng, bias.shape)
        out = te.ops.relu(te.ops.add(out, bias))
        want = np.maximum(want + b, 0)
        inputs, arrays = inputs + [bias], arrays + [b]
    f, _ = check(out, inputs, arrays, want, **IMPLICIT, **knobs)
    (kernel,) = f.plan.kernels  # the epilogue is fused
    # GEMM-shaped tiles: the weight [N tile, K chunk] and im2col [K chunk, M tile] tiles in
    # shared memory (a leading 2 when double buffered), an N x M register tile per thread; a
    # block of tile_m x tile_n threads per (M tile, N tile).
    (_, tn, rn), (_, tm, rm), (_, kc) = knobs["tile_n"], knobs["tile_m"], knobs["tile_k"]
    copies = 2 if knobs.get("double_buffer") else 1
    shapes = {b.name: tuple(int(d.value) for d in b.shape)
              for b in list(kernel.allocs) + list(kernel.tiles.values())}
    im2col = "conv2d_pad.shared" if pad else "data.shared"
    assert {n for n in shapes if n.endswith(".shared")} == {"w.shared", im2col}
    lead = (2,) if copies == 2 else ()
    assert shapes["w.shared"] == lead + (tn * rn, kc)
    assert shapes[im2col] == lead + (kc, tm * rm)
    assert shapes["conv2d_nchw.local"] == (rn, rm)
    assert kernel.shared_bytes == f.build_info["kernels"][0]["shared_bytes"] \
        == 4 * copies * (tn * rn + tm * rm) * kc
    n_out, m_out = want.shape[1], want.shape[0] * want.shape[2] * want.shape[3]
    assert tuple(kernel.block) == (tm, tn, 1)
    assert [str(g) for g in kernel.grid] == [str(-(-m_out // (tm * rm))),
                                             str(-(-n_out // (tn * rn))), "1"]


def test_conv2d_implicit_gemm_random_config_points(rng):
    X, W = te.placeholder((1, 3, 6, 6), name="data"), te.placeholder((4, 3, 3, 3), name="w")
    x, w = random_array(rng, (1, 3, 6, 6)), random_array(rng, (4, 3, 3, 3))
    out = te.ops.conv2d(X, W, 1, 1)
    _, space = configured([out])
    assert next(iter(space.space_map)) == "algorithm"
    pick, points = random.Random(0), []
    while len(points) < 3:  # small blocks: the simulator runs a thread per Python thread
        knobs = space.get(space.sample(pick)).to_json()
        if knobs["tile_n"][1] * knobs["tile_m"][1] <= 64:
            points.append({**knobs, **IMPLICIT})
    for knobs in points:
        check(out, [X, W], [x, w], conv_ref(x, w, 1), **knobs)


def test_conv2d_implicit_gemm_replays_and_grouped_conv_is_direct_only():
    X, W = te.placeholder((1, 4, 6, 6), name="data"), te.placeholder((4, 4, 3, 3), name="w")
    out = te.ops.conv2d(X, W, 1, 1)
    s, _ = configured([out], **IMPLICIT, tile_n=[-1, 2, 2], tile_m=[-1, 4, 2])
    again = replay([out], steps_from_json(steps_to_json(s.steps)))
    assert build(again, [X, W, out], target="cuda").source == \
        build(s, [X, W, out], target="cuda").source
    G = te.placeholder((4, 2, 3, 3), name="g")
    _, space = configured([te.ops.conv2d(X, G, 1, 1, groups=2)])
    assert len(space.space_map["algorithm"]) == 1  # direct only
    assert "tile_m" not in space.space_map


def test_depthwise_conv2d_with_stride(rng):
    X, W = te.placeholder((1, 4, 7, 7), name="data"), te.placeholder((4, 1, 3, 3), name="w")
    x, w = random_array(rng, (1, 4, 7, 7)), random_array(rng, (4, 1, 3, 3))
    check(te.ops.conv2d(X, W, 2, 1, groups=4), [X, W], [x, w], conv_ref(x, w, 1, 2, 4),
          threads=32)


def pool_ref(x, k, s, p, fn, fill):
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    oh = (x.shape[2] + 2 * p - k) // s + 1
    taps = [xp[:, :, dy:dy + s * oh:s, dx:dx + s * oh:s] for dy in range(k) for dx in range(k)]
    return fn(np.stack(taps), axis=0)


@pytest.mark.parametrize("kind", ["max", "avg", "global"])
def test_pools(rng, kind):
    X = te.placeholder((1, 3, 7, 7), name="data")
    x = random_array(rng, (1, 3, 7, 7))
    if kind == "max":
        out, ref = te.ops.max_pool2d(X, 3, 2, 1), pool_ref(x, 3, 2, 1, np.max, -np.inf)
    elif kind == "avg":
        out, ref = te.ops.avg_pool2d(X, 2, 2, 0), pool_ref(x, 2, 2, 0, np.mean, 0)
    else:
        out, ref = te.ops.global_avg_pool2d(X), x.mean((2, 3), keepdims=True)
    check(out, [X], [x], ref, threads=32)


# --- row normalizations -----------------------------------------------------------------------

@pytest.mark.parametrize("rows, cache_row", [(1, False), (2, True)])
def test_softmax_block_reductions(rng, rows, cache_row):
    X = te.placeholder((5, 40), name="x")
    x = random_array(rng, (5, 40))
    e = np.exp(x - x.max(1, keepdims=True))
    f, _ = check(te.ops.softmax(X), [X], [x], e / e.sum(1, keepdims=True), threads=32,
                 rows=rows, cache_row=cache_row)
    assert len(f.plan.kernels) == 1
    assert f.plan.kernels[0].block == (32, rows, 1)
    # With the rows cached in shared memory, x is read from global memory once.
    assert len(re.findall(r"\bx\[", f.source)) == (1 if cache_row else 3)


def test_log_softmax(rng):
    X = te.placeholder((3, 33), name="x")
    x = random_array(rng, (3, 33))
    m = x.max(1, keepdims=True)
    check(te.ops.log_softmax(X), [X], [x], x - m - np.log(np.exp(x - m).sum(1, keepdims=True)),
          threads=32, rows=1)


def test_layer_norm_over_the_last_two_axes(rng):
    X = te.placeholder((3, 4, 10), name="x")
    g, b = te.placeholder((4, 10), name="g"), te.placeholder((4, 10), name="b")
    x = random_array(rng, (3, 4, 10))
    gv, bv = random_array(rng, (4, 10)), random_array(rng, (4, 10))
    mu, var = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
    check(te.ops.layer_norm(X, g, b, axis=1), [X, g, b], [x, gv, bv],
          (x - mu) / np.sqrt(var + 1e-5) * gv + bv, threads=32, rows=2)


# --- fused elementwise, generic, schedule_for -------------------------------------------------

def test_fused_elementwise_chain_is_one_kernel(rng):
    X = te.placeholder((2, 3, 5), name="x")
    scale, bias = te.placeholder((3, 1), name="scale"), te.placeholder((3, 1), name="bias")
    out = te.ops.relu(te.ops.add(te.ops.multiply(X, scale), bias))
    s = schedule_injective(create_schedule(out.op), [out], num_threads=16)
    f = build(s, [X, scale, bias, out], target="cuda")
    x, sc, b = random_array(rng, (2, 3, 5)), random_array(rng, (3, 1)), random_array(rng, (3, 1))
    got = np.zeros((2, 3, 5), "float32")
    f(x, sc, b, got)
    np.testing.assert_allclose(got, np.maximum(x * sc + b, 0), rtol=1e-6)
    assert len(f.plan.kernels) == 1 and f.plan.kernels[0].block == (16, 1, 1)


def test_generic_schedule_binds_reductions(rng):
    X = te.placeholder((3, 300), name="x")
    out = te.ops.multiply(te.ops.reduce_sum(X, axis=1), te.const(2.0, "float32"))
    s = create_schedule(out.op)
    schedule_generic(s, [out], num_threads=32)
    f = build(s, [X, out], target="cuda")
    x = random_array(rng, (3, 300))
    got = np.zeros(3, "float32")
    f(x, got)
    np.testing.assert_allclose(got, x.sum(1) * 2, rtol=1e-4, atol=1e-4)


def test_schedule_for_uses_the_cuda_op_schedule_and_a_given_config(rng):
    X = te.placeholder((4, 24), name="x")
    out = te.ops.softmax(X)
    with ApplyConfig({"threads": 32, "rows": 2, "cache_row": True}):
        s = schedule_for(out, "cuda")
    f = build(s, [X, out], target="cuda")
    x = random_array(rng, (4, 24))
    got = np.zeros((4, 24), "float32")
    f(x, got)
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert f.plan.kernels[0].block == (32, 2, 1)


def test_schedule_for_binds_graphs_without_an_anchor_on_cuda(rng):
    # No op schedule claims these stages: schedule_for must still bind them to threads.
    X, Y = te.placeholder((4, 40), name="x"), te.placeholder((40,), name="y")
    out = te.ops.reduce_sum(te.ops.exp(te.ops.add(X, Y)), axis=1)
    f = build(schedule_for(out, "cuda"), [X, Y, out], target="cuda")
    x, y = random_array(rng, (4, 40)), random_array(rng, (40,))
    got = np.zeros(4, "float32")
    f(x, y, got)
    np.testing.assert_allclose(got, np.exp(x + y).sum(1), rtol=1e-5)

"""te.ops matrix products, convolutions, layout transforms and pools against numpy / ONNX, on
the python target with tiny shapes (each case is at most a few thousand inner iterations) and
on the cpu target (default schedules, several cases per kernel)."""

import numpy as np
import pytest
from ops_check import (
    OpCase,
    by_id,
    check,
    check_group,
    cpu_groups,
    f32,
    ints,
    onnx_ref,
    ort_ref,
    params,
)

from te import ops


def _conv_ref(stride=1, padding=0, dilation=1, groups=1):
    s = [stride] * 2 if isinstance(stride, int) else list(stride)
    d = [dilation] * 2 if isinstance(dilation, int) else list(dilation)
    p = padding if not isinstance(padding, int) else (padding,) * 4
    p = tuple(p) * 2 if len(p) == 2 else tuple(p)  # (top, left, bottom, right) is ONNX's order
    return onnx_ref("Conv", strides=s, pads=list(p), dilations=d, group=groups)


def _conv_case(name, data, weight, **kw):
    return OpCase(f"conv2d_{name}", lambda x, w: ops.conv2d(x, w, **kw), _conv_ref(**kw),
                  [f32(*data), f32(*weight)], rtol=1e-4, atol=1e-4)


def _blocked_conv(c_blk, i_blk, o_blk, out_channels, **kw):
    """NCHW -> NCHW{c}c, OIHW -> OIHW{i}i{o}o, conv2d in NCHW{c}c, back to NCHW."""
    def op(x, w):
        xc = ops.layout_transform(x, "NCHW", f"NCHW{c_blk}c")
        wc = ops.layout_transform(w, "OIHW", f"OIHW{i_blk}i{o_blk}o")
        y = ops.conv2d(xc, wc, layout=f"NCHW{c_blk}c", **kw)
        y = ops.layout_transform(y, f"NCHW{o_blk}c", "NCHW")
        return ops.slice(y, [0], [out_channels], [1]) if y.shape[1] != out_channels else y
    return op


def _blocked_case(name, data, weight, c_blk, i_blk, o_blk, **kw):
    return OpCase(f"conv2d_nchwc_{name}", _blocked_conv(c_blk, i_blk, o_blk, weight[0], **kw),
                  _conv_ref(**kw), [f32(*data), f32(*weight)], rtol=1e-4, atol=1e-4)


MATMUL = [
    OpCase("matmul", ops.matmul, np.matmul, [f32(3, 5), f32(5, 7)], rtol=1e-4),
    OpCase("matmul_transpose_a", lambda a, b: ops.matmul(a, b, transpose_a=True),
           lambda a, b: a.T @ b, [f32(5, 3), f32(5, 1)], rtol=1e-4),
    OpCase("matmul_transpose_b", lambda a, b: ops.matmul(a, b, transpose_b=True),
           lambda a, b: a @ b.T, [f32(1, 7), f32(3, 7)], rtol=1e-4),
    OpCase("matmul_transpose_both", lambda a, b: ops.matmul(a, b, True, True),
           lambda a, b: a.T @ b.T, [f32(4, 3), f32(7, 4)], rtol=1e-4),
    OpCase("matmul_int", ops.matmul, lambda a, b: (a @ b).astype("int32"),
           [ints(3, 4), ints(4, 2)]),
    OpCase("matmul_int32_accumulate", lambda a, b: ops.matmul(
        ops.cast(a, "int8"), ops.cast(b, "int8"), out_dtype="int32"), np.matmul,
        [ints(3, 4, lo=-100, hi=100), ints(4, 2, lo=-100, hi=100)]),
    OpCase("dense", ops.dense, lambda x, w: x @ w.T, [f32(3, 5), f32(7, 5)], rtol=1e-4),
    OpCase("dense_bias", ops.dense, onnx_ref("Gemm", transB=1),
           [f32(2, 13), f32(3, 13), f32(3)], rtol=1e-4),
    OpCase("batch_matmul", ops.batch_matmul, np.matmul, [f32(2, 3, 4), f32(2, 4, 5)],
           rtol=1e-4),
    OpCase("batch_matmul_broadcast", ops.batch_matmul, onnx_ref("MatMul"),
           [f32(2, 1, 3, 4), f32(3, 4, 5)], rtol=1e-4),
    OpCase("batch_matmul_2d_rhs", ops.batch_matmul, np.matmul, [f32(2, 3, 4), f32(4, 1)],
           rtol=1e-4),
    OpCase("batch_matmul_transpose", lambda a, b: ops.batch_matmul(a, b, True, True),
           lambda a, b: np.swapaxes(a, -1, -2) @ np.swapaxes(b, -1, -2),
           [f32(1, 4, 3), f32(3, 5, 4)], rtol=1e-4),
]

CONV = [
    _conv_case("basic", (1, 4, 7, 7), (4, 4, 3, 3)),
    _conv_case("pad_stride", (1, 3, 7, 7), (4, 3, 3, 3), stride=2, padding=1),
    _conv_case("asymmetric_pad", (1, 2, 7, 5), (3, 2, 3, 3), padding=(1, 0, 2, 1)),
    _conv_case("pad_hw_stride_hw", (1, 2, 7, 7), (2, 2, 3, 2), stride=(2, 1), padding=(0, 1)),
    _conv_case("dilation", (1, 2, 7, 7), (3, 2, 3, 3), dilation=2, padding=2),
    _conv_case("dilation_hw", (1, 1, 13, 7), (2, 1, 3, 2), dilation=(3, 2), stride=(2, 1)),
    _conv_case("grouped", (1, 4, 5, 5), (6, 2, 3, 3), groups=2, padding=1),
    _conv_case("depthwise", (1, 3, 7, 7), (3, 1, 3, 3), groups=3, padding=1),
    _conv_case("depthwise_multiplier", (1, 3, 5, 5), (6, 1, 3, 3), groups=3, stride=2),
    _conv_case("pointwise_batch2", (2, 3, 5, 5), (4, 3, 1, 1)),
    _conv_case("single_channel", (1, 1, 13, 1), (2, 1, 3, 1), padding=(1, 0)),
    _blocked_case("direct", (1, 4, 7, 7), (4, 4, 3, 3), 2, 2, 4, padding=1),
    _blocked_case("padded_channels", (1, 3, 5, 5), (6, 3, 3, 3), 4, 4, 4, stride=2),
    _blocked_case("weight_block_differs", (1, 4, 5, 5), (2, 4, 3, 3), 4, 2, 2, dilation=2,
                  padding=(2, 1, 0, 1)),
    _blocked_case("grouped", (1, 4, 5, 5), (4, 2, 3, 3), 2, 2, 2, groups=2, padding=1),
]


def _pool_attrs(kernel, stride=1, padding=0, dilation=1, ceil_mode=False, **extra):
    p = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
    p = p * 2 if len(p) == 2 else p
    attrs = dict(kernel_shape=list(kernel), strides=[stride] * 2 if isinstance(stride, int)
                 else list(stride), pads=list(p), ceil_mode=int(ceil_mode))
    if dilation != 1:
        attrs["dilations"] = [dilation] * 2
    attrs.update(extra)
    return attrs


def _max_pool_case(name, shape, kernel, oracle=onnx_ref, **kw):
    return OpCase(f"max_pool2d_{name}", lambda x: ops.max_pool2d(x, kernel, **kw),
                  oracle("MaxPool", **_pool_attrs(kernel, **kw)), [f32(*shape)])


def _avg_pool_case(name, shape, kernel, oracle=onnx_ref, count_include_pad=False, **kw):
    return OpCase(f"avg_pool2d_{name}{'_incl' if count_include_pad else ''}",
                  lambda x: ops.avg_pool2d(x, kernel, count_include_pad=count_include_pad,
                                           **kw),
                  oracle("AveragePool", **_pool_attrs(
                      kernel, count_include_pad=int(count_include_pad), **kw)),
                  [f32(*shape)], rtol=1e-5, atol=1e-6)


def _lrn(x, size, alpha=1e-4, beta=0.75, bias=1.0):
    """ONNX LRN as its specification reads."""
    square_sum = np.zeros_like(x)
    for c in range(x.shape[1]):
        lo, hi = max(0, c - (size - 1) // 2), min(x.shape[1], c + -(-(size - 1) // 2) + 1)
        square_sum[:, c] = (x[:, lo:hi] ** 2).sum(1)
    return x / (bias + alpha / size * square_sum) ** beta


def _to_blocked(x, c):
    n, ch, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, ch // c, c, h, w).transpose(0, 1, 3, 4, 2))


POOL = [
    _max_pool_case("2x2_s2", (1, 2, 7, 7), (2, 2), stride=2),
    _max_pool_case("3x3_s2_p1_ceil", (1, 1, 8, 8), (3, 3), stride=2, padding=1, ceil_mode=True),
    # ceil_mode's last window would start in the bottom/right padding: dropped
    _max_pool_case("ceil_drop_last", (1, 1, 5, 5), (2, 2), stride=2, padding=1, ceil_mode=True),
    _max_pool_case("ceil_odd", (1, 2, 7, 5), (2, 2), stride=2, ceil_mode=True),
    _max_pool_case("ceil_s3_ort", (1, 1, 7, 8), (2, 2), oracle=ort_ref, stride=3,
                   ceil_mode=True),
    # onnx's reference MaxPool fails on this one (an empty window): onnxruntime instead
    _max_pool_case("asym_pad", (1, 1, 5, 7), (3, 2), oracle=ort_ref, padding=(1, 0, 2, 1)),
    _max_pool_case("dilation", (1, 1, 7, 7), (2, 2), dilation=2, padding=1),
    _avg_pool_case("2x2_s2", (1, 2, 7, 7), (2, 2), stride=2),
    _avg_pool_case("pad", (1, 1, 5, 5), (3, 3), padding=1),
    _avg_pool_case("pad", (1, 1, 5, 5), (3, 3), padding=1, count_include_pad=True),
    _avg_pool_case("ceil", (1, 1, 8, 7), (3, 3), stride=2, padding=1, ceil_mode=True),
    _avg_pool_case("ceil", (1, 1, 8, 7), (3, 3), stride=2, padding=1, ceil_mode=True,
                   count_include_pad=True),
    _avg_pool_case("ceil_drop_last", (1, 1, 5, 5), (2, 2), stride=2, padding=1,
                   ceil_mode=True, count_include_pad=True),
    _avg_pool_case("ceil_s3_ort", (1, 1, 7, 8), (2, 3), oracle=ort_ref, stride=3, padding=1,
                   ceil_mode=True, count_include_pad=True),
    _avg_pool_case("asym_pad", (1, 2, 5, 5), (2, 3), padding=(1, 0, 0, 2), stride=(1, 2)),
    _avg_pool_case("dilation", (1, 1, 7, 7), (2, 2), dilation=2, padding=1),
    OpCase("global_avg_pool2d", ops.global_avg_pool2d, onnx_ref("GlobalAveragePool"),
           [f32(2, 3, 5, 7)]),
    # onnx's reference LRN loops over the batch instead of the channels: onnxruntime (odd
    # sizes only) and a numpy transcription of the spec instead
    OpCase("lrn_odd", lambda x: ops.lrn(x, 3, alpha=0.1, beta=0.75, bias=2.0),
           ort_ref("LRN", size=3, alpha=0.1, beta=0.75, bias=2.0), [f32(1, 5, 3, 3)]),
    OpCase("lrn_odd_numpy", lambda x: ops.lrn(x, 5, alpha=0.1, beta=0.6, bias=2.0),
           lambda x: _lrn(x, 5, alpha=0.1, beta=0.6, bias=2.0), [f32(2, 7, 1, 2)]),
    OpCase("lrn_even", lambda x: ops.lrn(x, 4), lambda x: _lrn(x, 4), [f32(1, 7, 2, 2)]),
    OpCase("max_pool2d_nchw4c", lambda x: ops.max_pool2d(x, (3, 3), stride=2, padding=1,
                                                         layout="NCHW4c"),
           lambda x: _to_blocked(onnx_ref("MaxPool", **_pool_attrs(
               (3, 3), stride=2, padding=1))(
               np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3).reshape(1, 8, 5, 5))), 4),
           [f32(1, 2, 5, 5, 4)]),
    OpCase("global_avg_pool2d_nchw2c", lambda x: ops.global_avg_pool2d(x, layout="NCHW2c"),
           lambda x: x.mean((2, 3), keepdims=True), [f32(1, 2, 3, 5, 2)]),
]

LAYOUT = [
    OpCase("nchw_to_nchw4c", lambda x: ops.layout_transform(x, "NCHW", "NCHW4c"),
           lambda x: _to_blocked(x, 4), [f32(1, 8, 3, 2)]),
    OpCase("nchw_to_nchw4c_padded", lambda x: ops.layout_transform(x, "NCHW", "NCHW4c"),
           lambda x: _to_blocked(np.pad(x, ((0, 0), (0, 1), (0, 0), (0, 0))), 4),
           [f32(2, 3, 2, 2)]),
    OpCase("nchw8c_to_nchw", lambda x: ops.layout_transform(x, "NCHW8c", "NCHW"),
           lambda x: x.transpose(0, 1, 4, 2, 3).reshape(1, 16, 2, 3), [f32(1, 2, 2, 3, 8)]),
    OpCase("nchw4c_to_nchw2c", lambda x: ops.layout_transform(x, "NCHW4c", "NCHW2c"),
           lambda x: _to_blocked(x.transpose(0, 1, 4, 2, 3).reshape(1, 8, 3, 1), 2),
           [f32(1, 2, 3, 1, 4)]),
    OpCase("oihw_to_oihw2i4o", lambda w: ops.layout_transform(w, "OIHW", "OIHW2i4o"),
           lambda w: w.reshape(2, 4, 2, 2, 3, 3).transpose(0, 2, 4, 5, 3, 1),
           [f32(8, 4, 3, 3)]),
    OpCase("nchw_to_nhwc", lambda x: ops.layout_transform(x, "NCHW", "NHWC"),
           lambda x: x.transpose(0, 2, 3, 1), [f32(1, 3, 2, 5)]),
]


@pytest.mark.parametrize("case", params(MATMUL))
def test_matmul(case):
    check(case)


@pytest.mark.parametrize("case", params(CONV))
def test_conv2d(case):
    check(case)


@pytest.mark.parametrize("case", params(POOL))
def test_pool(case):
    check(case)


@pytest.mark.parametrize("case", params(LAYOUT))
def test_layout_transform(case):
    check(case)


@pytest.mark.parametrize("group", cpu_groups(POOL))
def test_pool_cpu(group):
    check_group(group, parallel=True)


@pytest.mark.parametrize("group", cpu_groups(MATMUL + CONV + LAYOUT))
def test_cpu(group):
    check_group(group)


def test_conv2d_padding_inlined():
    assert check(by_id(CONV, "conv2d_pad_stride"), inline=True) == ["conv2d_pad"]


def test_conv2d_nchwc_transforms_inlined():
    inlined = check(by_id(CONV, "conv2d_nchwc_grouped"), inline=True)
    assert inlined == ["layout_transform", "conv2d_pad", "layout_transform_1"]


def test_pool_padding_inlined():
    assert check(by_id(POOL, "max_pool2d_3x3_s2_p1_ceil"), inline=True) == ["max_pool2d_pad"]
    assert check(by_id(POOL, "avg_pool2d_ceil_incl"), inline=True) == ["avg_pool2d_pad"]


def test_dense_bias_inlined_into_relu():
    case = OpCase("relu_dense", lambda x, w, b: ops.relu(ops.dense(x, w, b)),
                  lambda x, w, b: np.maximum(x @ w.T + b, 0), [f32(2, 5), f32(3, 5), f32(3)],
                  rtol=1e-4)
    assert check(case, inline=True) == ["dense_bias"]

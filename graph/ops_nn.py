"""Converters of the neural-network ONNX ops: Conv, ConvTranspose, pooling, Gemm, MatMul,
Einsum, BatchNormalization, LayerNormalization, Softmax, LogSoftmax, LRN.

2-D NCHW convolutions and pools map to the library ops that have tuned schedules
(``conv2d``, ``max_pool2d``, ...); other ranks use the N-d ops of ``te.ops.extra``.
"""

from __future__ import annotations

import math

import te
from te import ops as O
from te.ops import tags

from .convert import converter

# -- windows ---------------------------------------------------------------------------------


def _ints(ctx, name: str, n: int, default: int) -> list:
    value = [int(v) for v in ctx.attr(name, [default] * n)]
    ctx.check(len(value) == n, f"{name} must have {n} entries, got {value}")
    return value


def _window(ctx, sizes, kernel):
    """(strides, dilations, pads before, pads after) from Conv/pool attributes, auto_pad
    included: SAME_* pads so that out = ceil(in / stride), the odd unit at the end (UPPER)
    or at the start (LOWER)."""
    n = len(sizes)
    strides = _ints(ctx, "strides", n, 1)
    dilations = _ints(ctx, "dilations", n, 1)
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        lo, hi = [], []
        for size, k, s, d in zip(sizes, kernel, strides, dilations):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small = total // 2
            lo.append(small if auto_pad == "SAME_UPPER" else total - small)
            hi.append(total - lo[-1])
        return strides, dilations, lo, hi
    if auto_pad == "VALID":
        return strides, dilations, [0] * n, [0] * n
    ctx.check(auto_pad == "NOTSET", f"auto_pad {auto_pad!r} is not one of NOTSET, SAME_UPPER, "
                                    "SAME_LOWER, VALID")
    pads = _ints(ctx, "pads", 2 * n, 0)
    return strides, dilations, pads[:n], pads[n:]


def _kernel(ctx, weight_shape=None, n=None) -> list:
    if weight_shape is not None:
        kernel = [int(k) for k in ctx.attr("kernel_shape", weight_shape[2:])]
        ctx.check(list(kernel) == list(weight_shape[2:]),
                  f"kernel_shape {kernel} differs from the weight's {list(weight_shape[2:])}")
        return kernel
    kernel = [int(k) for k in ctx.attr("kernel_shape")]
    ctx.check(len(kernel) == n, f"kernel_shape must have {n} entries, got {kernel}")
    return kernel


def _channel_bias(out: te.Tensor, bias: te.Tensor) -> te.Tensor:
    """``out + bias[c]`` along axis 1: the epilogue a schedule can fuse into the anchor."""
    return te.compute(out.shape, lambda *i: out[i] + bias[i[1]], name="bias_add",
                      tag=tags.BROADCAST, attrs={"op": "bias_add"})


@converter("Conv")
def _conv(ctx):
    x, w = ctx.input(0), ctx.input(1)
    xs, ws = ctx.type(0).shape, ctx.type(1).shape
    ctx.check(len(xs) >= 3, f"input must be [N, C, spatial...], got shape {xs}")
    kernel = _kernel(ctx, ws)
    strides, dilations, lo, hi = _window(ctx, xs[2:], kernel)
    group = int(ctx.attr("group", 1))
    if len(xs) == 4:
        out = O.conv2d(x, w, stride=strides, padding=(lo[0], lo[1], hi[0], hi[1]),
                       dilation=dilations, groups=group)
    else:
        out = O.conv_nd(x, w, strides, lo, hi, dilations, group)
    return _channel_bias(out, ctx.input(2)) if ctx.has_input(2) else out


@converter("ConvTranspose")
def _conv_transpose(ctx):
    x, w = ctx.input(0), ctx.input(1)
    xs, ws = ctx.type(0).shape, ctx.type(1).shape
    ctx.check(len(xs) >= 3, f"input must be [N, C, spatial...], got shape {xs}")
    n = len(xs) - 2
    kernel = _kernel(ctx, ws)
    strides = _ints(ctx, "strides", n, 1)
    dilations = _ints(ctx, "dilations", n, 1)
    extra = _ints(ctx, "output_padding", n, 0)
    group = int(ctx.attr("group", 1))
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    natural = [strides[a] * (xs[2 + a] - 1) + extra[a] + (kernel[a] - 1) * dilations[a] + 1
               for a in range(n)]
    want = ctx.attr("output_shape", None)
    if want is not None:
        want = [int(v) for v in want][-n:]
    if not ctx.has_attr("pads") and (want is not None or auto_pad in ("SAME_UPPER",
                                                                     "SAME_LOWER")):
        if want is None:
            want = [xs[2 + a] * strides[a] for a in range(n)]
        total = [natural[a] - want[a] for a in range(n)]
        if auto_pad == "SAME_UPPER":
            lo = [t // 2 for t in total]
        else:
            lo = [t - t // 2 for t in total]
        hi = [t - p for t, p in zip(total, lo)]
    else:
        pads = _ints(ctx, "pads", 2 * n, 0) if auto_pad != "VALID" else [0] * (2 * n)
        lo, hi = pads[:n], pads[n:]
        if want is not None:  # explicit pads and output_shape: the end absorbs the difference
            hi = [h - (want[a] - (natural[a] - lo[a] - h)) for a, h in enumerate(hi)]
    for a in range(n):  # negative end padding means extra output: output_padding holds it
        if hi[a] < 0:
            extra[a] -= hi[a]
            hi[a] = 0
    ctx.check(all(p >= 0 for p in lo), f"the padding {lo} at the start is negative")
    out = O.conv_transpose_nd(x, w, strides, lo, hi, dilations, group, extra)
    return _channel_bias(out, ctx.input(2)) if ctx.has_input(2) else out


def _pool_args(ctx):
    xs = ctx.type(0).shape
    ctx.check(len(xs) >= 3, f"input must be [N, C, spatial...], got shape {xs}")
    kernel = _kernel(ctx, n=len(xs) - 2)
    strides, dilations, lo, hi = _window(ctx, xs[2:], kernel)
    return xs, kernel, strides, dilations, lo, hi, bool(ctx.attr("ceil_mode", 0))


def _pads_fit(kernel, dilations, lo, hi) -> bool:
    """te's 2-D pools need padding smaller than the (dilated) window."""
    return all(p < (k - 1) * d + 1 for k, d, p in zip(kernel * 2, dilations * 2, lo + hi))


@converter("MaxPool")
def _max_pool(ctx):
    x = ctx.input(0)
    xs, kernel, strides, dilations, lo, hi, ceil = _pool_args(ctx)
    with_indices = ctx.wants_output(1)
    if len(xs) == 4 and not with_indices and _pads_fit(kernel, dilations, lo, hi):
        return O.max_pool2d(x, kernel, strides, (lo[0], lo[1], hi[0], hi[1]), dilations, ceil)
    out = O.max_pool_nd(x, kernel, strides, lo, hi, dilations, ceil, with_indices,
                        column_major=bool(ctx.attr("storage_order", 0)))
    return list(out) if with_indices else out


@converter("AveragePool")
def _avg_pool(ctx):
    x = ctx.input(0)
    xs, kernel, strides, dilations, lo, hi, ceil = _pool_args(ctx)
    include = bool(ctx.attr("count_include_pad", 0))
    if len(xs) == 4 and _pads_fit(kernel, dilations, lo, hi):
        return O.avg_pool2d(x, kernel, strides, (lo[0], lo[1], hi[0], hi[1]), dilations, ceil,
                            include)
    return O.avg_pool_nd(x, kernel, strides, lo, hi, dilations, ceil, include)


@converter("GlobalAveragePool")
def _global_avg_pool(ctx):
    x = ctx.input(0)
    if x.ndim == 4:
        return O.global_avg_pool2d(x)
    return O.reduce_mean(x, axis=tuple(range(2, x.ndim)), keepdims=True)


@converter("GlobalMaxPool")
def _global_max_pool(ctx):
    x = ctx.input(0)
    return O.reduce_max(x, axis=tuple(range(2, x.ndim)), keepdims=True)


@converter("LRN")
def _lrn(ctx):
    return O.lrn(ctx.input(0), int(ctx.attr("size")), float(ctx.attr("alpha", 1e-4)),
                 float(ctx.attr("beta", 0.75)), float(ctx.attr("bias", 1.0)))


# -- matrix products -------------------------------------------------------------------------


@converter("Gemm")
def _gemm(ctx):
    a, b = ctx.input(0), ctx.input(1)
    trans_a, trans_b = bool(ctx.attr("transA", 0)), bool(ctx.attr("transB", 0))
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    c = ctx.input(2) if ctx.has_input(2) else None
    if trans_b and not trans_a:  # X @ W.T: the "dense" anchor (TVM's and ONNX's usual form)
        if c is not None and c.ndim == 1 and alpha == 1.0 and beta == 1.0 \
                and ctx.type(2).shape[0] == ctx.type(1).shape[0] != 1:
            return O.dense(a, b, c)
        out = O.dense(a, b)
    else:
        out = O.matmul(a, b, transpose_a=trans_a, transpose_b=trans_b)
    if alpha != 1.0:
        out = O.multiply(out, alpha)
    if c is not None and beta != 0.0:
        out = O.add(out, O.multiply(c, beta) if beta != 1.0 else c)
    return out


@converter("MatMul")
def _matmul(ctx):
    a, b = ctx.input(0), ctx.input(1)
    squeeze = []
    if a.ndim == 1:
        a = O.unsqueeze(a, 0)
        squeeze.append(-2)
    if b.ndim == 1:
        b = O.unsqueeze(b, 1)
        squeeze.append(-1)
    if a.ndim == 2 and b.ndim == 2:
        out = O.matmul(a, b)
    elif b.ndim == 2:  # [..., M, K] @ [K, N]: one 2-D product over the flattened rows
        lead = [int(d) for d in a.shape[:-1]]
        k = int(a.shape[-1])
        flat = O.matmul(O.reshape(a, (math.prod(lead), k)), b)
        out = O.reshape(flat, (*lead, int(b.shape[1])))
    else:
        out = O.batch_matmul(a, b)
    if squeeze:
        out = O.squeeze(out, tuple(ax + out.ndim for ax in squeeze))
    return out


@converter("Einsum")
def _einsum(ctx):
    return O.einsum(ctx.attr("equation"), *ctx.inputs())


# -- normalizations --------------------------------------------------------------------------


@converter("BatchNormalization")
def _batch_norm(ctx):
    x, scale, bias, mean, var = (ctx.input(i) for i in range(5))
    eps = float(ctx.attr("epsilon", 1e-5))
    ctx.check(int(ctx.attr("spatial", 1)) == 1, "spatial=0 is not supported")
    training = bool(ctx.attr("training_mode", 0))
    if not training:
        return O.batch_norm_inference(x, mean, var, scale, bias, eps=eps, axis=1)
    # training mode: normalize with the batch statistics and update the running ones
    momentum = float(ctx.attr("momentum", 0.9))
    axes = tuple(a for a in range(x.ndim) if a != 1)
    batch_mean = O.reduce_mean(x, axis=axes)
    centered = O.subtract(x, O.reshape(batch_mean, [-1] + [1] * (x.ndim - 2)))
    batch_var = O.reduce_mean(O.multiply(centered, centered), axis=axes)
    y = O.batch_norm_inference(x, batch_mean, batch_var, scale, bias, eps=eps, axis=1)
    outs = [y]
    for k, (running, current) in enumerate(((mean, batch_mean), (var, batch_var)), 1):
        if ctx.wants_output(k):
            outs.append(O.add(O.multiply(running, momentum),
                              O.multiply(current, 1.0 - momentum)))
    return outs


@converter("LayerNormalization")
def _layer_norm(ctx):
    x = ctx.input(0)
    axis = int(ctx.attr("axis", -1))
    axis = axis + x.ndim if axis < 0 else axis
    eps = float(ctx.attr("epsilon", 1e-5))
    norm_shape = [int(d) for d in ctx.type(0).shape[axis:]]
    params = []
    for i in (1, 2):
        p = ctx.input(i) if ctx.has_input(i) else None
        params.append(p if p is None or [int(d) for d in p.shape] == norm_shape else "bcast")
    if "bcast" in params:  # parameters that only broadcast: apply them after normalizing
        y = O.layer_norm(x, axis=axis, eps=eps)
        y = O.multiply(y, ctx.input(1))
        y = O.add(y, ctx.input(2)) if ctx.has_input(2) else y
    else:
        y = O.layer_norm(x, params[0], params[1], axis=axis, eps=eps)
    outs = [y]
    if ctx.wants_output(1) or ctx.wants_output(2):
        axes = tuple(range(axis, x.ndim))
        mean = O.reduce_mean(x, axis=axes, keepdims=True)
        centered = O.subtract(x, mean)
        var = O.reduce_mean(O.multiply(centered, centered), axis=axes, keepdims=True)
        outs += [mean, O.rsqrt(O.add(var, eps))]
    return outs


def _softmax(fn):
    def convert(ctx):
        x = ctx.input(0)
        if ctx.opset >= 13:
            return fn(x, int(ctx.attr("axis", -1)))
        # before opset 13 the input is read as 2-D [prod(shape[:axis]), prod(shape[axis:])]
        axis = int(ctx.attr("axis", 1))
        axis = axis + x.ndim if axis < 0 else axis
        if axis >= x.ndim - 1:
            return fn(x, -1)
        shape = [int(d) for d in ctx.type(0).shape]
        flat = O.reshape(x, (math.prod(shape[:axis]), math.prod(shape[axis:])))
        return O.reshape(fn(flat, 1), shape)

    return convert


converter("Softmax")(_softmax(O.softmax))
converter("LogSoftmax")(_softmax(O.log_softmax))

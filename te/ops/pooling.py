"""Pooling with the semantics of ONNX MaxPool / AveragePool / GlobalAveragePool / LRN.

The pools work on axes 2 and 3 of an ``"NCHW"`` or channel-blocked ``"NCHW{c}c"`` tensor.
``padding`` is one int, (pad_h, pad_w) or (top, left, bottom, right); the padded input is a
separate "injective" stage that a schedule can inline.
"""

from __future__ import annotations

import re

from .. import dtypes
from ..expr import const, max_expr, min_expr
from ..intrin import all as all_of
from ..intrin import exp, log, power
from ..operation import reduce_axis
from ..reduction import max as max_reducer
from ..reduction import sum as sum_reducer
from . import tags
from ._util import (
    const_shape,
    fail,
    int_arg,
    int_tuple,
    normalize_axis,
    stage,
    tensor_arg,
    workload,
)
from .nn import pad2d, window_out
from .transform import pad_stage


def _check_layout(data, layout: str, op: str):
    tensor_arg(data, op, "data")
    if layout == "NCHW":
        ndim = 4
    elif isinstance(layout, str) and re.fullmatch(r"NCHW[1-9]\d*c", layout):
        ndim = 5
    else:
        fail(op, f"layout must be 'NCHW' or 'NCHW<c>c', got {layout!r}")
    if data.ndim != ndim:
        fail(op, f"data must be {ndim}-D for layout {layout!r}, got {data.ndim}-D")
    return const_shape(data, op, "data")


def _window(data, kernel, stride, padding, dilation, ceil_mode, layout, op):
    """The pooling geometry: (shape, kernel, strides, dilations, pads, output shape)."""
    shape = _check_layout(data, layout, op)
    kernel = int_tuple(kernel, 2, op, "kernel", 1)
    strides = int_tuple(stride, 2, op, "stride", 1)
    dilations = int_tuple(dilation, 2, op, "dilation", 1)
    pads = pad2d(padding, op)
    for axis, (k, d) in enumerate(zip(kernel, dilations)):
        span = (k - 1) * d + 1
        if pads[axis] >= span or pads[axis + 2] >= span:
            fail(op, f"padding {pads} must be smaller than the (dilated) kernel {span} along "
                     f"axis {axis + 2}")
    out_hw = [window_out(shape[2 + a], kernel[a], pads[a], pads[a + 2], strides[a],
                         dilations[a], op, ("height", "width")[a], bool(ceil_mode))
              for a in range(2)]
    return shape, kernel, strides, dilations, pads, out_hw


def _padded(data, shape, kernel, strides, dilations, pads, out_hw, value, op):
    """The input padded so that every window is in range (ceil_mode may need more than
    ``pads`` at the bottom/right)."""
    pairs = [(0, 0)] * data.ndim
    for a in range(2):
        span = (kernel[a] - 1) * dilations[a] + 1
        need = (out_hw[a] - 1) * strides[a] + span - shape[2 + a] - pads[a]
        pairs[2 + a] = (pads[a], max(pads[a + 2], need, 0))
    if not any(b or e for b, e in pairs):
        return data
    return pad_stage(data, pairs, "constant", value, op)


def _attrs(op, data, kernel, strides, dilations, pads, ceil_mode, layout, **extra):
    out = {"kernel": kernel, "stride": strides, "dilation": dilations, "padding": pads,
           "ceil_mode": bool(ceil_mode), "layout": layout}
    out.update(extra)
    out["workload"] = workload(op, data, kernel, strides, pads, dilations, bool(ceil_mode),
                               layout, *extra.values())
    return out


def _out_shape(shape, out_hw):
    return shape[:2] + tuple(out_hw) + shape[4:]


def _window_reduce(padded, out_shape, kernel, strides, dilations, reducer, op, tag,
                   **stage_kwargs):
    """The stage of shape ``out_shape`` that reduces (``reducer``) each (dilated) window of
    ``padded``; ``stage_kwargs`` (name, attrs) go to ``stage``."""
    ry, rx = reduce_axis((0, kernel[0]), name="ry"), reduce_axis((0, kernel[1]), name="rx")
    (sh, sw), (dh, dw) = strides, dilations

    def body(*i):
        (n, c, y, x), lane = i[:4], i[4:]
        return reducer(padded[(n, c, y * sh + ry * dh, x * sw + rx * dw) + lane], axis=[ry, rx])

    return stage(out_shape, body, op, tag, **stage_kwargs)


def max_pool2d(data, kernel, stride=1, padding=0, dilation=1, ceil_mode: bool = False,
               layout: str = "NCHW"):
    """The maximum over each (dilated) window; padding never wins."""
    op = "max_pool2d"
    shape, kernel, strides, dilations, pads, out_hw = _window(
        data, kernel, stride, padding, dilation, ceil_mode, layout, op)
    padded = _padded(data, shape, kernel, strides, dilations, pads, out_hw,
                     dtypes.min_value(data.dtype), op)
    return _window_reduce(padded, _out_shape(shape, out_hw), kernel, strides, dilations,
                          max_reducer, op, tags.anchor(op),
                          attrs=_attrs(op, data, kernel, strides, dilations, pads, ceil_mode,
                                       layout))


def _count(start, k: int, d: int, lo, hi):
    """How many of ``start + j * d`` (0 <= j < k) lie in ``[lo, hi)``."""
    first = max_expr((lo - start + d - 1) // d, 0)
    last = min_expr((hi - 1 - start) // d, k - 1)
    return max_expr(last - first + 1, 0)


def avg_pool2d(data, kernel, stride=1, padding=0, dilation=1, ceil_mode: bool = False,
               count_include_pad: bool = False, layout: str = "NCHW"):
    """The mean over each (dilated) window. The divisor counts the window's elements inside
    the input, or with ``count_include_pad`` inside the explicitly padded input (never the
    extra room ``ceil_mode`` adds), as ONNX AveragePool."""
    op = "avg_pool2d"
    shape, kernel, strides, dilations, pads, out_hw = _window(
        data, kernel, stride, padding, dilation, ceil_mode, layout, op)
    padded = _padded(data, shape, kernel, strides, dilations, pads, out_hw, 0, op)
    out_shape = _out_shape(shape, out_hw)
    total = _window_reduce(padded, out_shape, kernel, strides, dilations, sum_reducer, op,
                           tags.REDUCE, name="avg_pool2d_sum")
    (sh, sw), (dh, dw) = strides, dilations
    if count_include_pad:
        bounds = [(-pads[0], shape[2] + pads[2]), (-pads[1], shape[3] + pads[3])]
    else:
        bounds = [(0, shape[2]), (0, shape[3])]

    def body(*i):
        (n, c, y, x), lane = i[:4], i[4:]
        count_h = _count(y * sh - pads[0], kernel[0], dh, *bounds[0])
        count_w = _count(x * sw - pads[1], kernel[1], dw, *bounds[1])
        return total[(n, c, y, x) + lane] / (count_h * count_w).astype(data.dtype)

    return stage(out_shape, body, op, tags.anchor(op),
                 attrs=_attrs(op, data, kernel, strides, dilations, pads, ceil_mode, layout,
                              count_include_pad=bool(count_include_pad)))


def global_avg_pool2d(data, layout: str = "NCHW"):
    """The mean over the whole height and width; the output keeps them with size 1."""
    op = "global_avg_pool2d"
    shape = _check_layout(data, layout, op)
    ry, rx = reduce_axis((0, shape[2]), name="ry"), reduce_axis((0, shape[3]), name="rx")
    out_shape = shape[:2] + (1, 1) + shape[4:]
    total = stage(out_shape, lambda *i: sum_reducer(data[i[:2] + (ry, rx) + i[4:]],
                                                    axis=[ry, rx]),
                  op, tags.REDUCE, name=f"{op}_sum")
    area = shape[2] * shape[3]
    return stage(out_shape, lambda *i: total[i] / area, op, tags.anchor(op),
                 attrs={"layout": layout, "workload": workload(op, data, layout)})


def lrn(data, size: int, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0,
        axis: int = 1):
    """Local response normalization across channels (ONNX LRN):
    ``x / (bias + alpha / size * sum(x[c'] ** 2)) ** beta`` over the ``size`` channels around
    ``c`` (``(size - 1) // 2`` before it)."""
    op = "lrn"
    tensor_arg(data, op, "data")
    size = int_arg(size, op, "size", 1)
    axis = normalize_axis(axis, data.ndim, op)
    channels = data.shape[axis]
    r = reduce_axis((0, size), name="rc")
    before = (size - 1) // 2

    def square_sum(*i):
        ch = i[axis] - before + r
        v = data[i[:axis] + (ch,) + i[axis + 1:]]
        return sum_reducer(v * v, axis=r, where=all_of(ch >= 0, ch < channels))

    sq = stage(data.shape, square_sum, op, tags.REDUCE, name="lrn_square_sum")

    def body(*i):
        scale = const(bias, data.dtype) + (alpha / size) * sq[i]
        if dtypes.is_float(data.dtype):
            # scale ** -beta as exp(-beta * log(scale)): both have vectorizable forms on the
            # cpu target, a float power is a libm call per element (same value for scale > 0,
            # which bias > 0 and alpha >= 0 give).
            return data[i] * exp(log(scale) * const(-beta, data.dtype))
        return data[i] / power(scale, const(beta, data.dtype))

    return stage(data.shape, body, op, tags.anchor(op),
                 attrs={"size": size, "alpha": alpha, "beta": beta, "bias": bias,
                        "workload": workload(op, data, size, alpha, beta, bias, axis)})


__all__ = ["avg_pool2d", "global_avg_pool2d", "lrn", "max_pool2d"]

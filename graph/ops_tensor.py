"""Converters of the ONNX ops that move, pick or generate elements and of the reductions:
Reshape, Flatten, Transpose, Concat, Split, Slice, Gather, Squeeze, Unsqueeze, Expand, Pad,
Resize, Tile, Shape, Size, Constant, ConstantOfShape, Range, Reduce*, ArgMax, ArgMin.

Inputs that fix a shape (Reshape's shape, Slice's starts, ...) must be known at compile
time; they are declared as ``const_inputs`` so the importer folds what computes them.
"""

from __future__ import annotations

import math

import numpy as np

import te
from te import ops as O
from te.ops import tags

from .convert import converter, te_dtype


def constant_tensor(value: np.ndarray, name: str = "constant") -> te.Tensor:
    """A small constant as a stage (a select over its flat index); large constants are
    kernel arguments instead (graph initializers)."""
    value = np.asarray(value)
    if value.size > 64:
        raise te.TEValueError(f"{name}: a constant of {value.size} elements must be an "
                              "initializer, not a stage")
    dtype = te_dtype(value.dtype.name, name)
    flat = value.reshape(-1).tolist()
    shape = value.shape

    def body(*i):
        pos = 0
        for v, n in zip(i, shape):
            pos = pos * n + v
        out = te.const(flat[-1] if flat else 0, dtype)
        for k in reversed(range(len(flat) - 1)):
            out = te.if_then_else(pos == k, te.const(flat[k], dtype), out)
        return out

    return te.compute(shape, body, name=name, tag=tags.INJECTIVE, attrs={"op": "constant"})


@converter("Constant")
def _constant(ctx):
    from .onnx_import import constant_value

    return constant_tensor(constant_value(ctx.node))


@converter("Shape")
def _shape(ctx):
    shape = list(ctx.type(0).shape)
    start, end = int(ctx.attr("start", 0)), ctx.attr("end", None)
    return constant_tensor(np.array(shape[start:None if end is None else int(end)], np.int64))


@converter("Size")
def _size(ctx):
    return constant_tensor(np.array(math.prod(ctx.type(0).shape), np.int64))


@converter("ConstantOfShape", const_inputs=(0,))
def _constant_of_shape(ctx):
    value = ctx.attr("value", np.zeros(1, np.float32))
    value = np.asarray(value)
    return O.full(ctx.const_ints(0), value.reshape(-1)[0].item(),
                  te_dtype(value.dtype.name, "ConstantOfShape value"))


@converter("Range", const_inputs=(0, 1, 2))
def _range(ctx):
    start, limit, delta = (np.asarray(ctx.const(i)).reshape(()).item() for i in range(3))
    return O.arange(start, limit, delta, ctx.type(0).dtype)


@converter("Reshape", const_inputs=(1,))
def _reshape(ctx):
    x = ctx.input(0)
    shape = ctx.const_ints(1) if ctx.has_input(1) else [int(v) for v in ctx.attr("shape")]
    if not int(ctx.attr("allowzero", 0)):  # 0 copies the input's dimension
        in_shape = ctx.type(0).shape
        shape = [in_shape[k] if d == 0 else d for k, d in enumerate(shape)]
    return O.reshape(x, shape)


@converter("Flatten")
def _flatten(ctx):
    return O.flatten(ctx.input(0), int(ctx.attr("axis", 1)))


@converter("Transpose")
def _transpose(ctx):
    perm = ctx.attr("perm", None)
    return O.transpose(ctx.input(0), None if perm is None else [int(p) for p in perm])


@converter("Concat")
def _concat(ctx):
    return O.concat(ctx.inputs(), int(ctx.attr("axis")))


@converter("Split", const_inputs=(1,))
def _split(ctx):
    x = ctx.input(0)
    axis = int(ctx.attr("axis", 0))
    axis = axis + x.ndim if axis < 0 else axis
    n = ctx.type(0).shape[axis]
    if ctx.has_input(1):
        sizes = ctx.const_ints(1)
    elif ctx.has_attr("split"):
        sizes = [int(v) for v in ctx.attr("split")]
    else:  # equal parts; with num_outputs (opset 18) the last one may be smaller
        parts = int(ctx.attr("num_outputs", ctx.n_outputs))
        chunk = -(-n // parts)
        sizes = [chunk] * (parts - 1) + [n - chunk * (parts - 1)]
    ctx.check(sum(sizes) == n and all(s >= 0 for s in sizes),
              f"split sizes {sizes} do not add up to the axis length {n}")
    ctx.check(len(sizes) == ctx.n_outputs, f"{len(sizes)} parts for {ctx.n_outputs} outputs")
    cuts = list(np.cumsum(sizes)[:-1])
    return list(O.split(x, [int(c) for c in cuts], axis)) if cuts else [x]


@converter("Slice", const_inputs=(1, 2, 3, 4))
def _slice(ctx):
    x = ctx.input(0)
    if ctx.opset < 10:
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        axes, steps = ctx.attr("axes", None), None
    else:
        starts, ends = ctx.const_ints(1), ctx.const_ints(2)
        axes, steps = ctx.const_ints(3, None), ctx.const_ints(4, None)
    return O.strided_slice(x, [int(v) for v in starts], [int(v) for v in ends],
                           None if axes is None else [int(a) for a in axes],
                           None if steps is None else [int(s) for s in steps])


@converter("Gather")
def _gather(ctx):
    return O.gather(ctx.input(0), ctx.input(1), int(ctx.attr("axis", 0)))


def _axes(ctx, i: int):
    """Axes from the attribute (older opsets) or input ``i`` (newer); None when absent."""
    if ctx.has_attr("axes"):
        return [int(a) for a in ctx.attr("axes")]
    return ctx.const_ints(i, None)


@converter("Squeeze", const_inputs=(1,))
def _squeeze(ctx):
    axes = _axes(ctx, 1)
    return O.squeeze(ctx.input(0), axes if axes else None)


@converter("Unsqueeze", const_inputs=(1,))
def _unsqueeze(ctx):
    axes = _axes(ctx, 1)
    ctx.check(bool(axes), "axes are required")
    return O.unsqueeze(ctx.input(0), axes)


@converter("Expand", const_inputs=(1,))
def _expand(ctx):
    return O.expand(ctx.input(0), ctx.const_ints(1))


@converter("Tile", const_inputs=(1,))
def _tile(ctx):
    return O.tile(ctx.input(0), ctx.const_ints(1))


@converter("Pad", const_inputs=(1, 2, 3))
def _pad(ctx):
    x = ctx.input(0)
    n = x.ndim
    mode = ctx.attr("mode", "constant")
    if ctx.opset < 11:
        pads = [int(p) for p in ctx.attr("pads", ctx.attr("paddings", [0] * 2 * n))]
        value = float(ctx.attr("value", 0.0))
    else:
        pads = ctx.const_ints(1)
        value = ctx.const(2, None)
        value = 0 if value is None or np.asarray(value).size == 0 else \
            np.asarray(value).reshape(-1)[0].item()
        axes = ctx.const_ints(3, None)
        if axes is not None:  # opset 18: pads only for the listed axes
            full = [0] * (2 * n)
            for k, a in enumerate(axes):
                a = a + n if a < 0 else a
                full[a], full[a + n] = pads[k], pads[k + len(axes)]
            pads = full
    ctx.check(len(pads) == 2 * n, f"pads must have {2 * n} entries, got {pads}")
    before, after = pads[:n], pads[n:]
    grow = [(max(b, 0), max(a, 0)) for b, a in zip(before, after)]
    if mode == "wrap":
        out = _wrap_pad(x, grow, [int(d) for d in ctx.type(0).shape])
    else:
        ctx.check(mode in ("constant", "edge", "reflect"),
                  f"mode {mode!r} is not one of constant, reflect, edge, wrap")
        out = O.pad(x, grow, mode, value) if any(b or a for b, a in grow) else x
    if any(b < 0 or a < 0 for b, a in zip(before, after)):  # negative pads crop
        shape = [int(d) for d in out.shape]
        starts = [max(-b, 0) for b in before]
        ends = [d - max(-a, 0) for d, a in zip(shape, after)]
        out = O.strided_slice(out, starts, ends)
    return out


def _wrap_pad(x, pairs, shape):
    out_shape = [d + b + a for d, (b, a) in zip(shape, pairs)]
    return te.compute(out_shape, lambda *i: x[tuple((v - b) % d if (b or a) else v
                                                    for v, (b, a), d in zip(i, pairs, shape))],
                      name="pad_wrap", tag=tags.INJECTIVE, attrs={"op": "pad"})


@converter("Resize", const_inputs=(1, 2, 3))
def _resize(ctx):
    x = ctx.input(0)
    shape = [int(d) for d in ctx.type(0).shape]
    mode = ctx.attr("mode", "nearest")
    ctx.check(mode in ("nearest", "linear"), f"mode {mode!r} is not supported (nearest, linear)")
    if ctx.opset < 11:  # Resize-10: scales only, Upsample's asymmetric coordinates
        scales, sizes = ctx.const(1), None
        ctm, nearest = "asymmetric", "floor"
    else:
        scales, sizes = ctx.const(2, None), ctx.const(3, None)
        ctm = ctx.attr("coordinate_transformation_mode", "half_pixel")
        nearest = ctx.attr("nearest_mode", "round_prefer_floor")
    ctx.check(not int(ctx.attr("antialias", 0)), "antialias=1 is not supported")
    ctx.check(ctm in O.image.COORDINATE_MODES,
              f"coordinate_transformation_mode {ctm!r} is not supported")
    scales = None if scales is None or np.asarray(scales).size == 0 else \
        [float(s) for s in np.ravel(scales)]
    sizes = None if sizes is None or np.asarray(sizes).size == 0 else \
        [int(s) for s in np.ravel(sizes)]
    axes = [int(a) for a in ctx.attr("axes", range(len(shape)))]
    axes = [a + len(shape) if a < 0 else a for a in axes]
    policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
    if sizes is not None and policy != "stretch":
        pick = min if policy == "not_larger" else max
        ratio = pick(s / shape[a] for s, a in zip(sizes, axes))
        scales, sizes = [ratio] * len(axes), None
        ctx.check(all(math.floor(shape[a] * ratio) == round(shape[a] * ratio) for a in axes),
                  f"keep_aspect_ratio_policy {policy!r} rounds the output size up here, "
                  "which is not supported")
    full = [1.0] * len(shape) if sizes is None else list(shape)
    for k, a in enumerate(axes):
        full[a] = (scales if sizes is None else sizes)[k]
    if sizes is None:
        return O.resize(x, scales=full, method=mode, coordinate_transformation_mode=ctm,
                        nearest_mode=nearest)
    return O.resize(x, size=full, method=mode, coordinate_transformation_mode=ctm,
                    nearest_mode=nearest)


# -- reductions ------------------------------------------------------------------------------


def _reduce(fn, identity=None):
    """A Reduce* converter; ``identity(dtype)`` is the value of a reduction over nothing
    (ONNX's, e.g. -inf for ReduceMax, which te's finite identities do not give)."""

    def convert(ctx):
        x = ctx.input(0)
        keepdims = bool(ctx.attr("keepdims", 1))
        axes = _axes(ctx, 1)
        if not axes:
            if int(ctx.attr("noop_with_empty_axes", 0)):
                return x
            axes = None
        shape = list(ctx.type(0).shape)
        axes_n = [a + len(shape) if a < 0 else a for a in (axes or range(len(shape)))]
        if identity is not None and any(shape[a] == 0 for a in axes_n):
            out = [1 if a in axes_n else d for a, d in enumerate(shape)
                   if keepdims or a not in axes_n]
            return O.full(out, identity(x.dtype), x.dtype)
        if x.dtype == "bool" and fn in (O.reduce_max, O.reduce_min):  # any / all
            return O.cast(fn(O.cast(x, "uint8"), None if axes is None else tuple(axes),
                             keepdims), "bool")
        return fn(x, None if axes is None else tuple(axes), keepdims)

    return convert


def _sum_square(x, axes, keepdims):
    return O.reduce_sum(O.multiply(x, x), axes, keepdims)


def _extreme(sign: int):
    def identity(dtype):
        if dtype == "bool":
            return sign < 0
        if np.dtype(dtype).kind == "f":
            return -sign * np.inf
        info = np.iinfo(dtype)
        return info.min if sign > 0 else info.max

    return identity


def _value(v):
    return lambda dtype: v


_ZERO, _ONE = _value(0), _value(1)
for _op, (_fn, _identity) in {
    "ReduceSum": (O.reduce_sum, _ZERO), "ReduceMean": (O.reduce_mean, _value(np.nan)),
    "ReduceMax": (O.reduce_max, _extreme(1)), "ReduceMin": (O.reduce_min, _extreme(-1)),
    "ReduceProd": (O.reduce_prod, _ONE), "ReduceSumSquare": (_sum_square, _ZERO),
    "ReduceL1": (lambda x, a, k: O.reduce_sum(O.abs(x), a, k), _ZERO),
    "ReduceL2": (lambda x, a, k: O.sqrt(_sum_square(x, a, k)), _ZERO),
    "ReduceLogSum": (lambda x, a, k: O.log(O.reduce_sum(x, a, k)), _value(-np.inf)),
    "ReduceLogSumExp": (lambda x, a, k: O.log(O.reduce_sum(O.exp(x), a, k)),
                        _value(-np.inf)),
}.items():
    converter(_op, const_inputs=(1,))(_reduce(_fn, _identity))


def _arg(kind: str):
    def convert(ctx):
        x = ctx.input(0)
        axis, keepdims = int(ctx.attr("axis", 0)), bool(ctx.attr("keepdims", 1))
        if int(ctx.attr("select_last_index", 0)):
            return O.last_arg(x, axis, keepdims, "int64", kind)
        fn = O.argmax if kind == "argmax" else O.argmin
        return fn(x, axis=axis, keepdims=keepdims, dtype="int64")

    return convert


converter("ArgMax")(_arg("argmax"))
converter("ArgMin")(_arg("argmin"))

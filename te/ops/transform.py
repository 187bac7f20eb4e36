"""Injective operators that move, copy or pick elements: transpose, reshape, flatten, concat,
split, pad, slice, gather, expand, squeeze, unsqueeze (resize is in ``te.ops.image``)."""

from __future__ import annotations

import builtins
import numbers

from .. import dtypes
from ..errors import TETypeError
from ..expr import Expr, max_expr, min_expr, select
from ..intrin import all as all_of
from . import tags
from ._util import (
    broadcast_load,
    broadcast_shape,
    dim,
    fail,
    int_arg,
    normalize_axes,
    normalize_axis,
    prod,
    same_dim,
    shape_of,
    shape_str,
    stage,
    tensor_arg,
    typed_const,
)


def transpose(x, axes=None):
    """Permute the axes: output axis ``n`` is input axis ``axes[n]`` (reversed if None)."""
    tensor_arg(x, "transpose", "x")
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    axes = tuple(normalize_axis(a, x.ndim, "transpose", "axes") for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        fail("transpose", f"axes {axes} is not a permutation of the {x.ndim} axes")
    inverse = [axes.index(a) for a in range(x.ndim)]
    shape = [x.shape[a] for a in axes]
    return stage(shape, lambda *i: x[tuple(i[inverse[a]] for a in range(x.ndim))],
                 "transpose", tags.INJECTIVE, attrs={"axes": axes})


def _unflatten(flat, shape) -> tuple:
    """Row-major indices of the position ``flat`` in ``shape``."""
    idx = []
    for d in reversed(shape[1:]):
        idx.append(flat % d)
        flat = flat // d
    idx.append(flat)
    return tuple(reversed(idx))


def _flatten_index(index, shape):
    flat = index[0] if index else 0
    for i, d in zip(index[1:], shape[1:]):
        flat = flat * d + i
    return flat


def _reshaped(x, shape, op: str, tag: str = tags.INJECTIVE, attrs=None):
    src = shape_of(x)
    if len(shape) == len(src) and all(same_dim(a, b) for a, b in zip(shape, src)):
        return stage(shape, lambda *i: x[i], op, tag, attrs=attrs)
    return stage(shape, lambda *i: x[_unflatten(_flatten_index(i, shape), src)], op, tag,
                 attrs=attrs)


def reshape(x, newshape):
    """The same elements in row-major order under ``newshape``; one entry may be -1."""
    tensor_arg(x, "reshape", "x")
    newshape = [newshape] if isinstance(newshape, (numbers.Integral, Expr)) else list(newshape)
    newshape = [dim(d) for d in newshape]
    total = prod(x.shape)
    unknown = [n for n, d in enumerate(newshape) if isinstance(d, int) and d == -1]
    if len(unknown) > 1:
        fail("reshape", f"newshape {newshape} has more than one -1")
    for d in newshape:
        if isinstance(d, int) and d < -1:
            fail("reshape", f"newshape {newshape} has a negative dimension")
    if unknown:
        known = prod(d for d in newshape if not (isinstance(d, int) and d == -1))
        if not isinstance(total, int) or not isinstance(known, int):
            fail("reshape", "-1 in newshape needs constant dimensions")
        if known == 0 or total % known:
            fail("reshape", f"cannot reshape {shape_str(x.shape)} into {newshape}")
        newshape[unknown[0]] = total // known
    if not same_dim(prod(newshape), total):
        fail("reshape", f"cannot reshape {shape_str(x.shape)} ({total} elements) into "
                        f"{tuple(newshape)} ({prod(newshape)} elements)")
    return _reshaped(x, tuple(newshape), "reshape", attrs={"newshape": tuple(newshape)})


def flatten(x, axis: int = 1):
    """A 2-D tensor: the axes before ``axis`` form the rows, the rest the columns (ONNX)."""
    tensor_arg(x, "flatten", "x")
    axis = int_arg(axis, "flatten", "axis")
    if not -x.ndim <= axis <= x.ndim:
        fail("flatten", f"axis={axis} is out of range for a {x.ndim}-D tensor")
    axis = axis + x.ndim if axis < 0 else axis
    shape = (prod(x.shape[:axis]), prod(x.shape[axis:]))
    return _reshaped(x, shape, "flatten")


def squeeze(x, axis=None):
    """Drop the size-1 axes (all of them, or those named by ``axis``, which must be size 1)."""
    tensor_arg(x, "squeeze", "x")
    shape = shape_of(x)
    if axis is None:
        axes = tuple(a for a, d in enumerate(shape) if d == 1)
    else:
        axes = normalize_axes(axis, x.ndim, "squeeze")
        for a in axes:
            if shape[a] != 1:
                fail("squeeze", f"axis {a} has size {shape[a]}, not 1")
    keep = [a for a in range(x.ndim) if a not in axes]

    def body(*i):
        idx = dict(zip(keep, i))
        return x[tuple(idx.get(a, 0) for a in range(x.ndim))]

    return stage([shape[a] for a in keep], body, "squeeze", tags.INJECTIVE)


def unsqueeze(x, axis):
    """Insert size-1 axes at the output positions ``axis`` (ONNX Unsqueeze)."""
    tensor_arg(x, "unsqueeze", "x")
    items = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out_ndim = x.ndim + len(items)
    axes = normalize_axes(items, out_ndim, "unsqueeze")
    it = iter(x.shape)
    shape = [1 if a in axes else next(it) for a in range(out_ndim)]
    keep = [a for a in range(out_ndim) if a not in axes]
    return stage(shape, lambda *i: x[tuple(i[a] for a in keep)], "unsqueeze", tags.INJECTIVE)


def expand(x, shape):
    """``x`` broadcast with ``shape`` (numpy rules both ways, as ONNX Expand)."""
    tensor_arg(x, "expand", "x")
    shape = tuple(dim(d) for d in shape)
    for d in shape:
        if isinstance(d, int) and d < 0:
            fail("expand", f"shape {shape} has a negative dimension")
    out = broadcast_shape([x.shape, shape], "expand", ["x", "shape"])
    return stage(out, lambda *i: broadcast_load(x, i), "expand", tags.BROADCAST)


def concat(tensors, axis: int = 0):
    """Join tensors of equal shape except along ``axis``."""
    tensors = list(tensors)
    if not tensors:
        fail("concat", "needs at least one tensor")
    for n, t in enumerate(tensors):
        tensor_arg(t, "concat", f"tensors[{n}]")
    first = tensors[0]
    axis = normalize_axis(axis, first.ndim, "concat")
    for n, t in enumerate(tensors[1:], 1):
        if t.dtype != first.dtype:
            raise TETypeError(f"concat: tensors[0] is {first.dtype} but tensors[{n}] is {t.dtype}")
        if t.ndim != first.ndim:
            fail("concat", f"tensors[0] is {first.ndim}-D but tensors[{n}] is {t.ndim}-D")
        for a in range(first.ndim):
            if a != axis and not same_dim(t.shape[a], first.shape[a]):
                fail("concat", f"tensors[{n}] has shape {shape_str(t.shape)}, which differs "
                               f"from {shape_str(first.shape)} outside axis {axis}")
    offsets = [0]
    for t in tensors:
        offsets.append(dim(offsets[-1] + t.shape[axis]))
    shape = list(first.shape)
    shape[axis] = offsets[-1]

    def body(*i):
        def load(n):
            return tensors[n][i[:axis] + (i[axis] - offsets[n],) + i[axis + 1:]]

        out = load(len(tensors) - 1)
        for n in reversed(range(len(tensors) - 1)):
            out = select(i[axis] < offsets[n + 1], load(n), out)
        return out

    return stage(shape, body, "concat", tags.INJECTIVE, attrs={"axis": axis})


def split(x, indices_or_sections, axis: int = 0):
    """A tuple of parts along ``axis``: ``n`` equal sections, or cut before each index (numpy)."""
    tensor_arg(x, "split", "x")
    axis = normalize_axis(axis, x.ndim, "split")
    n = dim(x.shape[axis])
    if not isinstance(n, int):
        fail("split", f"axis {axis} must have a constant size")
    if isinstance(indices_or_sections, numbers.Integral):
        sections = int_arg(indices_or_sections, "split", "indices_or_sections", 1)
        if n % sections:
            fail("split", f"axis {axis} of size {n} cannot be split into {sections} equal parts")
        cuts = [n // sections * k for k in range(1, sections)]
    else:
        cuts = [int_arg(c, "split", "indices_or_sections") for c in indices_or_sections]
        if any(c < 0 or c > n for c in cuts) or cuts != sorted(cuts):
            fail("split", f"indices {cuts} must be increasing and within [0, {n}]")
    bounds = [0] + cuts + [n]
    parts = []
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        shape = list(x.shape)
        shape[axis] = hi - lo

        def body(*i, lo=lo):
            return x[i[:axis] + (i[axis] + lo,) + i[axis + 1:]]

        parts.append(stage(shape, body, "split", tags.INJECTIVE, name=f"split_{k}"))
    return tuple(parts)


def _pad_width(pad_width, ndim: int, op: str):
    """numpy's forms: an int, one (before, after) pair, or one pair per axis."""
    if isinstance(pad_width, numbers.Integral):
        pairs = [(pad_width, pad_width)] * ndim
    else:
        items = list(pad_width)
        if len(items) == 2 and all(isinstance(p, numbers.Integral) for p in items):
            pairs = [tuple(items)] * ndim
        elif len(items) == 1 and not isinstance(items[0], numbers.Integral):
            pairs = [tuple(items[0])] * ndim
        else:
            pairs = [tuple(p) for p in items]
    if len(pairs) != ndim or any(len(p) != 2 for p in pairs):
        fail(op, f"pad_width must give (before, after) for each of the {ndim} axes, "
                 f"got {pad_width!r}")
    return [(int_arg(b, op, "pad_width", 0), int_arg(a, op, "pad_width", 0)) for b, a in pairs]


def pad(x, pad_width, mode: str = "constant", value=0):
    """``x`` padded by ``pad_width`` (numpy's forms) with ``mode`` ``"constant"`` (``value``),
    ``"edge"`` (repeat the border) or ``"reflect"`` (mirror without the border)."""
    tensor_arg(x, "pad", "x")
    pairs = _pad_width(pad_width, x.ndim, "pad")
    if mode not in ("constant", "edge", "reflect"):
        fail("pad", f"mode must be 'constant', 'edge' or 'reflect', got {mode!r}")
    for axis, ((b, a), n) in enumerate(zip(pairs, shape_of(x))):
        if mode == "reflect" and isinstance(n, int) and builtins.max(b, a) > n - 1:
            fail("pad", f"reflect padding of {builtins.max(b, a)} needs axis {axis} to have "
                        f"more than that many elements, it has {n}")
        if mode == "edge" and (b or a) and n == 0:
            fail("pad", f"edge padding of the empty axis {axis}")
    return pad_stage(x, pairs, mode, value, "pad")


def pad_stage(x, pairs, mode="constant", value=0, op="pad", name=None):
    """The padding stage of ``op`` (conv2d and the pools pad through this too); ``pairs`` is
    one checked (before, after) per axis."""
    shape = [dim(d + b + a) for d, (b, a) in zip(x.shape, pairs)]
    fill = typed_const(value, x.dtype, op, "pad value")

    def body(*i):
        src = [iv - b for iv, (b, _) in zip(i, pairs)]
        if mode == "constant":
            inside = []
            for s, (b, a), n in zip(src, pairs, x.shape):
                inside += ([s >= 0] if b else []) + ([s < n] if a else [])
            return select(all_of(*inside), x[tuple(src)], fill) if inside else x[tuple(src)]
        idx = []
        for s, (b, a), n in zip(src, pairs, x.shape):
            if mode == "edge":
                s = max_expr(s, 0) if b else s
                s = min_expr(s, n - 1) if a else s
            else:  # reflect: -k -> k, n - 1 + k -> n - 1 - k
                s = select(s < 0, 0 - s, s) if b else s
                s = select(s >= n, 2 * (n - 1) - s, s) if a else s
            idx.append(s)
        return x[tuple(idx)]

    name = name or ("pad" if op == "pad" else f"{op}_pad")
    attrs = {"pad_width": tuple(pairs), "mode": mode}
    return stage(shape, body, op, tags.INJECTIVE, name=name, attrs=attrs)


def _slice_range(start, end, step, n):
    """ONNX Slice's clamping of (start, end) for an axis of ``n`` elements -> (start, count)."""
    if start < 0:
        start += n
    if end < 0:
        end += n
    if step > 0:
        start = builtins.min(builtins.max(start, 0), n)
        end = builtins.min(builtins.max(end, 0), n)
        count = builtins.max(0, -(-(end - start) // step))
    else:
        start = builtins.min(builtins.max(start, 0), n - 1)
        end = builtins.min(builtins.max(end, -1), n - 1)
        count = builtins.max(0, -(-(start - end) // -step))
    return start, count


def strided_slice(x, starts, ends, axes=None, steps=None):
    """Elements ``starts[k]:ends[k]:steps[k]`` along ``axes[k]`` with ONNX Slice's rules:
    negative starts/ends count from the end, out-of-range ones are clamped, steps may be
    negative (not zero)."""
    tensor_arg(x, "slice", "x")
    starts, ends = list(starts), list(ends)
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        fail("slice", f"starts, ends, axes and steps must have the same length, got "
                      f"{len(starts)}, {len(ends)}, {len(axes)}, {len(steps)}")
    axes = [normalize_axis(a, x.ndim, "slice", "axes") for a in axes]
    if len(set(axes)) != len(axes):
        fail("slice", f"axes {axes} names an axis twice")
    sizes = shape_of(x)
    begin, stride, shape = [0] * x.ndim, [1] * x.ndim, list(sizes)
    for a, s, e, st in zip(axes, starts, ends, steps):
        st = int_arg(st, "slice", "steps")
        if st == 0:
            fail("slice", f"steps for axis {a} is 0")
        if not isinstance(sizes[a], int):
            fail("slice", f"axis {a} must have a constant size")
        begin[a], shape[a] = _slice_range(int_arg(s, "slice", "starts"),
                                          int_arg(e, "slice", "ends"), st, sizes[a])
        stride[a] = st
    return stage(shape, lambda *i: x[tuple(b + st * iv for b, st, iv in zip(begin, stride, i))],
                 "slice", tags.INJECTIVE)


slice = strided_slice  # noqa: A001 - ONNX's name


def gather(data, indices, axis: int = 0):
    """``data`` indexed along ``axis`` by the integer tensor ``indices`` (ONNX Gather; negative
    indices count from the end). The output shape is ``data.shape[:axis] + indices.shape +
    data.shape[axis + 1:]``."""
    tensor_arg(data, "gather", "data")
    tensor_arg(indices, "gather", "indices")
    if not dtypes.is_int(indices.dtype):
        raise TETypeError(f"gather: indices must have an integer dtype, got {indices.dtype}")
    axis = normalize_axis(axis, data.ndim, "gather")
    n = data.shape[axis]
    shape = list(data.shape[:axis]) + list(indices.shape) + list(data.shape[axis + 1:])
    k = indices.ndim

    def body(*i):
        j = indices[i[axis:axis + k]]
        j = select(j < 0, j + n.astype(j.dtype), j)
        return data[i[:axis] + (j,) + i[axis + k:]]

    return stage(shape, body, "gather", tags.INJECTIVE, attrs={"axis": axis})


__all__ = [
    "transpose", "reshape", "flatten", "squeeze", "unsqueeze", "expand", "concat", "split",
    "pad", "strided_slice", "slice", "gather",
]

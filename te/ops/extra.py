"""Operators the network importer needs beyond the core families: comparisons and logic,
the remaining activations (elu, selu, hard_sigmoid, hard_swish, prelu), N-d convolution,
transposed convolution and pooling (any number of spatial axes), tile, arange, full and
einsum.

They follow the library's conventions (checked arguments, tagged stages; see ``tags``).
The N-d windowed ops work directly on unpadded inputs with guarded reductions, so they have
no padding stage; the 2-D NCHW cases of conv and pooling have tuned schedules in ``nn`` and
``pooling``, and the importer uses those for 2-D.
"""

from __future__ import annotations

import math
import numbers
import string

from .. import dtypes, intrin
from ..errors import TETypeError
from ..expr import const, max_expr, min_expr, select
from ..intrin import all as all_of
from ..operation import reduce_axis
from ..reduction import max as max_reducer
from ..reduction import sum as sum_reducer
from ..tensor import Tensor
from . import tags
from ._util import (
    const_shape,
    dim,
    fail,
    int_arg,
    normalize_axis,
    same_dtype,
    shape_of,
    stage,
    tensor_arg,
    typed_const,
)
from .elemwise import _nary, _unary
from .reduce import argmax_reducer

# -- comparisons and logic (outputs are bool) ------------------------------------------------


def _compare(op: str, fn, a, b):
    return _nary(op, fn, {"a": a, "b": b})


def equal(a, b):
    """``a == b`` elementwise (bool), with numpy broadcasting."""
    return _compare("equal", lambda x, y: x == y, a, b)


def not_equal(a, b):
    return _compare("not_equal", lambda x, y: x != y, a, b)


def less(a, b):
    return _compare("less", lambda x, y: x < y, a, b)


def less_equal(a, b):
    return _compare("less_equal", lambda x, y: x <= y, a, b)


def greater(a, b):
    return _compare("greater", lambda x, y: x > y, a, b)


def greater_equal(a, b):
    return _compare("greater_equal", lambda x, y: x >= y, a, b)


def _bool_args(op: str, *xs):
    for x in xs:
        if isinstance(x, Tensor) and x.dtype != "bool":
            raise TETypeError(f"{op}: operands must be bool tensors, got {x.dtype}")


def logical_and(a, b):
    _bool_args("logical_and", a, b)
    return _nary("logical_and", lambda x, y: x & y, {"a": a, "b": b})


def logical_or(a, b):
    _bool_args("logical_or", a, b)
    return _nary("logical_or", lambda x, y: x | y, {"a": a, "b": b})


def logical_xor(a, b):
    _bool_args("logical_xor", a, b)
    return _nary("logical_xor", lambda x, y: x != y, {"a": a, "b": b})


def logical_not(x):
    _bool_args("logical_not", x)
    return _unary("logical_not", lambda v: ~v, x)


def trunc_divide(a, b):
    """Integer division rounded toward zero (C's ``/``, ONNX Div on integers), with numpy
    broadcasting."""

    def fn(x, y):
        q = x // y  # floor division
        return select(((x - q * y) != 0) & ((x < 0) != (y < 0)), q + 1, q)

    return _nary("trunc_divide", fn, {"a": a, "b": b})


# -- activations -------------------------------------------------------------------------------


def _float_x(x, op: str):
    tensor_arg(x, op, "x")
    if not dtypes.is_float(x.dtype):
        raise TETypeError(f"{op}: x must have a float dtype, got {x.dtype}")


def elu(x, alpha: float = 1.0):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)`` (ONNX Elu)."""
    _float_x(x, "elu")
    return _unary("elu", lambda v: select(v > 0, v, alpha * (intrin.exp(v) - 1.0)), x)


def selu(x, alpha: float = 1.67326319217681884765625, gamma: float = 1.05070102214813232421875):
    """``gamma * x`` where ``x > 0``, else ``gamma * alpha * (exp(x) - 1)`` (ONNX Selu)."""
    _float_x(x, "selu")
    return _unary(
        "selu", lambda v: select(v > 0, gamma * v, (gamma * alpha) * (intrin.exp(v) - 1.0)), x)


def hard_sigmoid(x, alpha: float = 0.2, beta: float = 0.5):
    """``clip(alpha * x + beta, 0, 1)`` (ONNX HardSigmoid)."""
    _float_x(x, "hard_sigmoid")
    return _unary("hard_sigmoid",
                  lambda v: min_expr(max_expr(alpha * v + beta, 0.0), 1.0), x)


def hard_swish(x):
    """``x * clip(x / 6 + 1 / 2, 0, 1)`` (ONNX HardSwish)."""
    _float_x(x, "hard_swish")
    return _unary("hard_swish",
                  lambda v: v * min_expr(max_expr(v * (1.0 / 6.0) + 0.5, 0.0), 1.0), x)


def prelu(x, slope):
    """``x`` where ``x >= 0``, else ``slope * x``; ``slope`` broadcasts to ``x`` (ONNX PRelu)."""
    return _nary("prelu", lambda v, s: select(v < 0, s * v, v), {"x": x, "slope": slope})


# -- N-d windows: convolution, transposed convolution, pooling ---------------------------------


def _spatial(values, n: int, op: str, arg: str, minimum: int | None = None) -> tuple:
    if isinstance(values, numbers.Integral):
        values = (values,) * n
    values = tuple(values)
    if len(values) != n:
        fail(op, f"{arg} must have {n} entries (one per spatial axis), got {values!r}")
    return tuple(int_arg(v, op, arg, minimum) for v in values)


def window_extent(n: int, k: int, lo: int, hi: int, stride: int, dilation: int,
                  ceil_mode: bool, op: str, axis: int) -> int:
    """Output extent of a window of ``k`` taps over ``n`` elements padded by ``lo``/``hi``;
    with ``ceil_mode`` a last partial window counts if it starts inside the input or the
    leading padding (ONNX and PyTorch)."""
    span = (k - 1) * dilation + 1
    room = n + lo + hi - span
    if room < 0:
        fail(op, f"the window (size {k}, dilation {dilation}) does not fit the padded input "
                 f"along axis {axis} ({n} + {lo} + {hi})")
    if not ceil_mode:
        return room // stride + 1
    out = -(-room // stride) + 1
    if (out - 1) * stride >= n + lo:
        out -= 1
    return out


def _window_index(pos, taps, strides, pads, dilations):
    return [p * s - lo + t * d for p, t, s, lo, d in zip(pos, taps, strides, pads, dilations)]


def _inside(idx, sizes, lows=None, highs=None):
    conds = []
    for k, (i, n) in enumerate(zip(idx, sizes)):
        lo = 0 if lows is None else lows[k]
        hi = n if highs is None else highs[k]
        conds += [i >= lo, i < hi]
    return all_of(*conds)


def conv_nd(data, weight, stride=1, pads_before=0, pads_after=0, dilation=1,
            groups: int = 1):
    """Convolution over any number of spatial axes: data [N, C, *S], weight
    [O, C / groups, *K] -> [N, O, *S'] (ONNX Conv). Out-of-range taps read zero."""
    op = "conv"
    tensor_arg(data, op, "data")
    tensor_arg(weight, op, "weight")
    same_dtype(op, data=data, weight=weight)
    if data.ndim < 3 or weight.ndim != data.ndim:
        fail(op, f"data must be [N, C, spatial...] and weight [O, C/groups, kernel...] of the "
                 f"same rank, got {data.ndim}-D and {weight.ndim}-D")
    nsp = data.ndim - 2
    n, c, *sizes = const_shape(data, op, "data")
    o, cg, *kernel = const_shape(weight, op, "weight")
    strides = _spatial(stride, nsp, op, "stride", 1)
    dilations = _spatial(dilation, nsp, op, "dilation", 1)
    lo = _spatial(pads_before, nsp, op, "pads_before", 0)
    hi = _spatial(pads_after, nsp, op, "pads_after", 0)
    groups = int_arg(groups, op, "groups", 1)
    if c != cg * groups or o % groups:
        fail(op, f"data has {c} channels and weight {o} outputs of {cg} channels each; "
                 f"groups={groups} does not fit them")
    out = [window_extent(sizes[a], kernel[a], lo[a], hi[a], strides[a], dilations[a], False,
                         op, a + 2) for a in range(nsp)]
    og = o // groups
    rc = reduce_axis((0, cg), name="rc")
    taps = [reduce_axis((0, k), name=f"r{a}") for a, k in enumerate(kernel)]

    def body(*i):
        (nn, oc), pos = i[:2], i[2:]
        ic = oc // og * cg + rc if groups > 1 else rc.var
        idx = _window_index(pos, [t.var for t in taps], strides, lo, dilations)
        a = data[(nn, ic, *idx)]
        return sum_reducer(a * weight[(oc, rc, *taps)], axis=[rc, *taps],
                           where=_inside(idx, sizes) if any(lo) or any(hi) else None)

    attrs = {"stride": strides, "pads_before": lo, "pads_after": hi, "dilation": dilations,
             "groups": groups}
    return stage((n, o, *out), body, op, tags.anchor("conv_nd"), name="conv_nd", attrs=attrs)


def conv_transpose_nd(data, weight, stride=1, pads_before=0, pads_after=0, dilation=1,
                      groups: int = 1, output_padding=0):
    """Transposed convolution (the gradient of conv_nd w.r.t. its input, ONNX ConvTranspose):
    data [N, C, *S], weight [C, O / groups, *K] -> [N, O, *S'] with
    ``S' = stride * (S - 1) + output_padding + (K - 1) * dilation + 1 - pads``."""
    op = "conv_transpose"
    tensor_arg(data, op, "data")
    tensor_arg(weight, op, "weight")
    same_dtype(op, data=data, weight=weight)
    if data.ndim < 3 or weight.ndim != data.ndim:
        fail(op, f"data must be [N, C, spatial...] and weight [C, O/groups, kernel...] of the "
                 f"same rank, got {data.ndim}-D and {weight.ndim}-D")
    nsp = data.ndim - 2
    n, c, *sizes = const_shape(data, op, "data")
    wc, og, *kernel = const_shape(weight, op, "weight")
    strides = _spatial(stride, nsp, op, "stride", 1)
    dilations = _spatial(dilation, nsp, op, "dilation", 1)
    lo = _spatial(pads_before, nsp, op, "pads_before", 0)
    hi = _spatial(pads_after, nsp, op, "pads_after", 0)
    extra = _spatial(output_padding, nsp, op, "output_padding", 0)
    groups = int_arg(groups, op, "groups", 1)
    if wc != c or c % groups:
        fail(op, f"data has {c} channels but weight is {wc} x {og}; groups={groups}")
    cg = c // groups
    out = [strides[a] * (sizes[a] - 1) + extra[a] + (kernel[a] - 1) * dilations[a] + 1
           - lo[a] - hi[a] for a in range(nsp)]
    if any(e <= 0 for e in out):
        fail(op, f"the output would have shape {out}")
    rc = reduce_axis((0, cg), name="rc")
    taps = [reduce_axis((0, k), name=f"r{a}") for a, k in enumerate(kernel)]

    def body(*i):
        (nn, oc), pos = i[:2], i[2:]
        ic = oc // og * cg + rc if groups > 1 else rc.var
        # output position p takes input i with i * stride + tap * dilation - pad == p
        num = [p + lo[a] - t.var * dilations[a] for a, (p, t) in enumerate(zip(pos, taps))]
        idx = [v // strides[a] if strides[a] > 1 else v for a, v in enumerate(num)]
        conds = [v % strides[a] == 0 for a, v in enumerate(num) if strides[a] > 1]
        conds.append(_inside(num, [sizes[a] * strides[a] for a in range(nsp)]))
        a = data[(nn, ic, *idx)]
        return sum_reducer(a * weight[(ic, oc % og, *taps)], axis=[rc, *taps],
                           where=all_of(*conds))

    attrs = {"stride": strides, "pads_before": lo, "pads_after": hi, "dilation": dilations,
             "groups": groups, "output_padding": extra}
    return stage((n, og * groups, *out), body, op, tags.anchor("conv_transpose"),
                 name="conv_transpose", attrs=attrs)


def _pool_geometry(data, kernel, stride, pads_before, pads_after, dilation, ceil_mode, op):
    tensor_arg(data, op, "data")
    if data.ndim < 3:
        fail(op, f"data must be [N, C, spatial...], got {data.ndim}-D")
    nsp = data.ndim - 2
    shape = const_shape(data, op, "data")
    kernel = _spatial(kernel, nsp, op, "kernel", 1)
    strides = _spatial(stride, nsp, op, "stride", 1)
    dilations = _spatial(dilation, nsp, op, "dilation", 1)
    lo = _spatial(pads_before, nsp, op, "pads_before", 0)
    hi = _spatial(pads_after, nsp, op, "pads_after", 0)
    out = [window_extent(shape[2 + a], kernel[a], lo[a], hi[a], strides[a], dilations[a],
                         bool(ceil_mode), op, a + 2) for a in range(nsp)]
    taps = [reduce_axis((0, k), name=f"r{a}") for a, k in enumerate(kernel)]
    return shape, kernel, strides, dilations, lo, hi, out, taps


def max_pool_nd(data, kernel, stride=1, pads_before=0, pads_after=0, dilation=1,
                ceil_mode: bool = False, with_indices: bool = False, column_major: bool = False):
    """The maximum of each window over any number of spatial axes (padding never wins).
    With ``with_indices`` also the int64 flat index into ``data`` of each maximum (ONNX
    MaxPool's second output; the first one on ties): row-major, or with ``column_major``
    (ONNX storage_order=1) column-major over the spatial axes."""
    op = "max_pool"
    shape, kernel, strides, dilations, lo, hi, out, taps = _pool_geometry(
        data, kernel, stride, pads_before, pads_after, dilation, ceil_mode, op)
    sizes = shape[2:]
    attrs = {"kernel": kernel, "stride": strides, "dilation": dilations, "pads_before": lo,
             "pads_after": hi, "ceil_mode": bool(ceil_mode)}
    out_shape = (*shape[:2], *out)

    def load(i):
        idx = _window_index(i[2:], [t.var for t in taps], strides, lo, dilations)
        return idx, data[(*i[:2], *idx)], _inside(idx, sizes)

    if not with_indices:
        def body(*i):
            _, value, inside = load(i)
            return max_reducer(value, axis=taps, where=inside)

        return stage(out_shape, body, op, tags.anchor("max_pool_nd"), name="max_pool_nd",
                     attrs=attrs)

    def pair(*i):
        idx, value, inside = load(i)
        flat = i[0].astype("int64") * shape[1] + i[1].astype("int64")
        spatial = list(enumerate(idx))
        for k, v in (reversed(spatial) if column_major else spatial):
            flat = flat * sizes[k] + v.astype("int64")
        return argmax_reducer((flat, value), axis=taps, where=inside)

    index, value = stage(out_shape, pair, op, tags.REDUCE, name="max_pool_nd_pair",
                         attrs=attrs)
    values = stage(out_shape, lambda *i: value[i], op, tags.anchor("max_pool_nd"),
                   name="max_pool_nd")
    indices = stage(out_shape, lambda *i: index[i], op, tags.REDUCE, name="max_pool_nd_index")
    return values, indices


def avg_pool_nd(data, kernel, stride=1, pads_before=0, pads_after=0, dilation=1,
                ceil_mode: bool = False, count_include_pad: bool = False):
    """The mean of each window over any number of spatial axes; the divisor counts the taps
    inside the input (or, with ``count_include_pad``, inside the explicitly padded input),
    as ONNX AveragePool."""
    op = "avg_pool"
    shape, kernel, strides, dilations, lo, hi, out, taps = _pool_geometry(
        data, kernel, stride, pads_before, pads_after, dilation, ceil_mode, op)
    if not dtypes.is_float(data.dtype):
        raise TETypeError(f"{op}: data must have a float dtype, got {data.dtype}")
    sizes = shape[2:]
    out_shape = (*shape[:2], *out)

    def total(*i):
        idx = _window_index(i[2:], [t.var for t in taps], strides, lo, dilations)
        return sum_reducer(data[(*i[:2], *idx)], axis=taps, where=_inside(idx, sizes))

    sums = stage(out_shape, total, op, tags.REDUCE, name="avg_pool_nd_sum")
    if count_include_pad:
        lows, highs = [-p for p in lo], [n + p for n, p in zip(sizes, hi)]
    else:
        lows, highs = [0] * len(sizes), list(sizes)

    def body(*i):
        count = None
        for a, p in enumerate(i[2:]):  # taps inside [low, high) along each axis, multiplied
            start = p * strides[a] - lo[a]
            first = max_expr((lows[a] - start + dilations[a] - 1) // dilations[a], 0)
            last = min_expr((highs[a] - 1 - start) // dilations[a], kernel[a] - 1)
            n = max_expr(last - first + 1, 0)
            count = n if count is None else count * n
        return sums[i] / count.astype(data.dtype)

    attrs = {"kernel": kernel, "stride": strides, "dilation": dilations, "pads_before": lo,
             "pads_after": hi, "ceil_mode": bool(ceil_mode),
             "count_include_pad": bool(count_include_pad)}
    return stage(out_shape, body, op, tags.anchor("avg_pool_nd"), name="avg_pool_nd",
                 attrs=attrs)


# -- generators and copies -------------------------------------------------------------------


def full(shape, value, dtype: str):
    """A tensor of ``shape`` filled with ``value`` (ONNX ConstantOfShape)."""
    dtype = dtypes.canonical(dtype)
    shape = tuple(int_arg(d, "full", "shape", 0) for d in shape)
    fill = typed_const(value, dtype, "full", "value")
    return stage(shape, lambda *i: fill, "full", tags.INJECTIVE)


def arange(start, limit, delta, dtype: str):
    """``start + i * delta`` for the ``max(ceil((limit - start) / delta), 0)`` values of ONNX
    Range (numbers known at compile time)."""
    dtype = dtypes.canonical(dtype)
    if delta == 0:
        fail("arange", "delta must not be 0")
    count = max(math.ceil((limit - start) / delta), 0)
    first, step = typed_const(start, dtype, "arange", "start"), typed_const(
        delta, dtype, "arange", "delta")
    return stage((count,), lambda i: first + i.astype(dtype) * step, "arange", tags.INJECTIVE)


def tile(x, repeats):
    """``x`` repeated ``repeats[k]`` times along axis ``k`` (ONNX Tile, numpy.tile)."""
    tensor_arg(x, "tile", "x")
    repeats = tuple(int_arg(r, "tile", "repeats", 0) for r in repeats)
    if len(repeats) != x.ndim:
        fail("tile", f"repeats must have {x.ndim} entries, got {len(repeats)}")
    shape = shape_of(x)
    out = [dim(n * r) for n, r in zip(shape, repeats)]
    return stage(out, lambda *i: x[tuple(v % n if r > 1 else v
                                         for v, n, r in zip(i, shape, repeats))],
                 "tile", tags.INJECTIVE, attrs={"repeats": repeats})


# -- einsum ----------------------------------------------------------------------------------


def _einsum_terms(equation: str, operands) -> tuple:
    """Parse ``equation`` into per-operand label lists and the output labels; "..." becomes
    labels "0", "1", ... (right-aligned, numpy broadcasting)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        fail("einsum", f"{equation!r} has {len(terms)} operand(s) but {len(operands)} were "
                       "given")
    ell_rank = 0
    for t, x in zip(terms, operands):
        if "..." in t:
            ell_rank = max(ell_rank, x.ndim - (len(t) - 3))
    ell = [str(k) for k in range(ell_rank)]

    def labels(term: str, ndim: int | None):
        if term.count("...") > 1:
            fail("einsum", f"{equation!r}: '...' appears twice in one term")
        head, dots, tail = term.partition("...")
        for ch in head + tail:
            if ch not in string.ascii_letters:
                fail("einsum", f"{equation!r}: {ch!r} is not a letter")
        if not dots:
            return list(head)
        k = (ndim - len(head) - len(tail)) if ndim is not None else ell_rank
        return list(head) + ell[ell_rank - k:] + list(tail)

    ins = []
    for t, x in zip(terms, operands):
        lab = labels(t, x.ndim)
        if len(lab) != x.ndim:
            fail("einsum", f"{equation!r}: term {t!r} has {len(lab)} labels but its operand "
                           f"is {x.ndim}-D")
        ins.append(lab)
    if arrow:
        out = labels(rhs, None)
    else:  # implicit mode: broadcast labels, then the letters seen once, sorted
        letters = [ch for lab in ins for ch in lab if not ch.isdigit()]
        out = ell + sorted(ch for ch in set(letters) if letters.count(ch) == 1)
    if len(set(out)) != len(out):
        fail("einsum", f"{equation!r}: the output names a label twice")
    return ins, out


def einsum(equation: str, *operands):
    """Einstein summation (ONNX Einsum, numpy.einsum): products of the operands summed over
    the labels missing from the output; repeated labels take diagonals, "..." broadcasts."""
    if not operands:
        fail("einsum", "needs at least one operand")
    for k, x in enumerate(operands):
        tensor_arg(x, "einsum", f"operands[{k}]")
    dtype = same_dtype("einsum", **{f"operands[{k}]": x for k, x in enumerate(operands)})
    ins, out = _einsum_terms(equation, operands)
    sizes: dict = {}
    for lab, x in zip(ins, operands):
        for ch, n in zip(lab, const_shape(x, "einsum", "operand")):
            if n != 1 or ch not in sizes:
                if ch in sizes and sizes[ch] not in (1, n):
                    fail("einsum", f"{equation!r}: label {ch!r} is {sizes[ch]} in one operand "
                                   f"and {n} in another")
                sizes[ch] = n if n != 1 or ch not in sizes else sizes[ch]
    for ch in out:
        if ch not in sizes:
            fail("einsum", f"{equation!r}: output label {ch!r} is in no input")
    summed = [ch for ch in sizes if ch not in out]
    rvars = {ch: reduce_axis((0, sizes[ch]), name=f"k_{ch}") for ch in summed}

    def body(*i):
        where = dict(zip(out, i))
        where.update({ch: r.var for ch, r in rvars.items()})
        prod = None
        for lab, x in zip(ins, operands):
            idx = tuple(0 if d == 1 and sizes[ch] != 1 else where[ch]
                        for ch, d in zip(lab, const_shape(x, "einsum", "operand")))
            prod = x[idx] if prod is None else prod * x[idx]
        return sum_reducer(prod, axis=list(rvars.values())) if rvars else prod

    tag = tags.REDUCE if rvars else tags.BROADCAST
    return stage([sizes[ch] for ch in out], body, "einsum", tag,
                 attrs={"equation": equation, "dtype": dtype})


def last_arg(x, axis: int, keepdims: bool, dtype: str = "int64", kind: str = "argmax"):
    """The index of the LAST largest (``kind="argmax"``) or smallest (``"argmin"``) element
    along ``axis`` (ONNX ArgMax/ArgMin with select_last_index=1): the first one along the
    reversed axis, mapped back."""
    from .reduce import argmax, argmin

    tensor_arg(x, kind, "x")
    axis = normalize_axis(axis, x.ndim, kind)
    n = dim(x.shape[axis])
    flipped = stage(x.shape, lambda *i: x[i[:axis] + (n - 1 - i[axis],) + i[axis + 1:]],
                    kind, tags.INJECTIVE, name=f"{kind}_flip")
    fn = argmax if kind == "argmax" else argmin
    idx = fn(flipped, axis=axis, keepdims=keepdims, dtype=dtype)
    return stage(idx.shape, lambda *i: const(n - 1, dtype) - idx[i], kind, tags.ELEMWISE,
                 name=f"{kind}_last")


__all__ = [
    "arange",
    "avg_pool_nd",
    "conv_nd",
    "conv_transpose_nd",
    "einsum",
    "elu",
    "equal",
    "full",
    "greater",
    "greater_equal",
    "hard_sigmoid",
    "hard_swish",
    "last_arg",
    "less",
    "less_equal",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "max_pool_nd",
    "not_equal",
    "prelu",
    "selu",
    "tile",
    "trunc_divide",
]

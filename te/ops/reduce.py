"""Reductions over axes: ``reduce_sum/mean/max/min/prod`` and ``argmax/argmin``.

``axis`` is an int, a sequence of ints (negative ones count from the end) or None for every
axis; ``keepdims`` keeps the reduced axes with size 1, as numpy.
"""

from __future__ import annotations

from .. import dtypes
from ..errors import TETypeError
from ..expr import const, select
from ..intrin import all as all_of, any as any_of
from ..operation import reduce_axis
from ..reduction import comm_reducer, max as max_reducer, min as min_reducer, sum as sum_reducer
from . import tags
from ._util import as_float, normalize_axes, prod, stage, tensor_arg

prod_reducer = comm_reducer(lambda x, y: x * y, lambda t: const(1, t), name="prod")


def _arg_reducer(name: str, better):
    """(index, value) pairs; the better value wins, ties go to the smaller index.

    An index of -1 marks the identity (no element seen yet), so a tensor holding only the
    extreme value of its dtype still yields index 0.
    """

    def fcombine(x, y):
        take_x = any_of(
            y[0] < 0,
            all_of(x[0] >= 0, any_of(better(x[1], y[1]), all_of(x[1] == y[1], x[0] < y[0]))),
        )
        return select(take_x, x[0], y[0]), select(take_x, x[1], y[1])

    def fidentity(index_dtype, value_dtype):
        worst = dtypes.min_value(value_dtype) if name == "argmax" else dtypes.max_value(value_dtype)
        return const(-1, index_dtype), const(worst, value_dtype)

    return comm_reducer(fcombine, fidentity, name=name)


argmax_reducer = _arg_reducer("argmax", lambda a, b: a > b)
argmin_reducer = _arg_reducer("argmin", lambda a, b: a < b)


def _split_index(x, axes, keepdims, out_index, reduce_vars):
    """The input index for an output index plus the reduction variables."""
    it_out, it_red = iter(out_index), iter(reduce_vars)
    idx = []
    for a in range(x.ndim):
        if a in axes:
            idx.append(next(it_red))
            if keepdims:
                next(it_out)
        else:
            idx.append(next(it_out))
    return tuple(idx)


def _setup(x, axis, keepdims, op):
    tensor_arg(x, op, "x")
    axes = normalize_axes(axis, x.ndim, op)
    rvars = [reduce_axis((0, x.shape[a]), name=f"k{a}") for a in axes]
    shape = tuple(
        1 if a in axes else d for a, d in enumerate(x.shape) if keepdims or a not in axes
    )
    return axes, rvars, shape


def _reduce(x, axis, keepdims, reducer, op, tag=tags.REDUCE, name=None):
    axes, rvars, shape = _setup(x, axis, keepdims, op)

    def body(*i):
        return reducer(x[_split_index(x, axes, keepdims, i, rvars)], axis=rvars)

    return stage(shape, body, op, tag, name=name)


def reduce_sum(x, axis=None, keepdims: bool = False):
    """The sum over ``axis``."""
    return _reduce(x, axis, keepdims, sum_reducer, "reduce_sum")


def reduce_max(x, axis=None, keepdims: bool = False):
    """The maximum over ``axis``."""
    return _reduce(x, axis, keepdims, max_reducer, "reduce_max")


def reduce_min(x, axis=None, keepdims: bool = False):
    """The minimum over ``axis``."""
    return _reduce(x, axis, keepdims, min_reducer, "reduce_min")


def reduce_prod(x, axis=None, keepdims: bool = False):
    """The product over ``axis``."""
    return _reduce(x, axis, keepdims, prod_reducer, "reduce_prod")


def reduce_mean(x, axis=None, keepdims: bool = False):
    """The mean over ``axis`` (float dtypes): a sum, then a division by the count."""
    axes, _, _ = _setup(x, axis, keepdims, "reduce_mean")
    total = _reduce(x, axis, keepdims, sum_reducer, "reduce_mean", name="reduce_mean_sum")
    count = prod(x.shape[a] for a in axes)
    count = as_float(count, x.dtype)
    return stage(total.shape, lambda *i: total[i] / count, "reduce_mean", tags.REDUCE)


def _arg(x, axis, keepdims, dtype, reducer, op):
    axes, rvars, shape = _setup(x, axis, keepdims, op)
    dtype = dtypes.canonical(dtype)
    if not dtypes.is_int(dtype):
        raise TETypeError(f"{op}: dtype must be an integer type, got {dtype}")

    def body(*i):
        flat = const(0, dtype)  # row-major position inside the reduced axes
        for a, r in zip(axes, rvars):
            flat = flat * x.shape[a].astype(dtype) + r.var.astype(dtype)
        return reducer((flat, x[_split_index(x, axes, keepdims, i, rvars)]), axis=rvars)

    index, _ = stage(shape, body, op, tags.REDUCE, name=f"{op}_pair")
    return stage(shape, lambda *i: index[i], op, tags.REDUCE)


def argmax(x, axis=None, keepdims: bool = False, dtype: str = "int32"):
    """The index of the largest element over ``axis`` (the first one on ties).

    With several axes (or None) the index is the row-major position inside the reduced axes,
    as numpy's ``argmax`` of the flattened tensor.
    """
    return _arg(x, axis, keepdims, dtype, argmax_reducer, "argmax")


def argmin(x, axis=None, keepdims: bool = False, dtype: str = "int32"):
    """The index of the smallest element over ``axis`` (the first one on ties)."""
    return _arg(x, axis, keepdims, dtype, argmin_reducer, "argmin")


__all__ = [
    "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin",
]

"""Normalizations: ``softmax``, ``log_softmax``, ``layer_norm``, ``batch_norm_inference``.

softmax is four stages, as in TVM: the maximum (reduce), ``exp(x - max)`` (broadcast, can be
inlined), its sum (reduce) and the division ("anchor:softmax").
"""

from __future__ import annotations

import numbers

from .. import dtypes, intrin
from ..errors import TETypeError
from ..operation import reduce_axis
from ..reduction import max as max_reducer
from ..reduction import sum as sum_reducer
from . import tags
from ._util import (
    as_float,
    fail,
    normalize_axes,
    normalize_axis,
    prod,
    same_dim,
    shape_str,
    stage,
    tensor_arg,
    workload,
)


def _float_arg(x, op: str):
    tensor_arg(x, op, "x")
    if not dtypes.is_float(x.dtype):
        raise TETypeError(f"{op}: x must have a float dtype, got {x.dtype}")


def _reduced(x, axes, reducer, fsource, op: str, name: str):
    """A stage over the axes of ``x`` not in ``axes``: ``reducer(fsource(full_index))``."""
    rvars = {a: reduce_axis((0, x.shape[a]), name=f"k{a}") for a in axes}
    keep = [a for a in range(x.ndim) if a not in axes]

    def body(*i):
        where = dict(zip(keep, i))
        full = tuple(where[a] if a in where else rvars[a].var for a in range(x.ndim))
        return reducer(fsource(full), axis=[rvars[a] for a in axes])

    return stage([x.shape[a] for a in keep], body, op, tags.REDUCE, name=name)


def _drop(index, axes):
    return tuple(v for a, v in enumerate(index) if a not in axes)


def softmax(x, axis: int = -1):
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``."""
    op = "softmax"
    _float_arg(x, op)
    axes = (normalize_axis(axis, x.ndim, op),)
    m = _reduced(x, axes, max_reducer, lambda i: x[i], op, "softmax_max")
    e = stage(x.shape, lambda *i: intrin.exp(x[i] - m[_drop(i, axes)]), op, tags.BROADCAST,
              name="softmax_exp")
    s = _reduced(x, axes, sum_reducer, lambda i: e[i], op, "softmax_sum")
    return stage(x.shape, lambda *i: e[i] / s[_drop(i, axes)], op, tags.anchor(op),
                 attrs={"axis": axes[0], "workload": workload(op, x, axes[0])})


def log_softmax(x, axis: int = -1):
    """``x - max - log(sum(exp(x - max)))`` along ``axis``."""
    op = "log_softmax"
    _float_arg(x, op)
    axes = (normalize_axis(axis, x.ndim, op),)
    m = _reduced(x, axes, max_reducer, lambda i: x[i], op, "log_softmax_max")
    s = _reduced(x, axes, sum_reducer, lambda i: intrin.exp(x[i] - m[_drop(i, axes)]), op,
                 "log_softmax_sum")
    return stage(x.shape, lambda *i: x[i] - m[_drop(i, axes)] - intrin.log(s[_drop(i, axes)]),
                 op, tags.anchor(op), attrs={"axis": axes[0], "workload": workload(op, x, axes[0])})


def _param(t, name: str, shape, dtype: str, op: str):
    if t is None:
        return None
    tensor_arg(t, op, name)
    if t.dtype != dtype:
        raise TETypeError(f"{op}: {name} is {t.dtype} but x is {dtype}")
    if t.ndim != len(shape) or not all(same_dim(a, b) for a, b in zip(t.shape, shape)):
        fail(op, f"{name} must have shape {shape_str(shape)}, got {shape_str(t.shape)}")
    return t


def layer_norm(x, gamma=None, beta=None, axis=-1, eps: float = 1e-5):
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` over the normalized axes.

    An int ``axis`` normalizes over ``axis`` and every axis after it (ONNX
    LayerNormalization); a tuple names the axes. ``gamma``/``beta`` (optional) have the
    shape of the normalized axes.
    """
    op = "layer_norm"
    _float_arg(x, op)
    if isinstance(axis, numbers.Integral):
        axes = tuple(range(normalize_axis(axis, x.ndim, op), x.ndim))
    else:
        axes = normalize_axes(axis, x.ndim, op)
    norm_shape = [x.shape[a] for a in axes]
    gamma = _param(gamma, "gamma", norm_shape, x.dtype, op)
    beta = _param(beta, "beta", norm_shape, x.dtype, op)
    count = as_float(prod(norm_shape), x.dtype)
    total = _reduced(x, axes, sum_reducer, lambda i: x[i], op, "layer_norm_sum")

    def centered(i):
        return x[i] - total[_drop(i, axes)] / count

    sq = _reduced(x, axes, sum_reducer, lambda i: centered(i) * centered(i), op,
                  "layer_norm_sqsum")

    def body(*i):
        out = centered(i) * intrin.rsqrt(sq[_drop(i, axes)] / count + eps)
        inner = tuple(i[a] for a in axes)
        if gamma is not None:
            out = out * gamma[inner]
        if beta is not None:
            out = out + beta[inner]
        return out

    return stage(x.shape, body, op, tags.anchor(op),
                 attrs={"axis": axes, "eps": eps,
                        "workload": workload(op, x, gamma, beta, axes, float(eps))})


def batch_norm_inference(x, mean, var, gamma=None, beta=None, eps: float = 1e-5, axis: int = 1):
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` with per-channel statistics (ONNX
    BatchNormalization in inference mode); the parameters are 1-D along ``axis``.

    Computed as ``x * scale[c] + shift[c]``: the per-channel ``scale`` (with the square root
    and the division) and ``shift`` are stages of their own, which a schedule computes once
    per channel rather than once per element.
    """
    op = "batch_norm_inference"
    _float_arg(x, op)
    axis = normalize_axis(axis, x.ndim, op)
    shape = [x.shape[axis]]
    params = {name: _param(t, name, shape, x.dtype, op) for name, t in
              (("mean", mean), ("var", var), ("gamma", gamma), ("beta", beta))}
    for name in ("mean", "var"):
        if params[name] is None:
            fail(op, f"{name} is required")

    def fscale(c):
        out = intrin.rsqrt(params["var"][c] + eps)
        return out * params["gamma"][c] if params["gamma"] is not None else out

    scale = stage(shape, fscale, op, tags.ELEMWISE, name=f"{op}_scale")

    def fshift(c):
        out = -params["mean"][c] * scale[c]
        return out + params["beta"][c] if params["beta"] is not None else out

    shift = stage(shape, fshift, op, tags.ELEMWISE, name=f"{op}_shift")
    return stage(x.shape, lambda *i: x[i] * scale[i[axis]] + shift[i[axis]], op,
                 tags.BROADCAST, attrs={"axis": axis, "eps": eps})


__all__ = ["batch_norm_inference", "layer_norm", "log_softmax", "softmax"]

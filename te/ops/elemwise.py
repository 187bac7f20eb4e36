"""Elementwise operators with numpy broadcasting; Python numbers are accepted as operands and
take the dtype of the tensors they meet."""

from __future__ import annotations

import math

from .. import intrin
from ..errors import TETypeError
from ..expr import Expr, cast as _cast_expr, const, max_expr, min_expr, select
from ..tensor import Tensor
from . import tags
from ._util import (
    broadcast_load,
    broadcast_shape,
    fail,
    same_dim,
    same_dtype,
    scalar_or_tensor,
    stage,
    tensor_arg,
    typed_const,
)


def _nary(op: str, fn, operands: dict, dtype_from=None):
    """``fn(*scalars)`` at every point of the broadcast of the tensor ``operands``.

    Numbers take the dtype of the tensors (those named in ``dtype_from`` when given; with
    none, Python's int32 / float32 defaults).
    """
    values = {k: scalar_or_tensor(v, op, k) for k, v in operands.items()}
    tensors = {k: v for k, v in values.items() if isinstance(v, Tensor)}
    if not tensors:
        fail(op, f"needs at least one tensor operand, got {', '.join(map(repr, values.values()))}")
    typed = [k for k in (dtype_from or list(tensors)) if k in tensors]
    dtype = same_dtype(op, **{k: tensors[k] for k in typed}) if typed else None
    out_shape = broadcast_shape([t.shape for t in tensors.values()], op, list(tensors))
    exact = all(
        t.ndim == len(out_shape) and all(same_dim(a, b) for a, b in zip(t.shape, out_shape))
        for t in tensors.values()
    )
    consts = {
        k: typed_const(v, dtype, op, k) for k, v in values.items() if not isinstance(v, Tensor)
    }

    def body(*i):
        args = [broadcast_load(v, i) if isinstance(v, Tensor) else consts[k]
                for k, v in values.items()]
        return fn(*args)

    return stage(out_shape, body, op, tags.ELEMWISE if exact else tags.BROADCAST)


def _unary(op: str, fn, x):
    tensor_arg(x, op, "x")
    return stage(x.shape, lambda *i: fn(x[i]), op, tags.ELEMWISE)


def add(a, b):
    """``a + b`` with numpy broadcasting."""
    return _nary("add", lambda x, y: x + y, {"a": a, "b": b})


def subtract(a, b):
    """``a - b`` with numpy broadcasting."""
    return _nary("subtract", lambda x, y: x - y, {"a": a, "b": b})


def multiply(a, b):
    """``a * b`` with numpy broadcasting."""
    return _nary("multiply", lambda x, y: x * y, {"a": a, "b": b})


def divide(a, b):
    """``a / b`` (true division, float dtypes) with numpy broadcasting."""
    return _nary("divide", lambda x, y: x / y, {"a": a, "b": b})


def maximum(a, b):
    """The elementwise maximum, with numpy broadcasting."""
    return _nary("maximum", max_expr, {"a": a, "b": b})


def minimum(a, b):
    """The elementwise minimum, with numpy broadcasting."""
    return _nary("minimum", min_expr, {"a": a, "b": b})


def power(a, b):
    """``a ** b`` (float dtypes) with numpy broadcasting."""
    return _nary("power", intrin.power, {"a": a, "b": b})


def where(condition, x, y):
    """``x`` where ``condition`` (a bool tensor) holds, else ``y``; all three broadcast."""
    cond = scalar_or_tensor(condition, "where", "condition")
    if isinstance(cond, Tensor) and cond.dtype != "bool":
        raise TETypeError(f"where: condition must be a bool tensor, got {cond.dtype}")
    if not isinstance(cond, (Tensor, Expr)):
        cond = const(bool(cond), "bool")
    return _nary("where", select, {"condition": cond, "x": x, "y": y}, dtype_from=["x", "y"])


def relu(x):
    """``max(x, 0)``."""
    return _unary("relu", lambda v: max_expr(v, 0), x)


def leaky_relu(x, alpha: float = 0.01):
    """``x`` where ``x >= 0``, else ``alpha * x`` (ONNX LeakyRelu)."""
    return _unary("leaky_relu", lambda v: select(v < 0, v * alpha, v), x)


def clip(x, a_min=None, a_max=None):
    """``min(max(x, a_min), a_max)``; either bound may be None (ONNX Clip)."""
    tensor_arg(x, "clip", "x")
    lo = None if a_min is None else typed_const(a_min, x.dtype, "clip", "a_min")
    hi = None if a_max is None else typed_const(a_max, x.dtype, "clip", "a_max")

    def fn(v):
        if lo is not None:
            v = max_expr(v, lo)
        if hi is not None:
            v = min_expr(v, hi)
        return v

    return _unary("clip", fn, x)


def sigmoid(x):
    return _unary("sigmoid", intrin.sigmoid, x)


def tanh(x):
    return _unary("tanh", intrin.tanh, x)


def exp(x):
    return _unary("exp", intrin.exp, x)


def log(x):
    return _unary("log", intrin.log, x)


def sqrt(x):
    return _unary("sqrt", intrin.sqrt, x)


def rsqrt(x):
    return _unary("rsqrt", intrin.rsqrt, x)


def erf(x):
    return _unary("erf", intrin.erf, x)


def floor(x):
    return _unary("floor", intrin.floor, x)


def ceil(x):
    return _unary("ceil", intrin.ceil, x)


def abs(x):  # noqa: A001 - numpy's name
    return _unary("abs", intrin.abs, x)


def negative(x):
    """``-x``."""
    return _unary("negative", lambda v: -v, x)


neg = negative


def gelu(x, approximate: str = "none"):
    """GELU, exact (``approximate="none"``: ``x * Phi(x)`` with erf) or with the tanh formula
    (``"tanh"``), as ONNX Gelu and torch.nn.functional.gelu."""
    if approximate == "none":
        return _unary("gelu", lambda v: v * 0.5 * (1.0 + intrin.erf(v * math.sqrt(0.5))), x)
    if approximate == "tanh":
        k = math.sqrt(2.0 / math.pi)
        return _unary(
            "gelu", lambda v: v * 0.5 * (1.0 + intrin.tanh(k * (v + 0.044715 * v * v * v))), x
        )
    fail("gelu", f"approximate must be 'none' or 'tanh', got {approximate!r}")


def cast(x, dtype):
    """``x`` converted to ``dtype`` (float -> int truncates toward zero, as numpy)."""
    tensor_arg(x, "cast", "x")
    return stage(x.shape, lambda *i: _cast_expr(x[i], dtype), "cast", tags.ELEMWISE)


__all__ = [
    "add", "subtract", "multiply", "divide", "maximum", "minimum", "power", "where", "relu",
    "leaky_relu", "clip", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "erf", "floor",
    "ceil", "abs", "negative", "neg", "gelu", "cast",
]

"""Math intrinsics (``te.exp``, ``te.sqrt``, ...) and the other free functions of the language."""

from __future__ import annotations

from . import dtypes
from .errors import TETypeError
from .expr import (
    Call,
    Expr,
    FloorDiv,
    FloorMod,
    _unify,
    binary,
    cast,
    convert,
    logical_not,
    select,
)

# Intrinsics that need a float operand; the code generators map each name to real code.
FLOAT_UNARY = ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "erf", "floor", "ceil", "round")


def _float_call(name: str, x) -> Expr:
    x = convert(x, "float32")
    if not dtypes.is_float(x.dtype):
        raise TETypeError(f"te.{name} needs a float operand, got {x.dtype} (`{x}`); use .astype()")
    return Call(name, (x,), x.dtype)


def exp(x):
    return _float_call("exp", x)


def log(x):
    return _float_call("log", x)


def sqrt(x):
    return _float_call("sqrt", x)


def rsqrt(x):
    return _float_call("rsqrt", x)


def tanh(x):
    return _float_call("tanh", x)


def sigmoid(x):
    return _float_call("sigmoid", x)


def erf(x):
    return _float_call("erf", x)


def floor(x):
    return _float_call("floor", x)


def ceil(x):
    return _float_call("ceil", x)


def round(x):  # noqa: A001 - TVM's name
    return _float_call("round", x)


def abs(x):  # noqa: A001 - TVM's name
    x = convert(x)
    if dtypes.is_bool(x.dtype):
        raise TETypeError(f"te.abs is not defined on bool (`{x}`)")
    return Call("abs", (x,), x.dtype)


def power(x, y):
    x, y = _unify(x, y, "power")
    if not dtypes.is_float(x.dtype):
        raise TETypeError(f"te.power needs float operands, got {x.dtype}")
    return Call("power", (x, y), x.dtype)


def floordiv(a, b):
    return binary(FloorDiv, a, b)


def floormod(a, b):
    return binary(FloorMod, a, b)


def if_then_else(cond, t, f):
    """``t`` where ``cond`` holds, else ``f``; only the chosen branch is evaluated."""
    return select(cond, t, f)


def all(*conds):  # noqa: A001 - TVM's name
    """The conjunction of bool expressions."""
    conds = [convert(c) for c in conds]
    if not conds:
        return convert(True)
    out = conds[0]
    for c in conds[1:]:
        out = out & c
    return out


def any(*conds):  # noqa: A001 - TVM's name
    """The disjunction of bool expressions."""
    conds = [convert(c) for c in conds]
    if not conds:
        return convert(False)
    out = conds[0]
    for c in conds[1:]:
        out = out | c
    return out


def logical_and(a, b):
    return convert(a) & b


def logical_or(a, b):
    return convert(a) | b


__all__ = [
    "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "erf", "floor", "ceil", "round", "abs",
    "power", "floordiv", "floormod", "if_then_else", "all", "any", "logical_and", "logical_or",
    "logical_not", "cast",
]

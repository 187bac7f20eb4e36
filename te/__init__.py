"""tetune's tensor-expression language: placeholders, computes and reductions over scalar
expressions, in the names of TVM's classic ``te`` module. How a computation runs is decided
separately, by a schedule (``schedules``)."""

from . import dtypes
from .arith import simplify
from .dtypes import max_value as _max_value, min_value as _min_value
from .errors import TETypeError, TetuneError, TEValueError
from .expr import (
    CommReducer,
    Const,
    Expr,
    IterVar,
    Range,
    Reduce,
    TensorLoad,
    Var,
    cast,
    const,
    structural_equal,
)
from .intrin import (
    abs,
    all,
    any,
    ceil,
    erf,
    exp,
    floor,
    floordiv,
    floormod,
    if_then_else,
    log,
    logical_and,
    logical_not,
    logical_or,
    power,
    round,
    rsqrt,
    sigmoid,
    sqrt,
    tanh,
)
from .operation import compute, placeholder, reduce_axis, thread_axis, var
from .reduction import comm_reducer, max, min, sum
from .tensor import ComputeOp, Operation, PlaceholderOp, Tensor

size_var = var


def max_value(dtype: str) -> Const:
    """The largest value of ``dtype``, as a constant."""
    return const(_max_value(dtype), dtype)


def min_value(dtype: str) -> Const:
    """The smallest (most negative) value of ``dtype``, as a constant."""
    return const(_min_value(dtype), dtype)


from . import ops  # noqa: E402 - the operator library builds on everything above

"""Helpers shared by the operator modules: argument checks, axes, shapes and broadcasting."""

from __future__ import annotations

import numbers

from .. import arith
from ..errors import TetuneError, TETypeError, TEValueError
from ..expr import Const, Expr, IterVar, convert
from ..operation import compute
from ..tensor import Tensor


def fail(op: str, message: str):
    """Raise the library's error for a bad argument of ``op``."""
    raise TEValueError(f"{op}: {message}")


def tensor_arg(x, op: str, arg: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TETypeError(f"{op}: {arg} must be a tensor, got {type(x).__name__} ({x!r})")
    return x


def ndim_arg(x, op: str, arg: str, ndim: int) -> Tensor:
    tensor_arg(x, op, arg)
    if x.ndim != ndim:
        fail(op, f"{arg} must be {ndim}-D, got shape {shape_str(x.shape)}")
    return x


def same_dtype(op: str, **tensors) -> str:
    """The common dtype of the tensors (None entries are skipped), or a TETypeError."""
    items = [(k, t) for k, t in tensors.items() if t is not None]
    first_name, first = items[0]
    for name, t in items[1:]:
        if t.dtype != first.dtype:
            raise TETypeError(
                f"{op}: {first_name} is {first.dtype} but {name} is {t.dtype}; cast one of them"
            )
    return first.dtype


def dim(d):
    """A dimension as a Python int when it is constant, else the simplified expression."""
    value = arith.const_int(d)
    return arith.simplify(d) if value is None else value


def as_float(count, dtype: str):
    """An element count (int or symbolic) usable as a divisor of ``dtype`` values."""
    return count if isinstance(count, int) else count.astype(dtype)


def shape_of(x: Tensor) -> tuple:
    return tuple(dim(d) for d in x.shape)


def const_shape(x: Tensor, op: str, arg: str) -> tuple:
    """The shape of ``x`` as Python ints; ops that need it refuse symbolic extents."""
    shape = shape_of(x)
    if not all(isinstance(d, int) for d in shape):
        fail(op, f"{arg} must have a constant shape, got {shape_str(shape)}")
    return shape


def shape_str(shape) -> str:
    return "(" + ", ".join(str(dim(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def same_dim(a, b) -> bool:
    a, b = dim(a), dim(b)
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return arith.canonical_equal(convert(a), convert(b))


def prod(dims):
    out = 1
    for d in dims:
        out = dim(out * d)
    return out


def int_arg(value, op: str, arg: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TETypeError(f"{op}: {arg} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        fail(op, f"{arg} must be >= {minimum}, got {value}")
    return value


def int_tuple(value, n: int, op: str, arg: str, minimum: int | None = None) -> tuple:
    """``value`` as ``n`` integers; one integer is repeated ``n`` times."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,) * n
    try:
        items = tuple(value)
    except TypeError:
        raise TETypeError(
            f"{op}: {arg} must be an integer or {n} integers, got {value!r}"
        ) from None
    if len(items) != n:
        fail(op, f"{arg} must have {n} entries, got {len(items)} ({value!r})")
    return tuple(int_arg(v, op, arg, minimum) for v in items)


def normalize_axis(axis, ndim: int, op: str, arg: str = "axis") -> int:
    """``axis`` in ``[-ndim, ndim)`` as a non-negative integer."""
    axis = int_arg(axis, op, arg)
    if not -ndim <= axis < ndim:
        fail(op, f"{arg}={axis} is out of range for a {ndim}-D tensor")
    return axis + ndim if axis < 0 else axis


def normalize_axes(axis, ndim: int, op: str, arg: str = "axis") -> tuple:
    """``None`` (every axis), one axis or a sequence of distinct axes, sorted."""
    if axis is None:
        return tuple(range(ndim))
    items = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    if not items:
        fail(op, f"{arg} is empty; pass None to use every axis")
    out = tuple(normalize_axis(a, ndim, op, arg) for a in items)
    if len(set(out)) != len(out):
        fail(op, f"{arg}={axis!r} names an axis twice")
    return tuple(sorted(out))


def broadcast_shape(shapes, op: str, names=None) -> tuple:
    """The numpy broadcast of ``shapes``, or an error naming the operands that clash."""
    names = names or [f"operand {n}" for n in range(len(shapes))]
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for k in range(ndim):
        chosen, owner = 1, None
        for name, shape in zip(names, shapes):
            pos = k - (ndim - len(shape))
            if pos < 0:
                continue
            d = dim(shape[pos])
            if d == 1:
                continue
            if chosen == 1:
                chosen, owner = d, name
            elif not same_dim(chosen, d):
                fail(op, f"cannot broadcast {owner} (dimension {chosen}) with {name} "
                         f"(dimension {d}) at output axis {k}")
        out.append(chosen)
    return tuple(out)


def broadcast_load(x: Tensor, index: tuple):
    """``x`` read at the output ``index`` of a broadcast (size-1 dimensions read at 0)."""
    offset = len(index) - x.ndim
    idx = tuple(0 if dim(d) == 1 else index[offset + n] for n, d in enumerate(x.shape))
    return x[idx]


def stage(shape, fcompute, op: str, tag: str, name: str | None = None, attrs=None):
    """``te.compute`` for one stage of ``op``: ``attrs["op"] = op``; language errors that the
    definition raises are re-raised naming ``op``."""
    all_attrs = {"op": op}
    all_attrs.update(attrs or {})
    try:
        return compute(shape, fcompute, name=name or op, tag=tag, attrs=all_attrs)
    except TetuneError as err:
        if str(err).startswith(f"{op}:"):
            raise
        raise type(err)(f"{op}: {err}") from None


def scalar_or_tensor(value, op: str, arg: str):
    """A tensor, or a Python / numpy number or scalar expression (kept as is)."""
    if isinstance(value, (Tensor, Expr)):
        return value
    if isinstance(value, IterVar):
        return value.var
    if isinstance(value, (bool, numbers.Number)) and not isinstance(value, complex):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    raise TETypeError(f"{op}: {arg} must be a tensor or a number, got {type(value).__name__}")


def typed_const(value, dtype: str, op: str, arg: str):
    """``value`` (a number or expression) as an expression of ``dtype``."""
    try:
        return convert(value, dtype) if not isinstance(value, Expr) else value
    except TetuneError as err:
        raise type(err)(f"{op}: {arg}: {err}") from None



def workload(name: str, *args) -> tuple:
    """The workload an anchor stage carries in ``attrs["workload"]``: ``(name, *args)`` with
    tensors written as ``("TENSOR", shape, dtype)`` and lists as tuples, so equal shapes and
    attributes give equal workloads. ``name`` is the anchor's template name (the schedules
    package registers, per name, how to rebuild the op from these args: ``schedules.library``).
    Returns None when a shape is symbolic (such ops are not tunable)."""
    out = [name]
    for a in args:
        if isinstance(a, Tensor):
            shape = []
            for d in a.shape:
                if not isinstance(d, Const):
                    return None
                shape.append(int(d.value))
            out.append(("TENSOR", tuple(shape), a.dtype))
        else:
            out.append(_frozen(a))
    return tuple(out)


def _frozen(value):
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value

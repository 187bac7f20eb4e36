"""Reductions: ``te.comm_reducer`` and the built-in ``te.sum``, ``te.max``, ``te.min``."""

from __future__ import annotations

from . import dtypes
from .errors import TEValueError
from .expr import CommReducer, IterVar, Reduce, Var, const, convert, max_expr, min_expr


class Reducer:
    """A user-facing reducer; called as ``reducer(expr, axis=k, where=cond)``."""

    def __init__(self, fcombine, fidentity, name: str):
        self.fcombine = fcombine
        self.fidentity = fidentity
        self.name = name
        self._by_dtypes: dict[tuple, CommReducer] = {}

    def __repr__(self):
        return f"Reducer({self.name})"

    def combiner(self, types: tuple) -> CommReducer:
        """The CommReducer for operands of ``types`` (built once per dtype tuple)."""
        got = self._by_dtypes.get(types)
        if got is not None:
            return got
        lhs = [Var(f"x{n}" if len(types) > 1 else "x", t) for n, t in enumerate(types)]
        rhs = [Var(f"y{n}" if len(types) > 1 else "y", t) for n, t in enumerate(types)]
        if len(types) == 1:
            result = (convert(self.fcombine(lhs[0], rhs[0])),)
            identity = (convert(self.fidentity(types[0]), types[0]),)
        else:
            result = tuple(convert(r) for r in self.fcombine(tuple(lhs), tuple(rhs)))
            identity = tuple(
                convert(v, t) for v, t in zip(self.fidentity(*types), types)
            )
        if len(result) != len(types) or len(identity) != len(types):
            raise TEValueError(
                f"reducer {self.name}: fcombine/fidentity must return {len(types)} value(s)"
            )
        for r, t in zip(result + identity, types + types):
            if r.dtype != t:
                raise TEValueError(
                    f"reducer {self.name}: `{r}` has dtype {r.dtype}, expected {t}"
                )
        comm = CommReducer(lhs, rhs, result, identity, self.name)
        self._by_dtypes[types] = comm
        return comm

    def __call__(self, expr, axis, where=None, init=None):
        multiple = isinstance(expr, (tuple, list))
        exprs = tuple(convert(e) for e in (expr if multiple else (expr,)))
        comm = self.combiner(tuple(e.dtype for e in exprs))
        return make_reduce(comm, exprs if multiple else exprs[0], axis, where, init)


def make_reduce(comm: CommReducer, expr, axis, where=None, init=None):
    """Reduce nodes of ``comm`` over ``axis``, one per operand."""
    multiple = isinstance(expr, (tuple, list))
    exprs = tuple(convert(e) for e in (expr if multiple else (expr,)))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if not axes:
        raise TEValueError(f"{comm.name}: axis must name at least one reduce_axis")
    for a in axes:
        if not isinstance(a, IterVar) or not a.is_reduce:
            raise TEValueError(
                f"{comm.name}: axis {a!r} is not a reduction axis; create it with te.reduce_axis"
            )
    condition = const(True) if where is None else convert(where)
    if condition.dtype != "bool":
        raise TEValueError(f"{comm.name}: where= must be a bool expression, got `{condition}`")
    inits = ()
    if init is not None:
        inits = tuple(convert(i) for i in (init if isinstance(init, (tuple, list)) else (init,)))
    outs = tuple(Reduce(comm, exprs, axes, condition, n, inits) for n in range(len(exprs)))
    return outs if multiple else outs[0]


def comm_reducer(fcombine, fidentity, name: str = "reduce") -> Reducer:
    """A commutative reducer from ``fcombine(x, y)`` and ``fidentity(dtype...)`` (as in TVM).

    For several operands (an argmax over ``(index, value)``), ``fcombine`` receives and
    returns tuples and ``fidentity`` receives one dtype per operand.
    """
    return Reducer(fcombine, fidentity, name)


sum = comm_reducer(lambda x, y: x + y, lambda t: const(0, t), name="sum")  # noqa: A001
max = comm_reducer(max_expr, lambda t: const(dtypes.min_value(t), t), name="max")  # noqa: A001
min = comm_reducer(min_expr, lambda t: const(dtypes.max_value(t), t), name="min")  # noqa: A001

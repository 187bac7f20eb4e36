"""Building tensors: ``placeholder``, ``compute``, ``reduce_axis``, ``var``, ``thread_axis``."""

from __future__ import annotations

import inspect

from . import dtypes
from .errors import TETypeError, TEValueError
from .expr import Const, Expr, IterVar, Range, Reduce, Var, convert, const
from .tensor import ComputeOp, PlaceholderOp, Tensor, body_reductions


def var(name: str = "tindex", dtype: str = "int32") -> Var:
    """A symbolic scalar, e.g. an extent known only when the kernel is called."""
    return Var(name, dtype)


def _shape(shape, what: str) -> tuple:
    if isinstance(shape, (int, Expr)):
        shape = (shape,)
    out = []
    for n, s in enumerate(shape):
        e = convert(s, "int32") if not isinstance(s, Expr) else s
        if not dtypes.is_int(e.dtype):
            raise TETypeError(f"dimension {n} of {what} must be an integer, got `{e}` ({e.dtype})")
        if isinstance(e, Const) and e.value < 0:
            raise TEValueError(f"dimension {n} of {what} is negative ({e.value})")
        out.append(e)
    return tuple(out)


def placeholder(shape, dtype: str = "float32", name: str = "placeholder") -> Tensor:
    """An input tensor of ``shape`` and ``dtype``."""
    return PlaceholderOp(name, _shape(shape, f"placeholder {name}"), dtype).output(0)


def reduce_axis(dom, name: str = "rv") -> IterVar:
    """A reduction axis over ``dom = (lo, hi)`` (half-open), as ``te.reduce_axis`` in TVM."""
    if isinstance(dom, Range):
        rng = dom
    else:
        try:
            lo, hi = dom
        except (TypeError, ValueError):
            raise TEValueError(f"reduce_axis {name}: dom must be (lo, hi), got {dom!r}") from None
        lo, hi = convert(lo, "int32"), convert(hi, "int32")
        from .arith import simplify

        rng = Range(lo, simplify(hi - lo))
    return IterVar(rng, Var(name), "comm_reduce")


def thread_axis(dom=None, tag: str = "", name: str = "") -> IterVar:
    """A GPU thread axis such as ``thread_axis("threadIdx.x")`` for ``Stage.bind``."""
    if isinstance(dom, str):
        dom, tag = None, dom
    if not tag:
        raise TEValueError("thread_axis needs a tag such as 'blockIdx.x' or 'threadIdx.x'")
    valid = {f"{k}.{d}" for k in ("blockIdx", "threadIdx") for d in "xyz"} | {"vthread"}
    if tag not in valid and not tag.startswith("vthread"):
        raise TEValueError(f"unknown thread tag {tag!r}; expected one of {sorted(valid)}")
    rng = None
    if dom is not None:
        lo, hi = dom
        rng = Range(lo, convert(hi) - convert(lo))
    return IterVar(rng, Var(name or tag), "thread", tag)


def _arg_names(fcompute, ndim: int) -> list:
    """Loop variable names taken from the lambda's parameters, as TVM does."""
    try:
        params = list(inspect.signature(fcompute).parameters.values())
    except (TypeError, ValueError):
        params = []
    if params and params[0].kind == inspect.Parameter.VAR_POSITIONAL:
        return [f"i{n}" for n in range(ndim)]
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(names) != ndim:
        raise TEValueError(
            f"fcompute takes {len(names)} argument(s) ({', '.join(names)}) but the shape has "
            f"{ndim} dimension(s)"
        )
    return names


def compute(shape, fcompute, name: str = "compute", tag: str = "", attrs=None):
    """A tensor whose element at index ``i...`` is ``fcompute(i...)``.

    ``fcompute`` may return a tuple of expressions (several outputs of one loop nest, such as
    the index and value of an argmax); a tuple is returned then.
    """
    shape = _shape(shape, f"compute {name}")
    names = _arg_names(fcompute, len(shape))
    axis = [IterVar(Range(0, ext), Var(n), "data_par") for n, ext in zip(names, shape)]
    body = fcompute(*[iv.var for iv in axis])
    multiple = isinstance(body, (tuple, list))
    bodies = tuple(convert(b) for b in (body if multiple else (body,)))
    if not bodies:
        raise TEValueError(f"compute {name}: fcompute returned no expression")
    _check_body(bodies, name)
    op = ComputeOp(name, tag, attrs, axis, bodies)
    outputs = tuple(op.output(i) for i in range(op.num_outputs))
    return outputs if multiple else outputs[0]


def _check_body(bodies: tuple, name: str) -> None:
    if body_reductions(bodies):
        raise TEValueError(
            f"compute {name}: a reduction must be the whole body (e.g. te.sum(...)), not part of "
            "a larger expression; compute the reduction as its own tensor first"
        )
    reduces = [b for b in bodies if isinstance(b, Reduce)]
    if reduces and len(reduces) != len(bodies):
        raise TEValueError(f"compute {name}: either every output or none must be a reduction")
    if reduces:
        first = reduces[0]
        for r in reduces[1:]:
            same = r.combiner is first.combiner and [id(a) for a in r.axis] == [
                id(a) for a in first.axis
            ]
            if not same:
                raise TEValueError(
                    f"compute {name}: all outputs must come from one reducer over the same axes"
                )


__all__ = ["var", "placeholder", "reduce_axis", "thread_axis", "compute", "const"]

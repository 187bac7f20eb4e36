"""Scalar expression nodes of the tensor-expression language.

Nodes are immutable. Structural equality is ``a.same_as(b)`` (or ``structural_equal``); the
Python operators build new expressions, as in TVM, so ``a == b`` is an ``EQ`` node whose truth
value is structural equality (which keeps expressions usable as dict keys).
"""

from __future__ import annotations

import itertools
import numbers
from typing import Callable

from . import dtypes
from .errors import TETypeError, TEValueError

_var_ids = itertools.count()


class Expr:
    """Base class of every scalar expression."""

    __slots__ = ("_key_cache",)
    dtype: str

    # -- structure -------------------------------------------------------------------------
    def children(self) -> tuple:
        """The sub-expressions, in a fixed order (see ``with_children``)."""
        return ()

    def with_children(self, kids: tuple) -> "Expr":
        """A copy of this node with its sub-expressions replaced."""
        return self

    def _key_parts(self) -> tuple:
        raise NotImplementedError

    @property
    def key(self) -> tuple:
        """A hashable tuple identifying the expression up to structure."""
        try:
            return self._key_cache
        except AttributeError:
            k = (type(self).__name__,) + self._key_parts()
            object.__setattr__(self, "_key_cache", k)
            return k

    def same_as(self, other) -> bool:
        return isinstance(other, Expr) and (self is other or self.key == other.key)

    def __hash__(self):
        return hash(self.key)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __bool__(self):
        raise TETypeError(
            f"the symbolic expression `{self}` has no Python truth value; "
            "use te.if_then_else / te.all / te.any instead of `if`/`and`/`or`"
        )

    def __repr__(self):
        return str(self)

    def __str__(self):
        from .printer import expr_str

        return expr_str(self)

    # -- arithmetic ------------------------------------------------------------------------
    def __add__(self, other):
        return binary(Add, self, other)

    def __radd__(self, other):
        return binary(Add, other, self)

    def __sub__(self, other):
        return binary(Sub, self, other)

    def __rsub__(self, other):
        return binary(Sub, other, self)

    def __mul__(self, other):
        return binary(Mul, self, other)

    def __rmul__(self, other):
        return binary(Mul, other, self)

    def __truediv__(self, other):
        return true_div(self, other)

    def __rtruediv__(self, other):
        return true_div(other, self)

    def __floordiv__(self, other):
        return binary(FloorDiv, self, other)

    def __rfloordiv__(self, other):
        return binary(FloorDiv, other, self)

    def __mod__(self, other):
        return binary(FloorMod, self, other)

    def __rmod__(self, other):
        return binary(FloorMod, other, self)

    def __neg__(self):
        return binary(Sub, 0, self)

    def __pos__(self):
        return self

    def __pow__(self, other):
        from .intrin import power

        return power(self, other)

    def __rpow__(self, other):
        from .intrin import power

        return power(other, self)

    def __lt__(self, other):
        return binary(LT, self, other)

    def __le__(self, other):
        return binary(LE, self, other)

    def __gt__(self, other):
        return binary(GT, self, other)

    def __ge__(self, other):
        return binary(GE, self, other)

    def __eq__(self, other):
        return binary(EQ, self, other)

    def __ne__(self, other):
        return binary(NE, self, other)

    def __and__(self, other):
        return binary(And, self, other)

    def __rand__(self, other):
        return binary(And, other, self)

    def __or__(self, other):
        return binary(Or, self, other)

    def __ror__(self, other):
        return binary(Or, other, self)

    def __invert__(self):
        return logical_not(self)

    def astype(self, dtype) -> "Expr":
        """Cast to ``dtype`` (float -> int truncates toward zero, as in C and TVM)."""
        return cast(self, dtype)


# ------------------------------------------------------------------------------------------
# Leaves
# ------------------------------------------------------------------------------------------


class Var(Expr):
    """A scalar variable: a loop index or a symbolic extent (``te.var``)."""

    __slots__ = ("name", "dtype", "uid")

    def __init__(self, name: str = "v", dtype: str = "int32"):
        object.__setattr__(self, "name", str(name))
        object.__setattr__(self, "dtype", dtypes.canonical(dtype))
        object.__setattr__(self, "uid", next(_var_ids))

    def _key_parts(self):
        return (self.uid,)

    def __hash__(self):
        return hash(("Var", self.uid))


class Const(Expr):
    """A literal of a given dtype."""

    __slots__ = ("value", "dtype")

    def __init__(self, value, dtype: str):
        dtype = dtypes.canonical(dtype)
        if dtypes.is_float(dtype):
            value = float(value)
        elif dtypes.is_bool(dtype):
            value = bool(value)
        else:
            if isinstance(value, float) and not value.is_integer():
                raise TETypeError(f"constant {value} is not an integer but dtype is {dtype}")
            value = int(value)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "dtype", dtype)

    def _key_parts(self):
        return (self.value, self.dtype)

    def __int__(self):
        return int(self.value)

    def __index__(self):
        if not (dtypes.is_int(self.dtype) or dtypes.is_bool(self.dtype)):
            raise TETypeError(f"{self} is not an integer constant")
        return int(self.value)

    def __float__(self):
        return float(self.value)


# ------------------------------------------------------------------------------------------
# Operators
# ------------------------------------------------------------------------------------------


class BinaryOp(Expr):
    """Base of two-operand nodes; ``symbol`` is used by the printer."""

    __slots__ = ("a", "b", "dtype")
    symbol = "?"

    def __init__(self, a: Expr, b: Expr):
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "dtype", self._result_dtype(a, b))

    def _result_dtype(self, a, b):
        return a.dtype

    def children(self):
        return (self.a, self.b)

    def with_children(self, kids):
        a, b = kids
        if a is self.a and b is self.b:
            return self
        return type(self)(a, b)

    def _key_parts(self):
        return (self.a.key, self.b.key)


class Add(BinaryOp):
    __slots__ = ()
    symbol = "+"


class Sub(BinaryOp):
    __slots__ = ()
    symbol = "-"


class Mul(BinaryOp):
    __slots__ = ()
    symbol = "*"


class Div(BinaryOp):
    """True division of floats."""

    __slots__ = ()
    symbol = "/"


class FloorDiv(BinaryOp):
    __slots__ = ()
    symbol = "//"


class FloorMod(BinaryOp):
    __slots__ = ()
    symbol = "%"


class Min(BinaryOp):
    __slots__ = ()
    symbol = "min"


class Max(BinaryOp):
    __slots__ = ()
    symbol = "max"


class CmpOp(BinaryOp):
    __slots__ = ()

    def _result_dtype(self, a, b):
        return "bool"


class EQ(CmpOp):
    __slots__ = ()
    symbol = "=="

    def __bool__(self):
        # Lets `expr in dict` and `a == b` in Python code test structural equality, as in TVM.
        return self.a.same_as(self.b)


class NE(CmpOp):
    __slots__ = ()
    symbol = "!="

    def __bool__(self):
        return not self.a.same_as(self.b)


class LT(CmpOp):
    __slots__ = ()
    symbol = "<"


class LE(CmpOp):
    __slots__ = ()
    symbol = "<="


class GT(CmpOp):
    __slots__ = ()
    symbol = ">"


class GE(CmpOp):
    __slots__ = ()
    symbol = ">="


class And(BinaryOp):
    __slots__ = ()
    symbol = "&&"


class Or(BinaryOp):
    __slots__ = ()
    symbol = "||"


class Not(Expr):
    __slots__ = ("a", "dtype")

    def __init__(self, a: Expr):
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "dtype", "bool")

    def children(self):
        return (self.a,)

    def with_children(self, kids):
        return self if kids[0] is self.a else Not(kids[0])

    def _key_parts(self):
        return (self.a.key,)


class Cast(Expr):
    __slots__ = ("value", "dtype")

    def __init__(self, dtype: str, value: Expr):
        object.__setattr__(self, "dtype", dtypes.canonical(dtype))
        object.__setattr__(self, "value", value)

    def children(self):
        return (self.value,)

    def with_children(self, kids):
        return self if kids[0] is self.value else Cast(self.dtype, kids[0])

    def _key_parts(self):
        return (self.dtype, self.value.key)


class Select(Expr):
    """``true_value if condition else false_value``; only the chosen branch is evaluated."""

    __slots__ = ("condition", "true_value", "false_value", "dtype")

    def __init__(self, condition: Expr, true_value: Expr, false_value: Expr):
        object.__setattr__(self, "condition", condition)
        object.__setattr__(self, "true_value", true_value)
        object.__setattr__(self, "false_value", false_value)
        object.__setattr__(self, "dtype", true_value.dtype)

    def children(self):
        return (self.condition, self.true_value, self.false_value)

    def with_children(self, kids):
        if all(k is c for k, c in zip(kids, self.children())):
            return self
        return Select(*kids)

    def _key_parts(self):
        return tuple(c.key for c in self.children())


class Call(Expr):
    """A math intrinsic such as ``exp`` or ``sqrt`` (see ``te.intrin``)."""

    __slots__ = ("name", "args", "dtype")

    def __init__(self, name: str, args: tuple, dtype: str):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "args", tuple(args))
        object.__setattr__(self, "dtype", dtype)

    def children(self):
        return self.args

    def with_children(self, kids):
        if all(k is c for k, c in zip(kids, self.args)):
            return self
        return Call(self.name, kids, self.dtype)

    def _key_parts(self):
        return (self.name, self.dtype) + tuple(a.key for a in self.args)


class TensorLoad(Expr):
    """``tensor[indices]``: reading one element of a tensor (TVM's ProducerLoad)."""

    __slots__ = ("tensor", "indices", "dtype")

    def __init__(self, tensor, indices: tuple):
        object.__setattr__(self, "tensor", tensor)
        object.__setattr__(self, "indices", tuple(indices))
        object.__setattr__(self, "dtype", tensor.dtype)

    def children(self):
        return self.indices

    def with_children(self, kids):
        if all(k is c for k, c in zip(kids, self.indices)):
            return self
        return TensorLoad(self.tensor, kids)

    def _key_parts(self):
        return (id(self.tensor.op), self.tensor.value_index) + tuple(i.key for i in self.indices)


class Range:
    """The half-open interval ``[min, min + extent)`` of an iteration variable."""

    __slots__ = ("min", "extent")

    def __init__(self, min, extent):
        object.__setattr__(self, "min", convert(min))
        object.__setattr__(self, "extent", convert(extent))

    def __setattr__(self, name, value):
        raise AttributeError("Range is immutable")

    def __repr__(self):
        return f"range(min={self.min}, ext={self.extent})"


class IterVar:
    """An iteration axis: a variable, its range and its kind.

    ``iter_type`` is ``"data_par"`` for output axes, ``"comm_reduce"`` for reduction axes and
    ``"thread"`` for GPU thread axes (``te.thread_axis``).
    """

    __slots__ = ("dom", "var", "iter_type", "thread_tag")

    def __init__(self, dom: Range | None, var: Var, iter_type: str, thread_tag: str = ""):
        object.__setattr__(self, "dom", dom)
        object.__setattr__(self, "var", var)
        object.__setattr__(self, "iter_type", iter_type)
        object.__setattr__(self, "thread_tag", thread_tag)

    def __setattr__(self, name, value):
        raise AttributeError("IterVar is immutable")

    @property
    def name(self) -> str:
        return self.var.name

    @property
    def is_reduce(self) -> bool:
        return self.iter_type == "comm_reduce"

    def __repr__(self):
        return f"IterVar({self.var.name}, {self.dom}, {self.iter_type})"

    def __neg__(self):
        return -self.var


def _forward_to_var(op):
    return lambda self, *args: getattr(self.var, op)(*args)


# ``IterVar`` takes part in index arithmetic as its variable (``A[i, k]`` with ``k`` a
# reduce_axis), but compares by identity so that it can key dicts and sit in lists.
for _op in ("add", "sub", "mul", "floordiv", "mod", "truediv", "lt", "le", "gt", "ge"):
    for _name in (f"__{_op}__", f"__r{_op}__"):
        if hasattr(Expr, _name):
            setattr(IterVar, _name, _forward_to_var(_name))
del _op, _name


class CommReducer:
    """A commutative reducer: ``fcombine(lhs, rhs)`` with identity elements (``te.comm_reducer``)."""

    __slots__ = ("lhs", "rhs", "result", "identity", "name")

    def __init__(self, lhs, rhs, result, identity, name):
        object.__setattr__(self, "lhs", tuple(lhs))
        object.__setattr__(self, "rhs", tuple(rhs))
        object.__setattr__(self, "result", tuple(result))
        object.__setattr__(self, "identity", tuple(identity))
        object.__setattr__(self, "name", name)

    def __setattr__(self, name, value):
        raise AttributeError("CommReducer is immutable")

    def __repr__(self):
        return f"CommReducer({self.name})"

    def __call__(self, expr, axis, where=None, init=None):
        from .reduction import make_reduce

        return make_reduce(self, expr, axis, where, init)

    def combine(self, lhs_values, rhs_values):
        """The combined values for concrete ``lhs``/``rhs`` expressions."""
        mapping = dict(zip(self.lhs, lhs_values))
        mapping.update(zip(self.rhs, rhs_values))
        return tuple(substitute(r, mapping) for r in self.result)


class Reduce(Expr):
    """``combiner`` over ``axis`` of ``source`` (guarded by ``condition``); output ``value_index``."""

    __slots__ = ("combiner", "source", "axis", "condition", "value_index", "init", "dtype")

    def __init__(self, combiner, source, axis, condition, value_index, init=()):
        object.__setattr__(self, "combiner", combiner)
        object.__setattr__(self, "source", tuple(source))
        object.__setattr__(self, "axis", tuple(axis))
        object.__setattr__(self, "condition", condition)
        object.__setattr__(self, "value_index", value_index)
        object.__setattr__(self, "init", tuple(init))
        object.__setattr__(self, "dtype", self.source[value_index].dtype)

    def children(self):
        return self.source + (self.condition,) + self.init

    def with_children(self, kids):
        if all(k is c for k, c in zip(kids, self.children())):
            return self
        n = len(self.source)
        return Reduce(self.combiner, kids[:n], self.axis, kids[n], self.value_index, kids[n + 1 :])

    def _key_parts(self):
        return (
            id(self.combiner),
            tuple(id(a) for a in self.axis),
            self.value_index,
        ) + tuple(c.key for c in self.children())


# ------------------------------------------------------------------------------------------
# Construction helpers
# ------------------------------------------------------------------------------------------


def const(value, dtype: str | None = None) -> Const:
    """A constant; ``dtype`` defaults to int32 for integers, float32 for floats, bool for bools."""
    if dtype is None:
        if isinstance(value, (bool,)):
            dtype = "bool"
        elif isinstance(value, numbers.Integral):
            dtype = "int32"
        elif isinstance(value, numbers.Real):
            dtype = "float32"
        else:
            raise TETypeError(f"cannot make a constant of {value!r}")
    return Const(value, dtype)


def convert(value, dtype: str | None = None) -> Expr:
    """Turn a Python number, IterVar or Expr into an Expr (numbers take ``dtype`` if given)."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, IterVar):
        return value.var
    if isinstance(value, (bool, numbers.Number)) and not isinstance(value, complex):
        if dtype is not None and dtypes.is_bool(dtype) and not isinstance(value, bool):
            raise TETypeError(f"cannot combine the number {value!r} with a bool expression")
        if dtype is not None and dtypes.is_int(dtype) and not float(value).is_integer():
            raise TETypeError(f"the non-integer {value!r} cannot be used with dtype {dtype}")
        return const(value, dtype)
    if hasattr(value, "dtype") and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return Const(value.item(), dtypes.canonical(value.dtype))
    raise TETypeError(f"cannot use {value!r} ({type(value).__name__}) in a tensor expression")


def _unify(a, b, op_name: str):
    """Convert operands; Python numbers adopt the dtype of the expression they meet."""
    a_is_expr = isinstance(a, (Expr, IterVar))
    b_is_expr = isinstance(b, (Expr, IterVar))
    if a_is_expr and not b_is_expr:
        a = convert(a)
        b = convert(b, a.dtype)
    elif b_is_expr and not a_is_expr:
        b = convert(b)
        a = convert(a, b.dtype)
    else:
        a, b = convert(a), convert(b)
    if a.dtype != b.dtype:
        raise TETypeError(
            f"operands of `{op_name}` have different dtypes: `{a}` is {a.dtype} and `{b}` is "
            f"{b.dtype}; convert one of them with .astype()"
        )
    return a, b


_LOGICAL = (And, Or)
_ARITH = (Add, Sub, Mul, Div, FloorDiv, FloorMod, Min, Max)


def binary(cls, a, b) -> Expr:
    """Build ``cls(a, b)`` with dtype checks."""
    a, b = _unify(a, b, cls.symbol)
    if issubclass(cls, _LOGICAL) and a.dtype != "bool":
        raise TETypeError(f"`{cls.symbol}` needs bool operands, got {a.dtype} (`{a}`)")
    if issubclass(cls, _ARITH) and a.dtype == "bool":
        raise TETypeError(f"`{cls.symbol}` is not defined on bool operands (`{a}`, `{b}`)")
    if cls in (FloorDiv, FloorMod) and not dtypes.is_int(a.dtype):
        raise TETypeError(f"`{cls.symbol}` needs integer operands, got {a.dtype} (`{a}`)")
    return cls(a, b)


def true_div(a, b) -> Expr:
    a, b = _unify(a, b, "/")
    if not dtypes.is_float(a.dtype):
        raise TETypeError(
            f"`/` on {a.dtype} operands (`{a}`, `{b}`) is ambiguous; use `//` (floordiv) for "
            "integers or cast to a float dtype"
        )
    return Div(a, b)


def logical_not(a) -> Expr:
    a = convert(a)
    if a.dtype != "bool":
        raise TETypeError(f"`not` needs a bool operand, got {a.dtype} (`{a}`)")
    return Not(a)


def cast(value, dtype) -> Expr:
    value = convert(value)
    dtype = dtypes.canonical(dtype)
    return value if value.dtype == dtype else Cast(dtype, value)


def select(condition, true_value, false_value) -> Expr:
    condition = convert(condition)
    if condition.dtype != "bool":
        raise TETypeError(f"the condition `{condition}` must be bool, got {condition.dtype}")
    t, f = _unify(true_value, false_value, "if_then_else")
    return Select(condition, t, f)


def min_expr(a, b) -> Expr:
    return binary(Min, a, b)


def max_expr(a, b) -> Expr:
    return binary(Max, a, b)


# ------------------------------------------------------------------------------------------
# Generic traversal
# ------------------------------------------------------------------------------------------


def post_order_rewrite(expr: Expr, fn: Callable[[Expr], Expr | None]) -> Expr:
    """Rebuild ``expr`` bottom-up; ``fn(node)`` may return a replacement or None to keep it."""
    memo: dict[int, Expr] = {}

    def visit(node):
        got = memo.get(id(node))
        if got is not None:
            return got
        kids = node.children()
        if kids:
            node2 = node.with_children(tuple(visit(k) for k in kids))
        else:
            node2 = node
        out = fn(node2)
        result = node2 if out is None else out
        memo[id(node)] = result
        return result

    return visit(expr)


def walk(expr: Expr):
    """Yield every node of ``expr`` (pre-order)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children()))


def substitute(expr: Expr, mapping: dict) -> Expr:
    """Replace variables: ``mapping`` maps Var -> Expr."""
    if not mapping:
        return expr
    by_uid = {v.uid: e for v, e in mapping.items()}

    def fn(node):
        if isinstance(node, Var):
            return by_uid.get(node.uid)
        return None

    return post_order_rewrite(expr, fn)


def free_vars(expr: Expr) -> list:
    """The distinct variables used in ``expr``, in first-use order."""
    seen, out = set(), []
    for node in walk(expr):
        if isinstance(node, Var) and node.uid not in seen:
            seen.add(node.uid)
            out.append(node)
    return out


def structural_equal(a, b) -> bool:
    return convert(a).same_as(convert(b))


def check_index(index, tensor_name: str, position: int) -> Expr:
    """Convert one index of ``tensor[...]`` and insist it is an integer."""
    try:
        e = convert(index)
    except TETypeError as err:
        raise TEValueError(f"index {position} of {tensor_name}[...] is invalid: {err}") from None
    if not dtypes.is_int(e.dtype):
        raise TETypeError(
            f"index {position} of {tensor_name}[...] must be an integer, got {e.dtype} (`{e}`)"
        )
    return e

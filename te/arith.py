"""Arithmetic simplification and integer bound analysis.

Integer expressions are kept in a canonical affine form (``sum(coeff * term) + const`` with
terms sorted), which lets the simplifier cancel the index arithmetic that ``split`` and
``fuse`` introduce: with ``0 <= ii < 32``, ``(io*32 + ii) // 32`` is ``io`` and
``(io*32 + ii) % 32`` is ``ii``. Bounds of variables are given as ``{Var: (lo, hi)}`` with
inclusive ends (``None`` for unknown).
"""

from __future__ import annotations

import math

from . import dtypes
from . import expr as E

Interval = tuple  # (lo, hi), inclusive, None for unbounded


# ------------------------------------------------------------------------------------------
# Affine forms
# ------------------------------------------------------------------------------------------


class Affine:
    """``const + sum(coeff * term)``; terms are non-affine expressions keyed structurally."""

    __slots__ = ("terms", "const", "dtype")

    def __init__(self, dtype: str, const: int = 0, terms=None):
        self.dtype = dtype
        self.const = const
        self.terms: dict = dict(terms or {})  # key -> [term, coeff]

    @staticmethod
    def of(e: E.Expr) -> "Affine":
        """Decompose an integer expression into its affine form."""
        if isinstance(e, E.Const):
            return Affine(e.dtype, e.value)
        if isinstance(e, (E.Add, E.Sub)):
            a, b = Affine.of(e.a), Affine.of(e.b)
            return a.plus(b, 1 if isinstance(e, E.Add) else -1)
        if isinstance(e, E.Mul):
            if isinstance(e.b, E.Const):
                return Affine.of(e.a).scaled(e.b.value)
            if isinstance(e.a, E.Const):
                return Affine.of(e.b).scaled(e.a.value)
        out = Affine(e.dtype)
        out.terms[e.key] = [e, 1]
        return out

    def plus(self, other: "Affine", sign: int = 1) -> "Affine":
        out = Affine(self.dtype, self.const + sign * other.const, {k: list(v) for k, v in
                                                                     self.terms.items()})
        for k, (t, c) in other.terms.items():
            if k in out.terms:
                out.terms[k][1] += sign * c
                if out.terms[k][1] == 0:
                    del out.terms[k]
            else:
                out.terms[k] = [t, sign * c]
        return out

    def scaled(self, factor: int) -> "Affine":
        if factor == 0:
            return Affine(self.dtype)
        return Affine(
            self.dtype, self.const * factor, {k: [t, c * factor] for k, (t, c) in self.terms.items()}
        )

    def merge_div_mod(self) -> "Affine":
        """Fold ``c*k*(x // c) + k*(x % c)`` back into ``k*x`` (what ``fuse`` then ``split`` leave)."""
        changed = True
        while changed:
            changed = False
            for k, (t, c) in list(self.terms.items()):
                if not (isinstance(t, E.FloorMod) and isinstance(t.b, E.Const)):
                    continue
                # The quotient may have been simplified from (x // a) // b to x // (a*b) (as
                # ``fuse`` of three axes leaves it): look for either form.
                div = E.FloorDiv(t.a, t.b)
                if div.key not in self.terms:
                    div = _nested_div(div)
                entry = self.terms.get(div.key)
                if entry is not None and entry[1] == c * t.b.value:
                    del self.terms[k]
                    del self.terms[div.key]
                    self_plus = self.plus(Affine.of(t.a).scaled(c))
                    self.terms, self.const = self_plus.terms, self_plus.const
                    changed = True
                    break
        return self

    def to_expr(self) -> E.Expr:
        t = self.dtype
        # Integers in a kernel wrap around (int8: 100 + 100 == -56), so folded ones must too.
        fix = (lambda v: _wrap(v, t, centered=True)) if dtypes.is_int(t) else (lambda v: v)
        top = dtypes.max_value(t) if dtypes.is_int(t) else math.inf
        items = [(term, fix(c)) for term, c in self.terms.values()]
        items = sorted((tc for tc in items if tc[1] != 0), key=lambda tc: (-abs(tc[1]), str(tc[0])))
        out = None
        for term, coeff in items:
            neg = coeff < 0 and -coeff <= top  # the most negative value has no magnitude
            mag = -coeff if neg else coeff
            piece = term if mag == 1 else E.Mul(term, E.Const(mag, t))
            if out is None:
                out = E.Sub(E.Const(0, t), piece) if neg else piece
            else:
                out = E.Sub(out, piece) if neg else E.Add(out, piece)
        const = fix(self.const)
        if out is None:
            return E.Const(_wrap(const, t) if dtypes.is_int(t) else const, t)
        if const < 0 and -const <= top:
            out = E.Sub(out, E.Const(-const, t))
        elif const != 0:
            out = E.Add(out, E.Const(const, t))
        return out


def _wrap(value: int, dtype: str, centered: bool = False) -> int:
    """``value`` as the integer ``dtype`` stores it (two's complement, as numpy computes);
    ``centered`` picks the equivalent value nearest zero (``x - 1``, not ``x + 255``, in uint8)."""
    lo, hi = dtypes.min_value(dtype), dtypes.max_value(dtype)
    span = hi - lo + 1
    if centered:
        lo = -(span // 2)
    return (value - lo) % span + lo


# ------------------------------------------------------------------------------------------
# Bounds
# ------------------------------------------------------------------------------------------


def _add(a, b):
    return None if a is None or b is None else a + b


def _mul_interval(a: Interval, b: Interval) -> Interval:
    if None in a or None in b:
        if a == (0, 0) or b == (0, 0):
            return (0, 0)
        # Signs known is enough for the common index case: non-negative times non-negative.
        if a[0] is not None and a[0] >= 0 and b[0] is not None and b[0] >= 0:
            hi = None if a[1] is None or b[1] is None else a[1] * b[1]
            return (a[0] * b[0], hi)
        return (None, None)
    products = [x * y for x in a for y in b]
    return (min(products), max(products))


def _scale_interval(iv: Interval, c: int) -> Interval:
    lo, hi = iv
    lo2 = None if lo is None else lo * c
    hi2 = None if hi is None else hi * c
    return (lo2, hi2) if c >= 0 else (hi2, lo2)


def bounds_of(e: E.Expr, var_bounds: dict | None = None) -> Interval:
    """Inclusive integer bounds of ``e`` given bounds of its variables; None where unknown."""
    vb = _by_uid(var_bounds)
    return _bounds(e, vb)


def _by_uid(var_bounds) -> dict:
    if not var_bounds:
        return {}
    return {v.uid: b for v, b in var_bounds.items()}


def _bounds(e: E.Expr, vb: dict) -> Interval:
    if isinstance(e, E.Const):
        if isinstance(e.value, bool):
            return (int(e.value), int(e.value))
        return (e.value, e.value) if isinstance(e.value, int) else (None, None)
    if isinstance(e, E.Var):
        return vb.get(e.uid, (None, None))
    if isinstance(e, (E.Add, E.Sub, E.Mul)) and dtypes.is_int(e.dtype):
        aff = Affine.of(e)
        lo = hi = aff.const
        for t, c in aff.terms.values():
            if isinstance(t, E.Mul):
                tb = _mul_interval(_bounds(t.a, vb), _bounds(t.b, vb))
            else:
                tb = _bounds(t, vb)
            tlo, thi = _scale_interval(tb, c)
            lo, hi = _add(lo, tlo), _add(hi, thi)
        return (lo, hi)
    if isinstance(e, E.FloorDiv) and isinstance(e.b, E.Const) and e.b.value > 0:
        lo, hi = _bounds(e.a, vb)
        c = e.b.value
        return (None if lo is None else lo // c, None if hi is None else hi // c)
    if isinstance(e, E.FloorMod) and isinstance(e.b, E.Const) and e.b.value > 0:
        lo, hi = _bounds(e.a, vb)
        c = e.b.value
        if lo is not None and hi is not None and lo // c == hi // c:
            return (lo % c, hi % c)
        return (0, c - 1)
    if isinstance(e, (E.Min, E.Max)):
        (alo, ahi), (blo, bhi) = _bounds(e.a, vb), _bounds(e.b, vb)
        pick = min if isinstance(e, E.Min) else max
        lo = None if alo is None or blo is None else pick(alo, blo)
        hi = None if ahi is None or bhi is None else pick(ahi, bhi)
        if isinstance(e, E.Min):
            # min(a, b) <= either upper bound; max(a, b) >= either lower bound.
            hi = ahi if bhi is None else (bhi if ahi is None else min(ahi, bhi))
        else:
            lo = alo if blo is None else (blo if alo is None else max(alo, blo))
        return (lo, hi)
    if isinstance(e, E.Select):
        (alo, ahi), (blo, bhi) = _bounds(e.true_value, vb), _bounds(e.false_value, vb)
        lo = None if alo is None or blo is None else min(alo, blo)
        hi = None if ahi is None or bhi is None else max(ahi, bhi)
        return (lo, hi)
    if isinstance(e, E.Cast) and dtypes.is_int(e.dtype) and dtypes.is_int(e.value.dtype):
        return _bounds(e.value, vb)
    if e.dtype == "bool":
        return (0, 1)
    return (None, None)


def prove(cond: E.Expr, var_bounds: dict | None = None):
    """True or False if ``cond`` is decided by the bounds, else None."""
    c = simplify(cond, var_bounds)
    if isinstance(c, E.Const):
        return bool(c.value)
    return None


# ------------------------------------------------------------------------------------------
# Simplification
# ------------------------------------------------------------------------------------------


def _fold(e: E.Expr):
    """Constant-fold a node whose operands are all constants; None if not applicable."""
    kids = e.children()
    if not kids or not all(isinstance(k, E.Const) for k in kids):
        return None
    vals = [k.value for k in kids]
    t = e.dtype
    try:
        if isinstance(e, E.Add):
            v = vals[0] + vals[1]
        elif isinstance(e, E.Sub):
            v = vals[0] - vals[1]
        elif isinstance(e, E.Mul):
            v = vals[0] * vals[1]
        elif isinstance(e, E.Div):
            v = vals[0] / vals[1]
        elif isinstance(e, E.FloorDiv):
            v = vals[0] // vals[1]
        elif isinstance(e, E.FloorMod):
            v = vals[0] % vals[1]
        elif isinstance(e, E.Min):
            v = min(vals)
        elif isinstance(e, E.Max):
            v = max(vals)
        elif isinstance(e, E.CmpOp):
            a, b = vals
            v = {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[
                e.symbol
            ]
        elif isinstance(e, E.And):
            v = vals[0] and vals[1]
        elif isinstance(e, E.Or):
            v = vals[0] or vals[1]
        elif isinstance(e, E.Not):
            v = not vals[0]
        elif isinstance(e, E.Cast):
            if dtypes.is_int(t):
                v = math.trunc(vals[0])
            elif dtypes.is_bool(t):
                v = bool(vals[0])
            else:
                v = float(vals[0])
        elif isinstance(e, E.Select):
            return kids[1] if vals[0] else kids[2]
        else:
            return None
    except (ZeroDivisionError, OverflowError, ValueError):
        return None
    if dtypes.is_float(t):
        import numpy as np

        v = float(np.asarray(v, dtype=t))  # round to the dtype, as the kernel would
    elif dtypes.is_int(t):
        v = _wrap(v, t)  # and wrap integers around, as the kernel would
    return E.Const(v, t)


def _is_const(e, value) -> bool:
    return isinstance(e, E.Const) and e.value == value and not isinstance(e.value, bool)


def _simplify_int_div(e, vb):
    """``(c*q + r) // c == q + r // c`` and ``(c*q + r) % c == r % c``, then bound ``r``."""
    c = e.b.value
    aff = Affine.of(e.a).merge_div_mod()
    q = Affine(e.dtype, aff.const // c)
    r = Affine(e.dtype, aff.const % c)
    for k, (t, coeff) in aff.terms.items():
        if coeff % c == 0:
            q.terms[k] = [t, coeff // c]
        else:
            r.terms[k] = [t, coeff]
    r_expr = r.to_expr()
    lo, hi = _bounds(r_expr, vb)
    whole = lo is not None and hi is not None and lo // c == hi // c
    if isinstance(e, E.FloorDiv):
        if whole:
            return q.plus(Affine(e.dtype, lo // c)).to_expr()
        if not q.terms and q.const == 0:
            return _nested_div(E.FloorDiv(r_expr, e.b))
        return q.plus(Affine.of(_nested_div(E.FloorDiv(r_expr, e.b)))).to_expr()
    if whole:
        return r.plus(Affine(e.dtype, -(lo // c) * c)).to_expr()
    return _nested_mod(E.FloorMod(r_expr, e.b))


def _nested_div(e):
    # (x // a) // b == x // (a*b) for positive constants.
    if isinstance(e.a, E.FloorDiv) and isinstance(e.a.b, E.Const) and e.a.b.value > 0:
        return E.FloorDiv(e.a.a, E.Const(e.a.b.value * e.b.value, e.dtype))
    return e


def _nested_mod(e):
    # (x % a) % b == x % b when b divides a.
    if isinstance(e.a, E.FloorMod) and isinstance(e.a.b, E.Const):
        if e.a.b.value % e.b.value == 0:
            return E.FloorMod(e.a.a, e.b)
    return e


def _simplify_node(e: E.Expr, vb: dict):
    folded = _fold(e)
    if folded is not None:
        return folded
    t = e.dtype
    if isinstance(e, (E.Add, E.Sub, E.Mul)):
        if dtypes.is_int(t):
            return Affine.of(e).merge_div_mod().to_expr()
        if isinstance(e, E.Add):
            if _is_const(e.b, 0):
                return e.a
            if _is_const(e.a, 0):
                return e.b
        if isinstance(e, E.Sub) and _is_const(e.b, 0):
            return e.a
        if isinstance(e, E.Mul):
            if _is_const(e.b, 1):
                return e.a
            if _is_const(e.a, 1):
                return e.b
        return e
    if isinstance(e, E.Div) and _is_const(e.b, 1):
        return e.a
    if isinstance(e, (E.FloorDiv, E.FloorMod)) and isinstance(e.b, E.Const) and e.b.value > 0:
        if e.b.value == 1:
            return e.a if isinstance(e, E.FloorDiv) else E.Const(0, t)
        return _simplify_int_div(e, vb)
    if isinstance(e, (E.Min, E.Max)) and dtypes.is_int(t):
        diff = Affine.of(e.a).plus(Affine.of(e.b), -1)
        if not diff.terms:  # a and b differ by a constant: min(x, x + 2) is x
            a_smaller = diff.const <= 0
            return e.a if a_smaller == isinstance(e, E.Min) else e.b
        (alo, ahi), (blo, bhi) = _bounds(e.a, vb), _bounds(e.b, vb)
        a_le_b = ahi is not None and blo is not None and ahi <= blo
        b_le_a = bhi is not None and alo is not None and bhi <= alo
        if a_le_b or b_le_a:
            want_a = a_le_b if isinstance(e, E.Min) else b_le_a
            return e.a if want_a else e.b
        if e.a.same_as(e.b):
            return e.a
        return e
    if isinstance(e, E.CmpOp) and dtypes.is_int(e.a.dtype):
        diff = Affine.of(e.a).plus(Affine.of(e.b), -1).merge_div_mod()
        lo, hi = _bounds(diff.to_expr(), vb)
        decided = _decide(e.symbol, lo, hi)
        if decided is not None:
            return E.Const(decided, "bool")
        return e
    if isinstance(e, E.And):
        for x, y in ((e.a, e.b), (e.b, e.a)):
            if isinstance(x, E.Const):
                return y if x.value else x
        return e
    if isinstance(e, E.Or):
        for x, y in ((e.a, e.b), (e.b, e.a)):
            if isinstance(x, E.Const):
                return x if x.value else y
        return e
    if isinstance(e, E.Select):
        if isinstance(e.condition, E.Const):
            return e.true_value if e.condition.value else e.false_value
        return e
    if isinstance(e, E.Cast) and e.value.dtype == t:
        return e.value
    return e


def _decide(symbol, lo, hi):
    """Decide ``a <op> b`` from bounds [lo, hi] of ``a - b``."""
    if symbol == "<":
        return True if hi is not None and hi < 0 else (False if lo is not None and lo >= 0 else None)
    if symbol == "<=":
        return True if hi is not None and hi <= 0 else (False if lo is not None and lo > 0 else None)
    if symbol == ">":
        return True if lo is not None and lo > 0 else (False if hi is not None and hi <= 0 else None)
    if symbol == ">=":
        return True if lo is not None and lo >= 0 else (False if hi is not None and hi < 0 else None)
    if symbol == "==":
        if lo == hi == 0:
            return True
        if (lo is not None and lo > 0) or (hi is not None and hi < 0):
            return False
        return None
    if symbol == "!=":
        d = _decide("==", lo, hi)
        return None if d is None else not d
    return None


def simplify(e, var_bounds: dict | None = None) -> E.Expr:
    """Simplify ``e``: fold constants, canonicalize affine index arithmetic, use bounds."""
    e = E.convert(e)
    vb = _by_uid(var_bounds)
    return E.post_order_rewrite(e, lambda node: _simplify_node(node, vb))


def canonical_equal(a, b, var_bounds: dict | None = None) -> bool:
    """Whether ``a`` and ``b`` simplify to the same expression."""
    return simplify(a, var_bounds).same_as(simplify(b, var_bounds))


def const_int(e) -> int | None:
    """The value of ``e`` if it simplifies to an integer constant, else None."""
    if isinstance(e, int):
        return e
    s = simplify(e)
    if isinstance(s, E.Const) and dtypes.is_int(s.dtype):
        return s.value
    return None

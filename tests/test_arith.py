"""The simplifier and bound analysis of ``te.arith``: the index arithmetic that split and fuse
leave behind must cancel, and simplification must never change a value."""

import operator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_python
import te
from schedules import create_schedule, lower
from te import arith
from te import expr as E

io, ii, x, y = te.var("io"), te.var("ii"), te.var("x"), te.var("y")
BOUNDS = {io: (0, 9), ii: (0, 31), x: (0, 6), y: (0, 4)}


def simp(e, bounds=BOUNDS):
    return str(te.simplify(e, bounds))


# --- split and fuse cancel --------------------------------------------------------------------

@pytest.mark.parametrize("expr, want", [
    ((io * 32 + ii) // 32, "io"),
    ((io * 32 + ii) % 32, "ii"),
    ((ii + io * 32) // 32, "io"),                     # term order does not matter
    ((io * 32 + ii + 64) // 32, "io + 2"),
    ((io * 32 + ii + 64) % 32, "ii"),
    ((io * 64 + ii) // 32, "io * 2"),                 # 0 <= ii < 32 still
    ((io * 32 + ii) // 8, "io * 4 + ii // 8"),
    ((io * 32 + ii) % 8, "ii % 8"),
    ((x * 7 + y) // 7, "x"),                          # fused (x: 7, y: 5 < 7)
    ((x * 7 + y) % 7, "y"),
])
def test_split_index_cancels(expr, want):
    assert simp(expr) == want


def test_split_index_needs_the_bound_of_the_inner_variable():
    assert simp((io * 32 + ii) // 32, {}) == "ii // 32 + io"
    assert simp((io * 32 + ii) % 32, {}) == "ii % 32"


@pytest.mark.parametrize("expr, want", [
    ((x // 7) * 7 + x % 7, "x"),                      # split then fuse: the parts recombine
    ((x // 4) * 8 + (x % 4) * 2, "x * 2"),
    (((x // 7) * 7 + x % 7) // 7, "x // 7"),
    ((x // 4) // 2, "x // 8"),
    ((ii % 16) % 4, "ii % 4"),
    ((ii % 4) % 16, "ii % 4"),
    # three fused axes (n, y, x) of extents (., 6, 7): n = f // 42 (simplified from
    # f // 7 // 6), y = f // 7 % 6, x = f % 7; the row-major index recombines into f
    (((x // 7 // 6) * 6 + x // 7 % 6) * 7 + x % 7, "x"),
    # the same with a split dividend (an implicit GEMM's K chunk: rc * 3 + ry of (rc, ry, rx))
    (((io * 4 + ii) // 9) * 3 + (io * 4 + ii) // 3 % 3, "(io * 4 + ii) // 3"),
])
def test_div_mod_recombine(expr, want):
    assert simp(expr, {}) == want


def test_fuse_then_split_by_the_inner_extent_gives_plain_indices():
    A = te.placeholder((5, 7), name="A")
    B = te.compute((5, 7), lambda i, j: A[i, j] + 1.0, name="B")
    s = create_schedule(B.op)
    fo, fi = s[B].split(s[B].fuse(*B.op.axis), factor=7)
    text = str(lower(s, [A, B]))
    assert "B[i.j.fused.outer, i.j.fused.inner] = A[i.j.fused.outer, i.j.fused.inner]" in text
    assert "//" not in text and "%" not in text and "if" not in text


def test_split_then_fuse_gives_the_original_index():
    A = te.placeholder((24,), name="A")
    B = te.compute((24,), lambda i: A[i] * 2.0, name="B")
    s = create_schedule(B.op)
    s[B].fuse(*s[B].split(B.op.axis[0], factor=4))
    assert "B[i.outer.i.inner.fused] = A[i.outer.i.inner.fused] * 2.0f" in str(lower(s, [A, B]))


# --- constant folding and canonical forms -----------------------------------------------------

@pytest.mark.parametrize("expr, want", [
    (te.const(3) * 4 + 5, "17"),
    (te.const(-7) // 2, "-4"),                        # floor, not truncation
    (te.const(-7) % 2, "1"),
    (te.const(7) % -2, "-1"),
    (te.floordiv(te.const(7), -2), "-4"),
    (E.min_expr(te.const(3), te.const(-2)), "-2"),
    (E.max_expr(te.const(3), te.const(-2)), "3"),
    (te.const(1.5) * 2.0 - 0.5, "2.5f"),
    (te.const(2.7).astype("int32"), "2"),              # float -> int truncates
    (te.const(-2.7).astype("int32"), "-2"),
    (te.const(3) < 4, "True"),
    (te.const(3) != 3, "False"),
    (~(te.const(1) > 2), "True"),
    (te.if_then_else(te.const(2) > 1, te.const(10), te.const(20)), "10"),
    (te.const(True) & (x < y), "x < y"),
    (te.const(False) & (x < y), "False"),
    (te.const(True) | (x < y), "True"),
    (te.const(False) | (x < y), "x < y"),
])
def test_constant_folding(expr, want):
    assert simp(expr, {}) == want


def test_folded_float_constants_round_to_their_dtype():
    third = te.simplify(te.const(1.0, "float16") / te.const(3.0, "float16"))
    assert third.dtype == "float16" and third.value == float(np.float16(1 / 3))


@pytest.mark.parametrize("expr, want", [
    (x + y - x, "y"),
    (2 * x + 3 * x - 5 * x + 1, "1"),
    ((x + 1) * 3 - 3, "x * 3"),
    (x * 4 + 8 - (x + 2) * 4, "0"),
    (y + x, "x + y"),                                  # terms in a canonical order
    (x - (y - x), "x * 2 - y"),
    (0 - x + 5, "0 - x + 5"),
    (x * 1 + 0, "x"),
])
def test_canonical_affine_forms(expr, want):
    assert simp(expr, {}) == want


def test_canonical_equal():
    assert arith.canonical_equal(x + y, y + x)
    assert arith.canonical_equal((x + y) * 2, y * 2 + x + x)
    assert not arith.canonical_equal(x + y, x - y)


# --- bounds -----------------------------------------------------------------------------------

@pytest.mark.parametrize("expr, want", [
    (io * 32 + ii, (0, 319)),
    ((io * 32 + ii) // 8, (0, 39)),
    (ii % 8, (0, 7)),
    (ii - io, (-9, 31)),
    (E.min_expr(ii, 10), (0, 10)),
    (E.max_expr(ii, 10), (10, 31)),
    (x * y, (0, 24)),
    (te.if_then_else(x < 3, x, y + 10), (0, 14)),
    (ii + te.var("free"), (None, None)),
])
def test_bounds_of(expr, want):
    assert arith.bounds_of(expr, BOUNDS) == want


@pytest.mark.parametrize("cond, want", [
    (ii < 32, True),
    (ii < 31, None),
    (ii >= 0, True),
    (ii > 31, False),
    (io * 32 + ii < 320, True),
    (io * 32 + ii < 319, None),
    (io * 32 + ii >= 320, False),
    ((io * 32 + ii) // 32 == io, True),
    (ii + 1 != 0, True),
    (x * 7 + y < 47, True),
])
def test_prove_comparisons_by_bounds(cond, want):
    assert arith.prove(cond, BOUNDS) is want


@pytest.mark.parametrize("expr, want", [
    (E.min_expr(ii, 32), "ii"),
    (E.max_expr(ii, 32), "32"),
    (E.min_expr(ii, 10), "min(ii, 10)"),
    (te.if_then_else(ii < 32, io, x), "io"),
])
def test_bounds_simplify_min_max_select(expr, want):
    assert simp(expr) == want


# --- property: simplification keeps the value -------------------------------------------------

VARS = [te.var(name) for name in "abcd"]
INT_OPS = {
    E.Add: operator.add, E.Sub: operator.sub, E.Mul: operator.mul,
    E.FloorDiv: operator.floordiv, E.FloorMod: operator.mod, E.Min: min, E.Max: max,
    E.LT: operator.lt, E.LE: operator.le, E.GT: operator.gt, E.GE: operator.ge,
    E.EQ: operator.eq, E.NE: operator.ne, E.And: lambda p, q: p and q,
    E.Or: lambda p, q: p or q,
}


def evaluate(e, env):
    """The value of an integer/bool expression under ``env`` (var name -> int), Python style."""
    if isinstance(e, E.Const):
        return e.value
    if isinstance(e, E.Var):
        return env[e.name]
    if isinstance(e, E.Not):
        return not evaluate(e.a, env)
    if isinstance(e, E.Select):
        return evaluate(e.true_value if evaluate(e.condition, env) else e.false_value, env)
    return INT_OPS[type(e)](evaluate(e.a, env), evaluate(e.b, env))


@st.composite
def int_exprs(draw, depth=4):
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()):
            return draw(st.sampled_from(VARS))
        return te.const(draw(st.integers(-20, 20)))
    kind = draw(st.sampled_from(["+", "-", "*", "//", "%", "min", "max", "select", "split"]))
    a = draw(int_exprs(depth - 1))
    if kind == "*":
        return a * draw(st.integers(-6, 6))
    if kind in ("//", "%"):
        c = draw(st.sampled_from([1, 2, 3, 4, 8, 32, -3, -4]))
        return a // c if kind == "//" else a % c
    if kind == "split":  # what split / fuse produce: (a // c) * c + a % c and a * c + b
        c = draw(st.sampled_from([2, 3, 4, 8]))
        return (a // c) * c + a % c if draw(st.booleans()) else a * c + draw(int_exprs(depth - 1))
    b = draw(int_exprs(depth - 1))
    if kind == "select":
        cond = draw(st.sampled_from([operator.lt, operator.ge, operator.eq]))(a, b)
        if draw(st.booleans()):
            cond = cond & (a != 0)
        return te.if_then_else(cond, a, b)
    return {"+": operator.add, "-": operator.sub, "min": E.min_expr, "max": E.max_expr}[kind](a, b)


@st.composite
def bounded_assignments(draw):
    """Bounds for every variable and one assignment inside them."""
    bounds, env = {}, {}
    for v in VARS:
        lo = draw(st.integers(-10, 10))
        hi = lo + draw(st.sampled_from([0, 1, 3, 7, 31, 40]))
        bounds[v] = (lo, hi)
        env[v.name] = draw(st.integers(lo, hi))
    return bounds, env


@settings(max_examples=300, deadline=None)
@given(int_exprs(), bounded_assignments())
def test_simplify_keeps_the_value(e, bounds_env):
    bounds, env = bounds_env
    want = evaluate(e, env)
    assert evaluate(te.simplify(e, bounds), env) == want
    assert evaluate(te.simplify(e), env) == want
    lo, hi = arith.bounds_of(e, bounds)
    assert (lo is None or lo <= want) and (hi is None or want <= hi)
    for c in (-3, 0, 5):
        decided = arith.prove(e < c, bounds)
        assert decided is None or decided == (want < c)


def test_folded_integers_wrap_around_like_the_kernel(rng):
    # Regression: folding once produced int8 constants such as 200, which numpy refuses to add.
    x8, u8 = te.var("x", "int8"), te.var("u", "uint8")
    assert te.simplify(te.const(100, "int8") * 2).value == -56
    assert str(te.simplify(x8 + 100 + 100)) == "x - 56i8"
    assert str(te.simplify(u8 - 1)) == "u - 1u8"
    assert te.simplify(te.const(250, "uint8") + te.const(10, "uint8")).value == 4
    A = te.placeholder((6,), dtype="int8", name="A")
    B = te.compute((6,), lambda i: A[i] + te.const(100, "int8") + te.const(100, "int8"), name="B")
    a = rng.integers(-9, 10, 6).astype("int8")
    (b,) = run_python(create_schedule(B.op), [A, B], [a])
    np.testing.assert_array_equal(b, a + np.int8(100) + np.int8(100))

"""The tensor-expression language: building tensors and scalar expressions, and what they
compute on the "python" target (checked against numpy)."""

import math

import numpy as np
import pytest
from conftest import random_array, run_python

import te
from runtime import build
from schedules import create_schedule


def elementwise(fn, data, dtype=None):
    """Run ``B[i] = fn(A[i])`` over 1-D ``data``."""
    A = te.placeholder(data.shape, dtype=dtype or str(data.dtype), name="A")
    B = te.compute(data.shape, lambda i: fn(A[i]), name="B")
    return run_python(create_schedule(B.op), [A, B], [data])[0]


# --- tensors ----------------------------------------------------------------------------------

def test_placeholder_attributes():
    A = te.placeholder((3, 4), name="A")
    assert [int(d) for d in A.shape] == [3, 4]
    assert A.dtype == "float32" and A.ndim == 2 and A.name == "A"
    assert isinstance(A.op, te.PlaceholderOp)
    assert A.op.input_tensors == []


def test_compute_attributes():
    A = te.placeholder((3, 4), name="A")
    k = te.reduce_axis((0, 4), name="k")
    B = te.compute((3,), lambda i: te.sum(A[i, k], axis=k), name="B")
    C = te.compute((3, 2), lambda i, j: B[i] + A[i, j], name="C")
    assert isinstance(B.op, te.ComputeOp)
    assert [iv.var.name for iv in B.op.axis] == ["i"]  # named after the lambda's parameters
    assert B.op.reduce_axis == [k] and k.is_reduce
    assert [iv.name for iv in C.op.axis] == ["i", "j"] and C.op.reduce_axis == []
    assert C.op.input_tensors == [B, A]
    assert [int(d) for d in C.shape] == [3, 2] and C.dtype == "float32"


def test_var_and_const():
    n = te.var("n")
    assert n.name == "n" and n.dtype == "int32"
    assert te.var("x", "int64").dtype == "int64"
    assert te.const(3).dtype == "int32"
    assert te.const(3.0).dtype == "float32"
    assert te.const(True).dtype == "bool"
    assert te.const(2, "float64").value == 2.0
    A = te.placeholder((n, 3), name="A")
    assert A.shape[0] is n


def test_symbolic_shape_runs_at_any_size(rng):
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute(A.shape, lambda i: A[i] * 2.0 + 1.0, name="B")
    s = create_schedule(B.op)
    for size in (1, 6):
        a = random_array(rng, size)
        (b,) = run_python(s, [A, B], [a])
        np.testing.assert_allclose(b, a * 2 + 1, rtol=1e-6)


def test_multi_output_compute(rng):
    A = te.placeholder((4, 5), name="A")
    S, D = te.compute((4, 5), lambda i, j: (A[i, j] + 1.0, A[i, j] * A[i, j]), name="SD")
    assert S.op is D.op and (S.value_index, D.value_index) == (0, 1)
    assert S.name == "SD.v0" and D.name == "SD.v1"
    a = random_array(rng, (4, 5))
    s, d = run_python(create_schedule(S.op), [A, S, D], [a])
    np.testing.assert_allclose(s, a + 1, rtol=1e-6)
    np.testing.assert_allclose(d, a * a, rtol=1e-6)


def test_multi_output_consumed_by_a_later_stage(rng):
    A = te.placeholder((6,), name="A")
    S, D = te.compute((6,), lambda i: (A[i] + 1.0, A[i] - 1.0), name="SD")
    P = te.compute((6,), lambda i: S[i] * D[i], name="P")
    a = random_array(rng, 6)
    (p,) = run_python(create_schedule(P.op), [A, P], [a])
    np.testing.assert_allclose(p, (a + 1) * (a - 1), rtol=1e-5)


# --- reductions -------------------------------------------------------------------------------

def test_reduce_axis_with_nonzero_lower_bound(rng):
    A = te.placeholder((5, 9), name="A")
    r = te.reduce_axis((2, 7), name="r")
    assert int(r.dom.min) == 2 and int(r.dom.extent) == 5
    B = te.compute((5,), lambda i: te.sum(A[i, r], axis=r), name="B")
    a = random_array(rng, (5, 9))
    (b,) = run_python(create_schedule(B.op), [A, B], [a])
    np.testing.assert_allclose(b, a[:, 2:7].sum(axis=1), rtol=1e-5)


@pytest.mark.parametrize("reducer, np_reducer", [
    (te.sum, np.sum), (te.max, np.max), (te.min, np.min),
])
def test_builtin_reducers_over_an_axis_list(rng, reducer, np_reducer):
    A = te.placeholder((3, 4, 5), name="A")
    j = te.reduce_axis((0, 4), name="j")
    k = te.reduce_axis((1, 5), name="k")
    B = te.compute((3,), lambda i: reducer(A[i, j, k], axis=[j, k]), name="B")
    a = random_array(rng, (3, 4, 5))
    (b,) = run_python(create_schedule(B.op), [A, B], [a])
    np.testing.assert_allclose(b, np_reducer(a[:, :, 1:], axis=(1, 2)), rtol=1e-5)


@pytest.mark.parametrize("reducer, np_reducer, empty", [
    (te.sum, np.sum, 0.0), (te.max, np.max, np.finfo("float32").min),
    (te.min, np.min, np.finfo("float32").max),
])
def test_reducers_with_where(rng, reducer, np_reducer, empty):
    A = te.placeholder((6, 8), name="A")
    k = te.reduce_axis((0, 8), name="k")
    B = te.compute((6,), lambda i: reducer(A[i, k], axis=k, where=A[i, k] > 0.5), name="B")
    a = random_array(rng, (6, 8))
    a[0] = -1.0  # one row where nothing passes: the identity is the result
    (b,) = run_python(create_schedule(B.op), [A, B], [a])
    want = [np_reducer(row[row > 0.5]) if (row > 0.5).any() else empty for row in a]
    np.testing.assert_allclose(b, np.array(want, "float32"), rtol=1e-5)


def test_where_on_the_reduction_index_itself(rng):
    A = te.placeholder((4, 10), name="A")
    k = te.reduce_axis((3, 10), name="k")
    B = te.compute((4,), lambda i: te.sum(A[i, k], axis=k, where=k % 4 != 0), name="B")
    a = random_array(rng, (4, 10))
    (b,) = run_python(create_schedule(B.op), [A, B], [a])
    np.testing.assert_allclose(b, a[:, [3, 5, 6, 7, 9]].sum(axis=1), rtol=1e-5)


def test_integer_sum(rng):
    A = te.placeholder((5, 6), dtype="int32", name="A")
    k = te.reduce_axis((0, 6), name="k")
    B = te.compute((5,), lambda i: te.sum(A[i, k], axis=k), name="B")
    a = random_array(rng, (5, 6), "int32")
    (b,) = run_python(create_schedule(B.op), [A, B], [a])
    np.testing.assert_array_equal(b, a.sum(axis=1))


def test_comm_reducer_product(rng):
    prod = te.comm_reducer(lambda x, y: x * y, lambda t: te.const(1, t), name="prod")
    A = te.placeholder((3, 4), name="A")
    k = te.reduce_axis((0, 4), name="k")
    B = te.compute((3,), lambda i: prod(A[i, k], axis=k), name="B")
    a = random_array(rng, (3, 4))
    (b,) = run_python(create_schedule(B.op), [A, B], [a])
    np.testing.assert_allclose(b, a.prod(axis=1), rtol=1e-5)


def test_tuple_argmax_from_the_tvm_tutorial(rng):
    # TVM's "Reduction" tutorial, with tvm.tir.Select spelled te.if_then_else.
    def fcombine(x, y):
        lhs = te.if_then_else((x[1] >= y[1]), x[0], y[0])
        rhs = te.if_then_else((x[1] >= y[1]), x[1], y[1])
        return lhs, rhs

    def fidentity(t0, t1):
        return te.const(-1, t0), te.min_value(t1)

    argmax = te.comm_reducer(fcombine, fidentity, name="argmax")
    m = te.var("m")
    n = te.var("n")
    idx = te.placeholder((m, n), name="idx", dtype="int32")
    val = te.placeholder((m, n), name="val", dtype="int32")
    k = te.reduce_axis((0, n), "k")
    T0, T1 = te.compute((m,), lambda i: argmax((idx[i, k], val[i, k]), axis=k), name="T")
    s = create_schedule(T0.op)

    idx_np = np.tile(np.arange(7, dtype="int32"), (5, 1))
    val_np = rng.permuted(np.tile(np.arange(-20, -13, dtype="int32"), (5, 1)), axis=1)
    t0, t1 = run_python(s, [idx, val, T0, T1], [idx_np, val_np])
    np.testing.assert_array_equal(t0, val_np.argmax(axis=1))
    np.testing.assert_array_equal(t1, val_np.max(axis=1))


def test_reduce_init(rng):
    A = te.placeholder((3, 4), name="A")
    k = te.reduce_axis((0, 4), name="k")
    B = te.compute((3,), lambda i: te.sum(A[i, k], axis=k, init=10.0), name="B")
    a = random_array(rng, (3, 4))
    (b,) = run_python(create_schedule(B.op), [A, B], [a])
    np.testing.assert_allclose(b, a.sum(axis=1) + 10, rtol=1e-5)


# --- scalar expressions -----------------------------------------------------------------------

def test_if_then_else(rng):
    a = random_array(rng, 12)
    got = elementwise(lambda x: te.if_then_else(x > 0, x * 2.0, -x), a)
    np.testing.assert_allclose(got, np.where(a > 0, a * 2, -a), rtol=1e-6)


def test_if_then_else_evaluates_only_the_chosen_branch(rng):
    # A[i + 1] is out of bounds at i = 7; the python target would raise if it were evaluated.
    A = te.placeholder((8,), name="A")
    C = te.compute((8,), lambda i: te.if_then_else(i < 7, A[i + 1], 0.0), name="C")
    a = random_array(rng, 8)
    (c,) = run_python(create_schedule(C.op), [A, C], [a])
    np.testing.assert_allclose(c, np.append(a[1:], 0.0))


MATH = [
    ("exp", te.exp, np.exp, (-2, 2)),
    ("log", te.log, np.log, (0.1, 4)),
    ("sqrt", te.sqrt, np.sqrt, (0.1, 4)),
    ("rsqrt", te.rsqrt, lambda x: 1 / np.sqrt(x), (0.1, 4)),
    ("tanh", te.tanh, np.tanh, (-3, 3)),
    ("sigmoid", te.sigmoid, lambda x: 1 / (1 + np.exp(-x)), (-4, 4)),
    ("erf", te.erf, np.vectorize(math.erf), (-2, 2)),
    ("abs", te.abs, np.abs, (-3, 3)),
    ("floor", te.floor, np.floor, (-3, 3)),
    ("ceil", te.ceil, np.ceil, (-3, 3)),
    ("power", lambda x: te.power(x, 1.5), lambda x: np.power(x, 1.5), (0.1, 3)),
    ("pow-operator", lambda x: x ** 2.0, np.square, (-3, 3)),
]


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-6), ("float64", 1e-12), ("float16", 4e-3)])
@pytest.mark.parametrize("name, fn, reference, domain", MATH, ids=[m[0] for m in MATH])
def test_math_intrinsics(rng, name, fn, reference, domain, dtype, rtol):
    x = rng.uniform(*domain, size=9).astype(dtype)
    got = elementwise(fn, x)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, reference(x.astype("float64")).astype(dtype), rtol=rtol,
                               atol=rtol)


def test_round_is_half_to_even_like_numpy_and_onnx():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.4, -0.6], "float32")
    np.testing.assert_array_equal(elementwise(te.round, x), np.rint(x))


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64"])
def test_abs_of_integers(rng, dtype):
    x = random_array(rng, 10, dtype)
    np.testing.assert_array_equal(elementwise(te.abs, x), np.abs(x))


@pytest.mark.parametrize("src, dst", [
    ("float32", "int32"), ("float32", "float64"), ("int32", "float32"), ("int32", "int8"),
    ("float64", "float16"), ("int8", "int64"), ("bool", "float32"), ("uint8", "int32"),
])
def test_astype(rng, src, dst):
    x = random_array(rng, 10, src) * (3 if src.startswith("float") else 1)
    got = elementwise(lambda v: v.astype(dst), x.astype(src))
    assert got.dtype == dst
    np.testing.assert_array_equal(got, x.astype(src).astype(dst))  # float -> int truncates


@pytest.mark.parametrize("divisor", [3, -3, 4, 1])
def test_floordiv_floormod_have_floor_semantics(divisor):
    x = np.arange(-9, 10, dtype="int32")
    np.testing.assert_array_equal(elementwise(lambda v: v // divisor, x), x // divisor)
    np.testing.assert_array_equal(elementwise(lambda v: v % divisor, x), x % divisor)
    np.testing.assert_array_equal(elementwise(lambda v: te.floordiv(v, divisor), x), x // divisor)
    np.testing.assert_array_equal(elementwise(lambda v: te.floormod(v, divisor), x), x % divisor)


def test_floordiv_by_a_negative_tensor_value(rng):
    A = te.placeholder((12,), dtype="int32", name="A")
    B = te.placeholder((12,), dtype="int32", name="B")
    Q = te.compute((12,), lambda i: A[i] // B[i], name="Q")
    R = te.compute((12,), lambda i: A[i] % B[i], name="R")
    a = rng.integers(-20, 20, 12).astype("int32")
    b = rng.choice(np.array([-5, -2, 3, 7], "int32"), 12)
    q, r = run_python(create_schedule([Q.op, R.op]), [A, B, Q, R], [a, b])
    np.testing.assert_array_equal(q, a // b)
    np.testing.assert_array_equal(r, a % b)


COMPARISONS = [
    ("<", lambda a, b: a < b), ("<=", lambda a, b: a <= b), (">", lambda a, b: a > b),
    (">=", lambda a, b: a >= b), ("==", lambda a, b: a == b), ("!=", lambda a, b: a != b),
]


@pytest.mark.parametrize("name, op", COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_comparisons(rng, name, op):
    A = te.placeholder((16,), dtype="int32", name="A")
    B = te.placeholder((16,), dtype="int32", name="B")
    C = te.compute((16,), lambda i: op(A[i], B[i]), name="C")
    assert C.dtype == "bool"
    a, b = rng.integers(-2, 3, 16).astype("int32"), rng.integers(-2, 3, 16).astype("int32")
    (c,) = run_python(create_schedule(C.op), [A, B, C], [a, b])
    np.testing.assert_array_equal(c, op(a, b))


LOGIC = [
    ("all", lambda p, q, r: te.all(p, q, r), lambda p, q, r: p & q & r),
    ("any", lambda p, q, r: te.any(p, q, r), lambda p, q, r: p | q | r),
    ("and-or", lambda p, q, r: p & q | r, lambda p, q, r: p & q | r),
    ("not", lambda p, q, r: ~p | (q & ~r), lambda p, q, r: ~p | (q & ~r)),
    ("logical_fns", lambda p, q, r: te.logical_or(te.logical_and(p, q), te.logical_not(r)),
     lambda p, q, r: (p & q) | ~r),
]


@pytest.mark.parametrize("name, build, reference", LOGIC, ids=[c[0] for c in LOGIC])
def test_logic(rng, name, build, reference):
    X = te.placeholder((3, 16), name="X")
    C = te.compute((16,), lambda i: build(X[0, i] > 0, X[1, i] > 0, X[2, i] > 0), name="C")
    x = random_array(rng, (3, 16))
    (c,) = run_python(create_schedule(C.op), [X, C], [x])
    np.testing.assert_array_equal(c, reference(x[0] > 0, x[1] > 0, x[2] > 0))


def test_bool_tensors(rng):
    A = te.placeholder((10,), dtype="bool", name="A")
    B = te.compute((10,), lambda i: ~A[i], name="B")
    C = te.compute((10,), lambda i: te.if_then_else(B[i], 1.0, -1.0), name="C")
    a = random_array(rng, 10, "bool")
    b, c = run_python(create_schedule([B.op, C.op]), [A, B, C], [a])
    np.testing.assert_array_equal(b, ~a)
    np.testing.assert_array_equal(c, np.where(~a, 1.0, -1.0))


def test_bool_intermediate_buffer(rng):
    # Regression: the python target allocated it as np.bool, which numpy 1.24-1.26 lack.
    A = te.placeholder((10,), name="A")
    M = te.compute((10,), lambda i: A[i] > 0.0, name="M")
    C = te.compute((10,), lambda i: te.if_then_else(M[i], A[i], 0.0), name="C")
    s = create_schedule(C.op)
    assert "dtype=np.bool_)" in build(s, [A, C], target="python").source
    a = random_array(rng, 10)
    (c,) = run_python(s, [A, C], [a])
    np.testing.assert_array_equal(c, np.where(a > 0, a, 0))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int16", "int32",
                                   "int64", "uint8"])
def test_dtypes_flow_through_arithmetic(rng, dtype):
    A = te.placeholder((3, 4), dtype=dtype, name="A")
    B = te.placeholder((3, 4), dtype=dtype, name="B")
    C = te.compute((3, 4), lambda i, j: A[i, j] * B[i, j] + A[i, j] - 1, name="C")
    k = te.reduce_axis((0, 4), name="k")
    D = te.compute((3,), lambda i: te.max(C[i, k], axis=k), name="D")
    assert C.dtype == D.dtype == dtype
    a = (random_array(rng, (3, 4), dtype) % 5 + 1).astype(dtype)  # small: no overflow
    b = (random_array(rng, (3, 4), dtype) % 4 + 1).astype(dtype)
    c, d = run_python(create_schedule([C.op, D.op]), [A, B, C, D], [a, b])
    assert c.dtype == d.dtype == dtype
    want = (a * b + a - 1).astype(dtype)
    np.testing.assert_allclose(c, want, rtol=1e-3)
    np.testing.assert_allclose(d, want.max(axis=1), rtol=1e-3)


def test_min_max_value():
    assert te.max_value("int8").value == 127 and te.min_value("uint8").value == 0
    assert te.max_value("float32").value == float(np.finfo("float32").max)


# --- errors -----------------------------------------------------------------------------------

def _raises(exc, match, fn):
    with pytest.raises(exc, match=match):
        fn()


def test_mixing_dtypes_is_an_error():
    A = te.placeholder((2,), name="A")
    D = te.placeholder((2,), dtype="float64", name="D")
    I = te.placeholder((2,), dtype="int32", name="I")
    L = te.placeholder((2,), dtype="int64", name="L")
    _raises(te.TETypeError, r"float32.*float64.*astype", lambda: A[0] + D[0])
    _raises(te.TETypeError, r"int32.*int64", lambda: I[0] * L[0])
    _raises(te.TETypeError, r"different dtypes", lambda: A[0] < I[0])
    _raises(te.TETypeError, r"non-integer 1.5.*int32", lambda: I[0] + 1.5)
    _raises(te.TETypeError, r"different dtypes", lambda: te.if_then_else(A[0] > 0, A[0], D[0]))
    (A[0] + D[0].astype("float32"))  # the fix the message suggests works


@pytest.mark.parametrize("label, make, match", [
    ("int /", lambda I, A: I[0] / 2, r"`/` on int32 .*floordiv"),
    ("float //", lambda I, A: A[0] // 2.0, r"`//` needs integer operands, got float32"),
    ("float %", lambda I, A: A[0] % 2.0, r"`%` needs integer operands"),
    ("bool +", lambda I, A: (A[0] > 0) + (A[0] > 1), r"`\+` is not defined on bool"),
    ("& floats", lambda I, A: A[0] & A[0], r"needs bool operands, got float32"),
    ("~ int", lambda I, A: ~I[0], r"`not` needs a bool operand, got int32"),
    ("exp int", lambda I, A: te.exp(I[0]), r"te.exp needs a float operand, got int32"),
    ("power int", lambda I, A: te.power(I[0], I[0]), r"te.power needs float operands"),
    ("select cond", lambda I, A: te.if_then_else(A[0], 1.0, 2.0), r"condition .* must be bool"),
    ("truth value", lambda I, A: bool(A[0] > 0), r"no Python truth value.*if_then_else"),
    ("bad dtype", lambda I, A: te.placeholder((2,), dtype="complex64"), r"unsupported dtype"),
])
def test_expression_errors(label, make, match):
    I = te.placeholder((2,), dtype="int32", name="I")
    A = te.placeholder((2,), name="A")
    _raises(te.TetuneError, match, lambda: make(I, A))


@pytest.mark.parametrize("indices, match", [
    ((1,), r"tensor A has 2 dimension\(s\) but was indexed with 1 index"),
    ((1, 2, 3), r"tensor A has 2 dimension\(s\) but was indexed with 3 index"),
])
def test_wrong_number_of_indices(indices, match):
    A = te.placeholder((3, 4), name="A")
    _raises(te.TEValueError, match, lambda: A[indices])


def test_float_index_is_an_error():
    A = te.placeholder((3, 4), name="A")
    _raises(te.TETypeError, r"index 0 of A\[...\] must be an integer, got float32",
            lambda: A[A[0, 0], 1])


def test_compute_errors():
    A = te.placeholder((3, 4), name="A")
    k = te.reduce_axis((0, 4), name="k")
    _raises(te.TEValueError, r"fcompute takes 1 argument\(s\) \(i\) but the shape has 2",
            lambda: te.compute((3, 4), lambda i: A[i, 0]))
    _raises(te.TEValueError, r"compute B: a reduction must be the whole body",
            lambda: te.compute((3,), lambda i: te.sum(A[i, k], axis=k) + 1.0, name="B"))
    _raises(te.TEValueError, r"axis .* is not a reduction axis",
            lambda: te.compute((3,), lambda i: te.sum(A[i, 0], axis=i), name="B"))
    _raises(te.TEValueError, r"dimension 0 of placeholder P is negative",
            lambda: te.placeholder((-1,), name="P"))
    _raises(te.TEValueError, r"unknown thread tag 'threadIdx.w'",
            lambda: te.thread_axis("threadIdx.w"))

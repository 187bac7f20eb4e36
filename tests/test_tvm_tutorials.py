"""TVM's classic tutorials, written as TVM writes them with only the imports changed, on small
shapes and the "python" target.

- "Getting Started with Tensor Expressions" (gallery/tutorial/tensor_expr_get_started.py):
  vector add with a symbolic n; parallel; split + parallel + vectorize; the GPU binding.
- "How to optimize GEMM on CPU" (gallery/how_to/optimize_operators/opt_gemm.py): default,
  blocking, vectorization, loop permutation, array packing, write cache, parallel.

Timing (``time_evaluator``) is left out: tests check results, benchmarks check speed.
"""

import numpy
import numpy as np  # the two tutorials spell it differently
import pytest

import te
from runtime import ArgumentError, build
from schedules import create_schedule, lower
from te import floormod as indexmod  # tvm.tir.indexmod

tgt = "python"


# --- Getting Started with Tensor Expressions --------------------------------------------------

def vector_add():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute(A.shape, lambda i: A[i] + B[i], name="C")
    return A, B, C


def test_get_started_vector_add(rng):
    A, B, C = vector_add()
    s = create_schedule(C.op)
    fadd = build(s, [A, B, C], tgt, name="myadd")

    n = 37
    a = rng.uniform(size=n).astype(A.dtype)
    b = rng.uniform(size=n).astype(B.dtype)
    c = np.zeros(n, dtype=C.dtype)
    fadd(a, b, c)
    np.testing.assert_allclose(c, a + b)

    # "if you pass arrays with different shapes into fadd, an error will be raised"
    with pytest.raises(ArgumentError, match=r"n is 37 \(from an earlier argument\)"):
        fadd(a, b[:-1].copy(), c)

    s[C].parallel(C.op.axis[0])
    text = str(lower(s, [A, B, C], simple_mode=True))
    print(text)
    assert 'for (i, 0, n) "parallel"' in text
    fadd_parallel = build(s, [A, B, C], tgt, name="myadd_parallel")
    fadd_parallel(a, b, c)
    np.testing.assert_allclose(c, a + b)


def test_get_started_vectorize(rng):
    A, B, C = vector_add()
    s = create_schedule(C.op)
    factor = 4
    outer, inner = s[C].split(C.op.axis[0], factor=factor)
    s[C].parallel(outer)
    s[C].vectorize(inner)
    fadd_vector = build(s, [A, B, C], tgt, name="myadd_parallel")
    text = str(lower(s, [A, B, C], simple_mode=True))
    print(text)
    assert 'for (i.outer, 0, (n + 3) // 4) "parallel"' in text
    assert 'for (i.inner, 0, 4) "vectorized"' in text
    for n in (1, 32, 37):
        a = rng.uniform(size=n).astype(A.dtype)
        b = rng.uniform(size=n).astype(B.dtype)
        c = np.zeros(n, dtype=C.dtype)
        fadd_vector(a, b, c)
        np.testing.assert_allclose(c, a + b)


def test_get_started_gpu_binding_runs_serially_on_python(rng):
    A, B, C = vector_add()
    s = create_schedule(C.op)
    bx, tx = s[C].split(C.op.axis[0], factor=64)
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    fadd = build(s, [A, B, C], tgt, name="myadd")
    n = 150
    a = rng.uniform(size=n).astype(A.dtype)
    b = rng.uniform(size=n).astype(B.dtype)
    c = np.zeros(n, dtype=C.dtype)
    fadd(a, b, c)
    np.testing.assert_allclose(c, a + b)
    print(fadd.get_source())
    assert "# thread_binding blockIdx.x" in fadd.get_source()


# --- How to optimize GEMM on CPU --------------------------------------------------------------

# The tutorial's sizes are 1024; the python target interprets every iteration, so this is a
# smaller, non-square problem with the same structure (bn divides M and N, kfactor divides K).
M = 48
K = 20
N = 32
dtype = "float32"
bn = 16
kfactor = 4


@pytest.fixture(scope="module")
def data():
    rng = numpy.random.default_rng(0)
    a = rng.random((M, K)).astype(dtype)
    b = rng.random((K, N)).astype(dtype)
    return a, b, numpy.dot(a, b)


def algorithm():
    k = te.reduce_axis((0, K), "k")
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    C = te.compute((M, N), lambda m, n: te.sum(A[m, k] * B[k, n], axis=k), name="C")
    return k, A, B, C


def packed_algorithm():
    k, A, B, _ = algorithm()
    packedB = te.compute(
        (N / bn, K, bn), lambda bigN, k, littleN: B[k, bigN * bn + littleN], name="packedB"
    )
    C = te.compute(
        (M, N),
        lambda m, n: te.sum(A[m, k] * packedB[n // bn, k, indexmod(n, bn)], axis=k),
        name="C",
    )
    return packedB, A, B, C


def check(s, A, B, C, data):
    a, b, answer = data
    func = build(s, [A, B, C], target=tgt, name="mmult")
    assert func
    c = numpy.zeros((M, N), dtype=dtype)
    func(a, b, c)
    numpy.testing.assert_allclose(c, answer, rtol=1e-5)
    text = str(lower(s, [A, B, C], simple_mode=True))
    print(text)
    return text


def test_gemm_default(data):
    k, A, B, C = algorithm()
    s = create_schedule(C.op)
    text = check(s, A, B, C, data)
    assert "for (k, 0, 20)" in text


def test_gemm_blocking(data):
    k, A, B, C = algorithm()
    s = create_schedule(C.op)
    mo, no, mi, ni = s[C].tile(C.op.axis[0], C.op.axis[1], bn, bn)
    (kaxis,) = s[C].op.reduce_axis
    ko, ki = s[C].split(kaxis, factor=kfactor)
    s[C].reorder(mo, no, ko, ki, mi, ni)
    text = check(s, A, B, C, data)
    assert "for (k.inner, 0, 4) {\n          for (m.inner, 0, 16)" in text


def test_gemm_vectorization(data):
    k, A, B, C = algorithm()
    s = create_schedule(C.op)
    mo, no, mi, ni = s[C].tile(C.op.axis[0], C.op.axis[1], bn, bn)
    (kaxis,) = s[C].op.reduce_axis
    ko, ki = s[C].split(kaxis, factor=kfactor)
    s[C].reorder(mo, no, ko, ki, mi, ni)
    s[C].vectorize(ni)
    text = check(s, A, B, C, data)
    assert 'for (n.inner, 0, 16) "vectorized"' in text


def test_gemm_loop_permutation(data):
    k, A, B, C = algorithm()
    s = create_schedule(C.op)
    mo, no, mi, ni = s[C].tile(C.op.axis[0], C.op.axis[1], bn, bn)
    (kaxis,) = s[C].op.reduce_axis
    ko, ki = s[C].split(kaxis, factor=kfactor)
    s[C].reorder(mo, no, ko, mi, ki, ni)
    s[C].vectorize(ni)
    text = check(s, A, B, C, data)
    assert "for (m.inner, 0, 16) {\n          for (k.inner, 0, 4)" in text


def test_gemm_array_packing(data):
    packedB, A, B, C = packed_algorithm()
    s = create_schedule(C.op)
    mo, no, mi, ni = s[C].tile(C.op.axis[0], C.op.axis[1], bn, bn)
    (kaxis,) = s[C].op.reduce_axis
    ko, ki = s[C].split(kaxis, factor=kfactor)
    s[C].reorder(mo, no, ko, mi, ki, ni)
    s[C].vectorize(ni)
    bigN, _, littleN = s[packedB].op.axis
    s[packedB].vectorize(littleN)
    s[packedB].parallel(bigN)
    text = check(s, A, B, C, data)
    assert "allocate packedB[float32 * 2, 20, 16]" in text
    # n // bn and n % bn of the tiled n cancel to the tile loops.
    assert "packedB[n.outer, k.outer * 4 + k.inner, n.inner]" in text


def write_cache_schedule(parallel):
    packedB, A, B, C = packed_algorithm()
    s = create_schedule(C.op)
    CC = s.cache_write(C, "global")
    mo, no, mi, ni = s[C].tile(C.op.axis[0], C.op.axis[1], bn, bn)
    s[CC].compute_at(s[C], no)
    mc, nc = s[CC].op.axis
    (kaxis,) = s[CC].op.reduce_axis
    ko, ki = s[CC].split(kaxis, factor=kfactor)
    s[CC].reorder(ko, mc, ki, nc)
    s[CC].vectorize(nc)
    s[CC].unroll(ki)
    if parallel:
        s[C].parallel(mo)
    bigN, _, littleN = s[packedB].op.axis
    s[packedB].vectorize(littleN)
    s[packedB].parallel(bigN)
    return s, A, B, C


def test_gemm_write_cache(data):
    s, A, B, C = write_cache_schedule(parallel=False)
    text = check(s, A, B, C, data)
    assert "allocate C.global[float32 * 16, 16], storage_scope = global" in text
    assert 'for (k.inner, 0, 4) "unrolled"' in text


def test_gemm_parallel(data):
    s, A, B, C = write_cache_schedule(parallel=True)
    text = check(s, A, B, C, data)
    assert 'for (m.outer, 0, 3) "parallel"' in text

"""The "cpu" target (loop IR -> numba): every kernel is checked against numpy and against
the "python" target on random data.  Shapes are small and compiled modules are shared by
module-scoped fixtures, because each numba compile costs 0.3-3 s on this machine."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import matmul, write_cache_for_blocks

import te
from runtime import BuildError, build
from runtime.codegen_cpu import NOREASSOC_FASTMATH, CodegenWarning, CpuOptions
from schedules import create_schedule

REPO = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(1234)


@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory):
    # A private kernel cache: every build here compiles for real, and leaves nothing behind.
    old = os.environ.get("TETUNE_CACHE_DIR")
    os.environ["TETUNE_CACHE_DIR"] = str(tmp_path_factory.mktemp("kernels"))
    yield
    if old is None:
        os.environ.pop("TETUNE_CACHE_DIR", None)
    else:
        os.environ["TETUNE_CACHE_DIR"] = old


def rand(*shape, dtype="float32", lo=-1.0, hi=1.0):
    return RNG.uniform(lo, hi, size=shape).astype(dtype)


def both(s, args, inputs, out_shapes, out_dtypes=None, target="cpu"):
    """Build for ``target`` and "python", run both on ``inputs``; return (module, cpu outputs,
    python outputs).  Outputs start as random garbage, never zeros."""
    out_dtypes = out_dtypes or ["float32"] * len(out_shapes)
    cpu = build(s, args, target=target)
    py = build(s, args, target="python")
    results = []
    for m in (cpu, py):
        outs = [rand(*shp, dtype=dt) if dt.startswith("float") else
                RNG.integers(-9, 9, size=shp).astype(dt) for shp, dt in zip(out_shapes, out_dtypes)]
        m(*inputs, *outs)
        results.append(outs)
    return cpu, results[0], results[1]


def close(a, b, rtol=1e-5, atol=1e-5):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------------------
# Annotations
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def annotated():
    """One elementwise kernel with every annotation: parallel outer, unrolled middle,
    vectorized inner, and a non-dividing split."""
    m, n = 37, 70
    A = te.placeholder((m, n), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute((m, n), lambda i, j: A[i, j] * 2.0 + B[j], name="C")
    s = create_schedule(C.op)
    i, j = C.op.axis
    io, ii = s[C].split(i, factor=4)  # 37 = 9*4 + 1: guarded
    jo, ji = s[C].split(j, factor=16)  # 70 = 4*16 + 6: guarded
    s[C].reorder(io, jo, ii, ji)
    s[C].parallel(io)
    s[C].unroll(ii)
    s[C].vectorize(ji)
    a, b = rand(m, n), rand(n)
    mod, got, ref = both(s, [A, B, C], [a, b], [(m, n)])
    return mod, a, b, got[0], ref[0]


def test_annotations_compute_the_right_values(annotated):
    mod, a, b, got, ref = annotated
    close(got, a * 2 + b)
    close(got, ref, rtol=0, atol=0)


def test_annotation_mapping_in_source(annotated):
    src = annotated[0].source
    assert "@numba.njit(cache=True" in src and "parallel={'prange': True, 'fusion': False}" in src
    assert "boundscheck=False" in src and "error_model='numpy'" in src
    assert src.count("prange(") == 1
    # i.inner (extent 4) is unrolled: its loop is gone, its values are constants
    assert "for i_inner" not in src and "i_outer * 4 + 3" in src
    # the vectorized loop is a plain range whose extent absorbed the edge guard
    assert "for j_inner in range(min(16, 70 - j_outer * 16))" in src
    assert annotated[0].build_info["fastmath"] is True  # no register tile: full fastmath


def test_nested_parallel_becomes_range():
    m, n = 6, 9
    A = te.placeholder((m, n), name="A")
    C = te.compute((m, n), lambda i, j: A[i, j] + 1.0, name="C")
    s = create_schedule(C.op)
    i, j = C.op.axis
    s[C].parallel(i)
    s[C].parallel(j)
    a = rand(m, n)
    mod, got, ref = both(s, [A, C], [a], [(m, n)])
    close(got[0], a + 1)
    close(got[0], ref[0], rtol=0, atol=0)
    assert mod.source.count("prange(") == 1
    assert "in range(9)" in mod.source


def test_no_parallel_loop_means_parallel_false():
    A = te.placeholder((10,), name="A")
    C = te.compute((10,), lambda i: A[i] * A[i], name="C")
    s = create_schedule(C.op)
    mod = build(s, [A, C], target="cpu")
    assert "parallel=False" in mod.source and "prange(" not in mod.source.split("import")[-1]
    a, c = rand(10), rand(10)
    mod(a, c)
    close(c, a * a)


def test_too_large_unroll_falls_back_to_a_loop():
    n = 64
    A = te.placeholder((n, n), name="A")
    C = te.compute((n, n), lambda i, j: A[i, j] - 0.5, name="C")
    s = create_schedule(C.op)
    i, j = C.op.axis
    s[C].unroll(i)
    s[C].unroll(j)  # 64*64 = 4096 statements > max_unroll (1024)
    with pytest.warns(CodegenWarning, match="max_unroll"):
        mod = build(s, [A, C], target="cpu")
    src = mod.source
    assert "for i in range(64)" in src  # the outer loop stayed a loop ...
    assert "for j in" not in src  # ... the inner one (64 statements) was unrolled
    a, c = rand(n, n), rand(n, n)
    mod(a, c)
    close(c, a - 0.5)


def test_unroll_limit_flag():
    A = te.placeholder((8, 8), name="A")
    C = te.compute((8, 8), lambda i, j: A[i, j] * 3.0, name="C")
    s = create_schedule(C.op)
    s[C].unroll(C.op.axis[0])
    s[C].unroll(C.op.axis[1])
    with pytest.warns(CodegenWarning):
        mod = build(s, [A, C], target="cpu -max_unroll=16 -parallel=0")
    assert "for i in range(8)" in mod.source
    a, c = rand(8, 8), rand(8, 8)
    mod(a, c)
    close(c, a * 3)


def test_target_flags():
    A = te.placeholder((5,), name="A")
    C = te.compute((5,), lambda i: A[i] + 1.0, name="C")
    s = create_schedule(C.op)
    s[C].parallel(C.op.axis[0])
    mod = build(s, [A, C], target="cpu -fastmath=off -parallel=0")
    assert "fastmath=False" in mod.source and "parallel=False" in mod.source
    assert "prange(" not in mod.source.split("import")[-1]
    a, c = rand(5), rand(5)
    mod(a, c)
    close(c, a + 1)
    with pytest.raises(BuildError, match="unknown cpu target flag"):
        build(s, [A, C], target="cpu -bogus=1")
    with pytest.raises(BuildError, match="fastmath must be"):
        CpuOptions.parse(["-fastmath=sometimes"])
    # TVM's llvm target string is accepted; its -mcpu is ignored (numba targets the host)
    assert build(s, [A, C], target="llvm -mcpu=skylake-avx512 -parallel=0").target == "cpu"


# ------------------------------------------------------------------------------------------
# Register tiles
# ------------------------------------------------------------------------------------------


def matmul_tiled(n, m, k_, mr, nr, unroll_rows=True, ksplit=None):
    A, B, C = matmul(n, k_, m)
    s = create_schedule(C.op)
    CC = s.cache_write(C, "local")
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], x_factor=mr, y_factor=nr)
    s[CC].compute_at(s[C], jo)
    mc, nc = s[CC].op.axis
    (kk,) = s[CC].op.reduce_axis
    if ksplit:
        ko, ki = s[CC].split(kk, factor=ksplit)
        s[CC].reorder(ko, ki, mc, nc)
        s[CC].unroll(ki)
    else:
        s[CC].reorder(kk, mc, nc)
    if unroll_rows:
        s[CC].unroll(mc)
        s[C].unroll(ii)
    s[CC].vectorize(nc)
    s[C].vectorize(ji)
    s[C].parallel(io)
    return s, [A, B, C]


@pytest.fixture(scope="module")
def tiled():
    n, m, k = 24, 32, 19
    s, args = matmul_tiled(n, m, k, 4, 16)
    a, b = rand(n, k), rand(k, m)
    mod, got, ref = both(s, args, [a, b], [(n, m)])
    return mod, a, b, got[0], ref[0]


def test_register_tile_is_correct(tiled):
    mod, a, b, got, ref = tiled
    close(got, a @ b, rtol=1e-5, atol=1e-5)
    close(got, ref, rtol=1e-5, atol=1e-6)


def test_register_tile_becomes_scalar_locals(tiled):
    mod = tiled[0]
    src = mod.source
    assert mod.build_info["register_tiles"] == ["C.local"]
    assert "C_local_0_0 = " in src and "C_local_3_15 = " in src
    assert "C_local = np.empty" not in src and "C_local[" not in src
    # a reduction loop carries the tile: fastmath without reassoc
    assert mod.build_info["fastmath"] == set(NOREASSOC_FASTMATH)
    assert "'reassoc'" not in src and "fastmath={" in src


def test_register_tile_vectorizes(tiled):
    stats = tiled[0].vector_stats()
    assert stats["zmm_fma"] + stats["ymm_fma"] > 0, stats
    assert stats["gathers"] == 0, stats
    asm = tiled[0].asm()
    assert "vfmadd" in asm and asm == tiled[0].get_source("asm")


def test_tile_with_serial_loop_stays_an_array_and_is_hoisted():
    # rows not unrolled: C.local cannot be scalarized; it becomes one array per thread
    n, m, k = 20, 24, 9
    s, args = matmul_tiled(n, m, k, 8, 8, unroll_rows=False, ksplit=4)
    a, b = rand(n, k), rand(k, m)
    mod, got, ref = both(s, args, [a, b], [(n, m)])
    close(got[0], a @ b)
    close(got[0], ref[0], rtol=1e-5, atol=1e-6)
    assert mod.build_info["register_tiles"] == []
    assert any("C.local stays an array" in n_ for n_ in mod.build_info["notes"])
    body = mod.source.split("def main_body0")[1].split("\ndef ")[0]
    lines = body.splitlines()
    alloc = [ln for ln in lines if "C_local = np.empty((8, 8)" in ln]
    assert len(alloc) == 1
    # hoisted out of the serial j.outer loop, to the top of the (outlined) prange body
    assert lines.index(alloc[0]) < min(n_ for n_, ln in enumerate(lines) if "for j_outer" in ln)


def test_non_dividing_register_tile():
    # like the example of the issue: 70x70, 3x16 tiles, k split by 4: every dimension guarded
    n = 70
    A, B, C = matmul(n, n, n)
    s = create_schedule(C.op)
    CC, (io, jo, ii, ji) = write_cache_for_blocks(s, C, 3, 16)
    s[CC].unroll(s[CC].op.axis[0])
    s[C].unroll(ii)
    s[C].vectorize(ji)
    s[C].parallel(io)
    a, b = rand(n, n), rand(n, n)
    mod, got, ref = both(s, [A, B, C], [a, b], [(n, n)])
    assert mod.build_info["register_tiles"] == ["C.local"]
    # whole tiles take the unrolled path without guards, edge tiles a loop nest
    assert any("guard-free path" in note for note in mod.build_info["notes"])
    assert "C_local_edge = np.empty((3, 16)" in mod.source
    close(got[0], a @ b, rtol=1e-4, atol=1e-5)
    close(got[0], ref[0], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------
# Symbolic extents, dtypes, intrinsics
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def symbolic():
    n = te.var("n")
    A = te.placeholder((n, 8), name="A")
    k = te.reduce_axis((0, 8), name="k")
    R = te.compute((n,), lambda i: te.sum(A[i, k] * A[i, k], axis=k), name="R")
    s = create_schedule(R.op)
    io, ii = s[R].split(R.op.axis[0], factor=16)
    s[R].parallel(io)
    s[R].vectorize(ii)
    return build(s, [A, R], target="cpu"), build(s, [A, R], target="python")


@pytest.mark.parametrize("n", [1, 16, 53])
def test_symbolic_extent(symbolic, n):
    cpu, py = symbolic
    a = rand(n, 8)
    r1, r2 = rand(n), rand(n)
    cpu(a, r1)
    py(a, r2)
    close(r1, (a * a).sum(axis=1))
    close(r1, r2)


def test_symbolic_local_buffer_and_shape_check(symbolic):
    cpu = symbolic[0]
    with pytest.raises(Exception, match="dimension"):
        cpu(rand(4, 8), rand(5))


UNARY = {
    "exp": (te.exp, np.exp, (-5, 5)),
    "log": (te.log, np.log, (0.01, 10)),
    "tanh": (te.tanh, np.tanh, (-4, 4)),
    "sigmoid": (te.sigmoid, lambda x: 1 / (1 + np.exp(-x)), (-8, 8)),
    "erf": (te.erf, None, (-3, 3)),
    "sqrt": (te.sqrt, np.sqrt, (0.01, 10)),
    "rsqrt": (te.rsqrt, lambda x: 1 / np.sqrt(x), (0.01, 10)),
    "floor": (te.floor, np.floor, (-5, 5)),
    "ceil": (te.ceil, np.ceil, (-5, 5)),
    "round": (te.round, np.rint, (-5, 5)),
    "abs": (te.abs, np.abs, (-5, 5)),
}


def _unary(fn, src):
    return lambda i: fn(src[i])


@pytest.fixture(scope="module", params=["float32", "float64"])
def transcendental(request):
    """One kernel per dtype computing every unary intrinsic into its own output."""
    dtype = request.param
    n = 50
    A = te.placeholder((n,), name="A", dtype=dtype)
    X = te.placeholder((n,), name="X", dtype=dtype)  # positive inputs for log/sqrt/rsqrt
    outs = []
    for name, (fn, _, (lo, hi)) in UNARY.items():
        src = X if lo > 0 else A
        outs.append(te.compute((n,), _unary(fn, src), name=f"o_{name}"))
    P = te.compute((n,), lambda i: te.power(X[i], A[i]), name="o_power")
    outs.append(P)
    s = create_schedule([o.op for o in outs])
    for o in outs:
        s[o].vectorize(o.op.axis[0])
    a = rand(n, dtype=dtype, lo=-3, hi=3)
    x = rand(n, dtype=dtype, lo=0.05, hi=8)
    mod, got, ref = both(s, [A, X] + outs, [a, x], [(n,)] * len(outs), [dtype] * len(outs))
    return dtype, mod, a, x, got, ref


def test_transcendentals(transcendental):
    import math

    dtype, mod, a, x, got, ref = transcendental
    rtol = 2e-6 if dtype == "float32" else 1e-12
    for (name, (_, np_fn, (lo, _hi))), g, r in zip(UNARY.items(), got, ref):
        src = x if lo > 0 else a
        want = (np.array([math.erf(v) for v in src.astype("float64")]) if np_fn is None
                else np_fn(src.astype("float64")))
        close(g, want.astype(dtype), rtol=rtol, atol=1e-6 if dtype == "float32" else 1e-12)
        close(g, r, rtol=rtol, atol=1e-6 if dtype == "float32" else 1e-12)
        assert g.dtype == np.dtype(dtype), name
    close(got[-1], np.power(x, a), rtol=1e-5)
    src = mod.source
    assert "fast_exp(" in src and "fast_erf(" in src and "from runtime.fastmath import" in src
    assert "np.sqrt(" in src


def test_float32_exp_loop_is_vectorized(transcendental):
    dtype, mod = transcendental[:2]
    if dtype != "float32":
        pytest.skip("float64 uses libm")
    stats = mod.vector_stats()
    assert stats["zmm_ops"] + stats["ymm_ops"] > 0
    # the float32 polynomials are inlined: only float64 / power may call libm
    assert "expf" not in mod.asm()


def test_integer_select_and_cast():
    n = 40
    A = te.placeholder((n,), name="A", dtype="int32")
    B = te.placeholder((n,), name="B", dtype="float32")
    C = te.compute((n,), lambda i: te.if_then_else(A[i] % 3 == 0, A[i] // 2, A[i] * 5 - 7),
                   name="C")
    D = te.compute((n,), lambda i: (B[i] * 10.0).astype("int32").astype("float32") + 0.25,
                   name="D")
    s = create_schedule([C.op, D.op])
    a = RNG.integers(-50, 50, size=n).astype("int32")
    b = rand(n)
    mod, got, ref = both(s, [A, B, C, D], [a, b], [(n,), (n,)], ["int32", "float32"])
    np.testing.assert_array_equal(got[0], np.where(a % 3 == 0, a // 2, a * 5 - 7))
    np.testing.assert_array_equal(got[0], ref[0])
    close(got[1], np.trunc(b * np.float32(10)).astype("float32") + 0.25)
    close(got[1], ref[1], rtol=0, atol=0)
    assert "FLOAT32_0p25 = np.float32(0.25)" in mod.source


# ------------------------------------------------------------------------------------------
# Multi-stage pipelines and tuple reductions
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def softmax():
    m, n = 13, 40
    A = te.placeholder((m, n), name="A")
    k1 = te.reduce_axis((0, n), name="k1")
    k2 = te.reduce_axis((0, n), name="k2")
    mx = te.compute((m,), lambda i: te.max(A[i, k1], axis=k1), name="mx")
    ex = te.compute((m, n), lambda i, j: te.exp(A[i, j] - mx[i]), name="ex")
    sm = te.compute((m,), lambda i: te.sum(ex[i, k2], axis=k2), name="sm")
    out = te.compute((m, n), lambda i, j: ex[i, j] / sm[i], name="out")
    s = create_schedule(out.op)
    i, j = out.op.axis
    s[out].parallel(i)
    s[out].vectorize(j)
    s[mx].compute_at(s[out], i)
    s[ex].compute_at(s[out], i)
    s[sm].compute_at(s[out], i)
    s[ex].vectorize(ex.op.axis[1])
    a = rand(m, n, lo=-4, hi=4)
    mod, got, ref = both(s, [A, out], [a], [(m, n)])
    return mod, a, got[0], ref[0]


def test_fused_softmax(softmax):
    mod, a, got, ref = softmax
    e = np.exp(a - a.max(axis=1, keepdims=True))
    close(got, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    close(got, ref, rtol=1e-5, atol=1e-6)
    assert mod.source.count("prange(") == 1
    # the intermediate rows live inside the parallel loop, one per thread (not hoisted out)
    assert "def main_body0" in mod.source
    assert "ex = np.empty((1, 40)" in mod.source.split("def main_body0")[1].split("\ndef ")[0]


def test_inline_and_cache_read_pipeline():
    m, n = 16, 33
    A = te.placeholder((m, n), name="A")
    bias = te.placeholder((n,), name="bias")
    scaled = te.compute((m, n), lambda i, j: A[i, j] * 0.5, name="scaled")
    biased = te.compute((m, n), lambda i, j: scaled[i, j] + bias[j], name="biased")
    relu = te.compute((m, n), lambda i, j: te.max_value("float32").astype("float32") * 0.0
                      + te.if_then_else(biased[i, j] > 0.0, biased[i, j], 0.0), name="relu")
    s = create_schedule(relu.op)
    s[scaled].compute_inline()
    AL = s.cache_read(A, "local", [scaled])
    io, ii = s[relu].split(relu.op.axis[0], factor=4)
    s[relu].parallel(io)
    s[biased].compute_at(s[relu], ii)
    s[AL].compute_at(s[relu], ii)
    a, b = rand(m, n), rand(n)
    mod, got, ref = both(s, [A, bias, relu], [a, b], [(m, n)])
    close(got[0], np.maximum(a * 0.5 + b, 0))
    close(got[0], ref[0], rtol=0, atol=0)


@pytest.fixture(scope="module")
def argmax_module():
    def fcombine(x, y):
        pick = x[1] >= y[1]
        return te.if_then_else(pick, x[0], y[0]), te.if_then_else(pick, x[1], y[1])

    def fidentity(t0, t1):
        return te.const(-1, t0), te.min_value(t1)

    argmax = te.comm_reducer(fcombine, fidentity, name="argmax")
    m, n = 21, 37
    A = te.placeholder((m, n), name="A")
    k = te.reduce_axis((0, n), name="k")
    idx, val = te.compute((m,), lambda i: argmax((k.var, A[i, k]), axis=k), name="am")
    s = create_schedule(idx.op)
    s[idx].parallel(idx.op.axis[0])
    a = rand(m, n)
    mod, got, ref = both(s, [A, idx, val], [a], [(m,), (m,)], ["int32", "float32"])
    return a, got, ref


def test_tuple_reduction_argmax(argmax_module):
    a, got, ref = argmax_module
    np.testing.assert_array_equal(got[0], a.argmax(axis=1))
    np.testing.assert_array_equal(got[1], a.max(axis=1))
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])


def test_storage_align_buffer():
    m, n = 8, 10
    A = te.placeholder((m, n), name="A")
    T = te.compute((m, n), lambda i, j: A[i, j] + 1.0, name="T")
    C = te.compute((m, n), lambda i, j: T[i, j] * T[i, j], name="C")
    s = create_schedule(C.op)
    s[T].storage_align(T.op.axis[0], 16, 3)
    a = rand(m, n)
    mod, got, ref = both(s, [A, C], [a], [(m, n)])
    close(got[0], (a + 1) ** 2)
    close(got[0], ref[0], rtol=0, atol=0)


# ------------------------------------------------------------------------------------------
# Module, cache, environment
# ------------------------------------------------------------------------------------------


def test_module_api_and_errors(tiled):
    mod = tiled[0]
    assert mod.target == "cpu"
    assert mod.get_source() == mod.source
    assert "define" in mod.get_source("llvm")
    assert mod.build_info["compile_seconds"] > 0
    with pytest.raises(ValueError):
        mod.get_source("ptx")
    a = rand(24, 19)
    with pytest.raises(Exception, match="dtype"):
        mod(a.astype("float64"), rand(19, 32), rand(24, 32))


def test_python_module_has_no_asm():
    A = te.placeholder((3,), name="A")
    C = te.compute((3,), lambda i: A[i] + 1.0, name="C")
    py = build(create_schedule(C.op), [A, C], target="python")
    with pytest.raises(Exception, match="cpu target"):
        py.asm()


def test_rebuild_in_process_reuses_the_kernel(annotated):
    # same source -> same cache file -> the already compiled module is returned
    mod = annotated[0]
    A = te.placeholder((37, 70), name="A")
    again = build(mod.func, target="cpu")
    assert again.kernel is mod.kernel
    assert again.build_info["compile_seconds"] < 0.5
    del A


def test_slp_vectorizer_is_on():
    from numba.core import config

    assert config.SLP_VECTORIZE == 1


def test_slp_turned_on_when_numba_was_imported_first(tmp_path):
    code = (
        "import warnings, numba\n"
        "from numba.core import config\n"
        "assert config.SLP_VECTORIZE == 0\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import runtime\n"
        "assert config.SLP_VECTORIZE == 1, config.SLP_VECTORIZE\n"
        "assert any('SLP' in str(x.message) for x in w), [str(x.message) for x in w]\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_SLP_VECTORIZE"}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_barrier_is_rejected():
    from schedules import ir
    from te import expr as E

    buf = ir.Buffer("X", (4,), "float32")
    func = ir.PrimFunc("k", [buf], [], ir.seq([ir.Barrier(),
                                                ir.Store(buf, [E.const(0)], E.const(1.0))]))
    with pytest.raises(BuildError, match="barrier"):
        build(func, target="cpu")


@pytest.mark.slow
def test_warm_build_in_a_fresh_process_hits_the_cache(tmp_path):
    code = (
        "import te, time\n"
        "from schedules import create_schedule\n"
        "from runtime import build\n"
        "A = te.placeholder((64, 64), name='A')\n"
        "C = te.compute((64, 64), lambda i, j: te.exp(A[i, j]), name='C')\n"
        "s = create_schedule(C.op)\n"
        "s[C].parallel(C.op.axis[0]); s[C].vectorize(C.op.axis[1])\n"
        "m = build(s, [A, C], target='cpu')\n"
        "print(m.build_info['cache_hit'])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), TETUNE_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=300) for _ in range(2)]
    assert [r.stdout.strip() for r in runs] == ["False", "True"], [r.stderr for r in runs]


def test_no_warnings_for_plain_kernels(annotated):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CodegenWarning)
        build(annotated[0].func, target="cpu")


def test_vectorized_loop_with_constant_extent_stays_a_vector_loop():
    # TVM tutorial's "loop permutation": the contiguous inner loop must become vector FMAs
    # (LLVM would otherwise unroll it completely and vectorize an outer loop with gathers).
    n = 64
    A, B, C = matmul(n, n, n)
    s = create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], 32, 32)
    ko, ki = s[C].split(s[C].op.reduce_axis[0], factor=4)
    s[C].reorder(xo, yo, ko, xi, ki, yi)
    s[C].vectorize(yi)
    a, b = rand(n, n), rand(n, n)
    mod, got, ref = both(s, [A, B, C], [a, b], [(n, n)])
    close(got[0], a @ b, rtol=1e-4, atol=1e-5)
    close(got[0], ref[0], rtol=1e-5, atol=1e-5)
    assert "range(32 + opaque0)" in mod.source
    stats = mod.vector_stats()
    assert stats["zmm_fma"] > 0 and stats["gathers"] == 0, stats


def test_explicit_scalar_arguments():
    n = te.var("n")
    alpha = te.var("alpha", "float32")
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i] * alpha + 1.0, name="C")
    s = create_schedule(C.op)
    s[C].vectorize(C.op.axis[0])
    cpu = build(s, [A, alpha, C], target="cpu")
    py = build(s, [A, alpha, C], target="python")
    a = rand(13)
    c1, c2 = rand(13), rand(13)
    cpu(a, 2.5, c1)
    py(a, 2.5, c2)
    close(c1, a * np.float32(2.5) + 1)
    close(c1, c2, rtol=1e-6, atol=1e-6)  # fastmath contracts a * alpha + 1 into one FMA
    cpu(rand(7), -1.0, rand(7))
    assert len(cpu.kernel.signatures) == 1  # the call matched the signature compiled at build


def test_user_names_cannot_shadow_generated_ones():
    A = te.placeholder((6,), name="fast_exp")
    B = te.placeholder((6,), name="np")
    C = te.compute((6,), lambda i: te.exp(A[i]) + B[i], name="prange")
    s = create_schedule(C.op)
    s[C].parallel(C.op.axis[0])
    a, b = rand(6), rand(6)
    mod, got, ref = both(s, [A, B, C], [a, b], [(6,)])
    close(got[0], np.exp(a) + b, rtol=2e-6)
    close(got[0], ref[0], rtol=2e-6)


def test_prange_inside_an_unrolled_consumer_loop():
    # Found by the cpu property test: each unrolled copy of the consumer loop runs a prange
    # that fills B and then reads it. numba's parfor fusion used to move the read of B above
    # the prange (it cannot see writes made by an outlined prange body).
    H, W, P = 6, 7, 9
    A = te.placeholder((P, P), name="A")
    B = te.compute((P, P), lambda i, j: A[i, j] * 2.0 + 1.0, name="B")
    C = te.compute((H, W), lambda i, j: B[i, j], name="C")
    s = create_schedule(C.op)
    fused = s[C].fuse(*C.op.axis)
    s[C].unroll(fused)
    s[B].compute_at(s[C], fused)
    bi, bj = s[B].op.axis
    jo, ji = s[B].split(bj, nparts=4)
    io, ii = s[B].split(bi, nparts=2)
    rows = s[B].fuse(io, ii)
    s[B].reorder(jo, rows, ji)
    s[B].unroll(jo)
    s[B].parallel(rows)
    f = build(s, [A, C], target="cpu")
    a = np.random.default_rng(3).standard_normal((P, P), dtype=np.float32)
    c = np.empty((H, W), np.float32)
    f(a, c)
    np.testing.assert_allclose(c, (2 * a + 1)[:H, :W], rtol=1e-6)
    assert f.source.count("np.empty((1, 1)") == 1  # the unrolled copies share one buffer

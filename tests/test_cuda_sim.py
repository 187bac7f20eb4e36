"""The cuda target in numba's CUDA simulator: every primitive and scope against numpy.

The simulator runs each CUDA thread as a Python thread (about a millisecond each), so the
shapes are tiny: at most a few blocks of at most 32x32 threads.  Non-dividing extents are
used on purpose, to exercise the guards.
"""

import numpy as np
import pytest
from conftest import matmul, random_array, run
from cuda_sim import rerun, simulator  # noqa: F401 - simulator is an autouse fixture

import te
from runtime import build
from runtime.timer import TimingResult
from schedules import create_schedule

test_in_subprocess = rerun(__file__)

BX, BY, BZ = (te.thread_axis(f"blockIdx.{d}") for d in "xyz")
TX, TY, TZ = (te.thread_axis(f"threadIdx.{d}") for d in "xyz")


def check(s, args, inputs, expected, tol=1e-5, **sizes):
    """Run on the cuda target and compare with ``expected``; return the module's outputs."""
    got = run(s, args, inputs, target="cuda", **sizes)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol)
    return got


def vector_add(n):
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    return A, B, C


# --- thread binding ---------------------------------------------------------------------------

def test_split_and_bind_with_a_partial_last_block(rng):
    A, B, C = vector_add(37)
    s = create_schedule(C.op)
    bx, tx = s[C].split(C.op.axis[0], factor=16)
    s[C].bind(bx, BX)
    s[C].bind(tx, TX)
    a, b = random_array(rng, 37), random_array(rng, 37)
    check(s, [A, B, C], [a, b], [a + b])
    src = build(s, [A, B, C], target="cuda").source
    assert "cuda.blockIdx.x" in src and "cuda.threadIdx.x" in src
    assert "launch(main_kernel0, (3, 1, 1), (16, 1, 1), A, B, C)" in src


def test_symbolic_extent_sets_the_grid_at_call_time(rng):
    n = te.var("n")
    A, B, C = vector_add(n)
    s = create_schedule(C.op)
    bx, tx = s[C].split(C.op.axis[0], factor=8)
    s[C].bind(bx, BX)
    s[C].bind(tx, TX)
    f = build(s, [A, B, C], target="cuda")
    for size in (13, 0):
        a, b = random_array(rng, size), random_array(rng, size)
        c = np.full(size, np.nan, "float32")
        f(a, b, c)  # size 0: an empty grid launches nothing
        np.testing.assert_allclose(c, a + b)


def test_explicit_scalar_arguments(rng):
    n, alpha = te.var("n"), te.var("alpha", "float32")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * alpha, name="B")
    s = create_schedule(B.op)
    bx, tx = s[B].split(B.op.axis[0], factor=8)
    s[B].bind(bx, BX)
    s[B].bind(tx, TX)
    f = build(s, [A, B, alpha], target="cuda")
    a, b = random_array(rng, 11), np.zeros(11, "float32")
    f(a, b, 0.5)
    np.testing.assert_allclose(b, a * np.float32(0.5))


def test_blocks_and_threads_in_three_dimensions(rng):
    A = te.placeholder((3, 5, 6), name="A")
    B = te.compute((3, 5, 6), lambda i, j, k: A[i, j, k] * 2.0 + 1.0, name="B")
    s = create_schedule(B.op)
    i, j, k = B.op.axis
    io, ii = s[B].split(i, factor=2)
    jo, ji = s[B].split(j, factor=2)
    ko, ki = s[B].split(k, factor=4)
    s[B].reorder(io, jo, ko, ii, ji, ki)
    for ax, t in ((io, BZ), (jo, BY), (ko, BX), (ii, TZ), (ji, TY), (ki, TX)):
        s[B].bind(ax, t)
    a = random_array(rng, (3, 5, 6))
    check(s, [A, B], [a], [a * 2 + 1])


def test_a_loop_bound_shorter_than_the_launch_is_guarded(rng):
    # B binds threadIdx.x to 8 threads, C to 5: the launch has 8, C's code runs on 5.
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((10,), lambda i: B[i] * B[i + 6], name="C")
    s = create_schedule(C.op)
    s[B].set_scope("shared")
    bo, bi = s[C].split(C.op.axis[0], factor=5)
    s[C].bind(bo, BX)
    s[C].bind(bi, TX)
    s[B].compute_at(s[C], bo)
    _, xi = s[B].split(B.op.axis[0], factor=8)
    s[B].bind(xi, TX)
    a = random_array(rng, 16)
    b = a + 1
    check(s, [A, C], [a], [b[:10] * b[6:16]])


# --- memory scopes ----------------------------------------------------------------------------

def shared_matmul(M, N, K, tile=8, threads=4, kt=4, align=None, unroll_out=True):
    """TVM's classic GPU matmul: shared tiles of A and B loaded by all threads of a block,
    a register tile of C per thread."""
    A, B, C = matmul(M, K, N)
    s = create_schedule(C.op)
    AA = s.cache_read(A, "shared", [C])
    BB = s.cache_read(B, "shared", [C])
    CL = s.cache_write(C, "local")
    by, ii = s[C].split(C.op.axis[0], factor=tile)
    bx, ji = s[C].split(C.op.axis[1], factor=tile)
    ty, yi = s[C].split(ii, nparts=threads)
    tx, xi = s[C].split(ji, nparts=threads)
    s[C].reorder(by, bx, ty, tx, yi, xi)
    for ax, t in ((by, BY), (bx, BX), (ty, TY), (tx, TX)):
        s[C].bind(ax, t)
    if unroll_out:
        s[C].unroll(yi)
        s[C].unroll(xi)
    s[CL].compute_at(s[C], tx)
    ko, ki = s[CL].split(s[CL].op.reduce_axis[0], factor=kt)
    yc, xc = s[CL].op.axis
    s[CL].reorder(ko, ki, yc, xc)
    s[CL].unroll(yc)
    s[CL].unroll(xc)
    for X in (AA, BB):
        s[X].compute_at(s[CL], ko)
        if align:
            s[X].storage_align(s[X].op.axis[0], *align)
        _, fi = s[X].split(s[X].fuse(*s[X].op.axis), factor=threads * threads)
        t1, t2 = s[X].split(fi, nparts=threads)
        s[X].bind(t1, TY)
        s[X].bind(t2, TX)
    return s, [A, B, C]


def test_shared_memory_tiles_and_register_tile(rng):
    s, args = shared_matmul(20, 12, 10)  # 20 and 10: partial blocks and tiles
    a, b = random_array(rng, (20, 10)), random_array(rng, (10, 12))
    check(s, args, [a, b], [a @ b])
    f = build(s, args, target="cuda")
    src = f.source
    assert "A_shared = cuda.shared.array((8, 4), np.float32)" in src
    assert src.count("cuda.syncthreads()") == 2  # after the loads; before the next loads
    assert "C_local_1_1" in src  # the register tile is scalars
    assert f.build_info["kernels"][0]["register_tiles"] == ["C.local"]
    assert f.build_info["kernels"][0]["shared_bytes"] == 2 * 8 * 4 * 4


def test_double_buffered_shared_tiles(rng):
    s, args = shared_matmul(20, 12, 10)
    for st in s.stages:
        if st.name in ("A.shared", "B.shared"):
            st.double_buffer()
    a, b = random_array(rng, (20, 10)), random_array(rng, (10, 12))
    check(s, args, [a, b], [a @ b])
    (c,) = run(s, args, [a, b], target="python")
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)
    src = build(s, args, target="cuda").source
    assert "A_shared = cuda.shared.array((2, 8, 4), np.float32)" in src
    assert src.count("cuda.syncthreads()") == 2  # after the first loads; once per iteration


def test_python_target_runs_cuda_schedules_serially(rng):
    s, args = shared_matmul(12, 8, 8)
    a, b = random_array(rng, (12, 8)), random_array(rng, (8, 8))
    (c,) = run(s, args, [a, b], target="python")
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


def test_storage_align_pads_the_rows_of_a_shared_tile(rng):
    s, args = shared_matmul(8, 8, 8, align=(4, 1))
    a, b = random_array(rng, (8, 8)), random_array(rng, (8, 8))
    check(s, args, [a, b], [a @ b])
    src = build(s, args, target="cuda").source
    # A.shared is [8, 4] with its rows 5 apart: 7 * 5 + 3 + 1 = 39 elements, indexed flat.
    assert "A_shared = cuda.shared.array(39, np.float32)" in src
    assert "A_shared[u64(i_inner_outer * 10 + k_inner + 5)]" in src  # row 2*ty + 1, stride 5


def test_local_cache_read_stays_an_array_when_indexed_by_a_serial_loop(rng):
    A, B, C = matmul(6, 5, 7)
    s = create_schedule(C.op)
    AL = s.cache_read(A, "local", [C])
    s[C].bind(C.op.axis[0], BX)
    s[C].bind(C.op.axis[1], TX)
    s[AL].compute_at(s[C], C.op.axis[1])
    a, b = random_array(rng, (6, 5)), random_array(rng, (5, 7))
    check(s, [A, B, C], [a, b], [a @ b])
    assert "cuda.local.array((1, 5), np.float32)" in build(s, [A, B, C], target="cuda").source


def test_vthread_interleaves_a_register_tile(rng):
    # TVM's GPU conv tutorial pattern: virtual threads between the blocks and the threads.
    A, B, C = matmul(16, 4, 16)
    s = create_schedule(C.op)
    CL = s.cache_write(C, "local")
    by, yi = s[C].split(C.op.axis[0], factor=8)
    bx, xi = s[C].split(C.op.axis[1], factor=8)
    vy, yi = s[C].split(yi, nparts=2)
    ty, yi = s[C].split(yi, nparts=2)
    tx, xi = s[C].split(xi, nparts=4)
    s[C].reorder(by, bx, vy, ty, tx, yi, xi)
    for ax, t in ((by, BY), (bx, BX), (vy, te.thread_axis("vthread")), (ty, TY), (tx, TX)):
        s[C].bind(ax, t)
    s[CL].compute_at(s[C], tx)
    a, b = random_array(rng, (16, 4)), random_array(rng, (4, 16))
    check(s, [A, B, C], [a, b], [a @ b])


# --- reductions across threads ----------------------------------------------------------------

def row_reduce(N, K, threads, reducer="sum", rows_per_block=1, use_rfactor=True):
    A = te.placeholder((N, K), name="A")
    k = te.reduce_axis((0, K), name="k")
    fn = {"sum": te.sum, "max": te.max}[reducer]
    B = te.compute((N,), lambda i: fn(A[i, k], axis=k), name="B")
    s = create_schedule(B.op)
    if use_rfactor:  # TVM's rfactor tutorial: per-thread partials, then across threads
        _, ki = s[B].split(B.op.reduce_axis[0], factor=threads)
        BF = s.rfactor(B, ki)
        red = s[B].op.reduce_axis[0]
    else:
        red, _ = s[B].split(B.op.reduce_axis[0], nparts=threads)
    if rows_per_block > 1:
        bi, ti = s[B].split(B.op.axis[0], factor=rows_per_block)
        s[B].bind(bi, BX)
        s[B].bind(ti, TY)
    else:
        s[B].bind(B.op.axis[0], BX)
    s[B].bind(red, TX)
    if use_rfactor:
        s[BF].compute_at(s[B], red)
    return s, [A, B]


@pytest.mark.parametrize("reducer, threads, rows, use_rfactor", [
    ("sum", 8, 1, True),
    ("max", 6, 1, False),  # 6 threads: not a power of two
    ("sum", 5, 3, True),  # three rows per block on threadIdx.y, the last block partial
])
def test_reduction_across_the_threads_of_a_block(rng, reducer, threads, rows, use_rfactor):
    s, args = row_reduce(4, 19, threads, reducer, rows, use_rfactor)
    a = random_array(rng, (4, 19))
    expected = a.sum(1) if reducer == "sum" else a.max(1)
    check(s, args, [a], [expected])


def test_argmax_across_threads_reduces_index_and_value_together(rng):
    A = te.placeholder((3, 11), name="A")
    out = te.ops.argmax(A, axis=1)
    pair = out.op.input_tensors[0]  # (index, value) reduced together
    s = create_schedule(out.op)
    s[out].bind(out.op.axis[0], BX)
    s[pair].compute_at(s[out], out.op.axis[0])  # shared: one row per block
    ko, _ = s[pair].split(s[pair].op.reduce_axis[0], nparts=4)
    s[pair].bind(ko, TX)
    a = random_array(rng, (3, 11))
    a[1, 3] = a[1, 9] = a[1].max() + 1  # ties: the first index wins
    (got,) = run(s, [A, out], [a], target="cuda")
    np.testing.assert_array_equal(got, a.argmax(1))


# --- several kernels, device arrays, timing ---------------------------------------------------

def test_each_root_stage_is_a_kernel_with_a_device_temporary(rng):
    A = te.placeholder((10,), name="A")
    B = te.compute((10,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((10,), lambda i: B[9 - i] + 1.0, name="C")
    s = create_schedule(C.op)
    for X in (B, C):
        xo, xi = s[X].split(X.op.axis[0], factor=4)
        s[X].bind(xo, BX)
        s[X].bind(xi, TX)
    a = random_array(rng, 10)
    check(s, [A, C], [a], [a[::-1] * 2 + 1])
    src = build(s, [A, C], target="cuda").source
    assert "B = cuda.device_array((10,), dtype=np.float32)" in src
    assert "launch(main_kernel1" in src


def elementwise_module():
    A, B, C = vector_add(20)
    s = create_schedule(C.op)
    bx, tx = s[C].split(C.op.axis[0], factor=8)
    s[C].bind(bx, BX)
    s[C].bind(tx, TX)
    return build(s, [A, B, C], target="cuda")


def test_device_arrays_are_used_in_place(rng):
    from numba import cuda

    f = elementwise_module()
    a, b = random_array(rng, 20), random_array(rng, 20)
    da, db, dc = cuda.to_device(a), cuda.to_device(b), cuda.device_array(20, np.float32)
    f(da, db, dc)
    np.testing.assert_allclose(dc.copy_to_host(), a + b)
    f(da, db, cuda.to_device(np.zeros(20, "float32")))  # a mix works too
    with pytest.raises(Exception, match="must have dtype float32"):
        f(da, db, cuda.device_array(20, np.float64))


def test_time_evaluator_reports_per_call_seconds(rng):
    f = elementwise_module()
    a, b, c = random_array(rng, 20), random_array(rng, 20), np.zeros(20, "float32")
    result = f.time_evaluator(number=2, repeat=2)(a, b, c)
    assert isinstance(result, TimingResult) and len(result.results) == 2 and result.median > 0
    np.testing.assert_allclose(c, a + b)  # outputs come back from the timed runs


def test_build_errors_name_the_kernel():
    A, B, C = vector_add(8)
    s = create_schedule(C.op)
    with pytest.raises(Exception, match=r"the kernel of C is not bound to GPU threads"):
        build(s, [A, B, C], target="cuda")

"""Schedule primitives, alone and combined, on the "python" target: a schedule changes how a
computation runs, never what it computes (every case is checked against numpy). Also the
schedule as data (printing, JSON, replay) and the errors a user can cause."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import matmul as _matmul, random_array, run, run_python, write_cache_for_blocks

import te
from runtime import ArgumentError, build
from schedules import (
    ScheduleError, create_schedule, lower, replay, steps_from_json, steps_to_json,
)


@dataclass
class Case:
    """A scheduled computation with its inputs and the numpy answer."""

    s: object
    args: list
    inputs: list
    expected: list


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def matmul():
    return _matmul(13, 17, 11)


def matmul_case(schedule):
    """A case of the 13x17x11 matmul scheduled by ``schedule(s, C)``."""

    def make(rng):
        A, B, C = matmul()
        s = create_schedule(C.op)
        schedule(s, C)
        a, b = random_array(rng, (13, 17)), random_array(rng, (17, 11))
        return Case(s, [A, B, C], [a, b], [a @ b])

    make.__name__ = schedule.__name__
    return case(make)


# --- primitives on a matmul, alone and combined ----------------------------------------------

@matmul_case
def default(s, C):
    pass


@matmul_case
def split_factor_not_dividing(s, C):
    s[C].split(C.op.axis[0], factor=4)


@matmul_case
def split_factor_larger_than_extent(s, C):
    s[C].split(C.op.axis[1], factor=16)


@matmul_case
def split_factor_one(s, C):
    s[C].split(C.op.axis[1], factor=1)


@matmul_case
def split_nparts(s, C):
    s[C].split(C.op.axis[1], nparts=3)


@matmul_case
def split_twice(s, C):
    io, ii = s[C].split(C.op.axis[0], factor=6)
    s[C].split(ii, nparts=4)


@matmul_case
def split_reduction(s, C):
    i, j = C.op.axis
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=5)
    s[C].reorder(ko, i, j, ki)


@matmul_case
def tile(s, C):
    s[C].tile(C.op.axis[0], C.op.axis[1], x_factor=4, y_factor=3)


@matmul_case
def fuse(s, C):
    s[C].fuse(*C.op.axis)


@matmul_case
def fuse_then_split(s, C):
    s[C].split(s[C].fuse(C.op.axis[0], C.op.axis[1]), factor=8)


@matmul_case
def split_then_fuse(s, C):
    io, ii = s[C].split(C.op.axis[0], factor=4)
    jo, ji = s[C].split(C.op.axis[1], factor=3)
    s[C].reorder(io, jo, ii, ji)
    s[C].fuse(ii, ji)


@matmul_case
def fuse_reduction_parts(s, C):
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=4)
    s[C].fuse(ko, ki)


@matmul_case
def reorder_reduction_outermost(s, C):
    i, j = C.op.axis
    s[C].reorder(C.op.reduce_axis[0], j, i)


@matmul_case
def unroll(s, C):
    s[C].unroll(C.op.reduce_axis[0])


@matmul_case
def vectorize(s, C):
    jo, ji = s[C].split(C.op.axis[1], factor=4)
    s[C].reorder(C.op.axis[0], jo, C.op.reduce_axis[0], ji)
    s[C].vectorize(ji)


@matmul_case
def parallel(s, C):
    s[C].parallel(C.op.axis[0])


@matmul_case
def bind(s, C):
    # The python target runs thread loops one after another.
    bx, tx = s[C].split(s[C].fuse(*C.op.axis), factor=32)
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))


@matmul_case
def pragma(s, C):
    s[C].pragma(C.op.axis[0], "auto_unroll_max_step", 16)
    s[C].pragma(C.op.reduce_axis[0], "unroll_explicit", False)


@matmul_case
def gemm_blocked(s, C):
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 4)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=4)
    s[C].reorder(io, jo, ko, ii, ki, ji)
    s[C].vectorize(ji)
    s[C].unroll(ki)
    s[C].parallel(io)


@matmul_case
def cache_write_at_tile(s, C):
    write_cache_for_blocks(s, C, 4, 4)


@matmul_case
def cache_write_at_inner_axis(s, C):
    CC = s.cache_write(C, "local")
    s[CC].compute_at(s[C], C.op.axis[1])


@matmul_case
def cache_read_at_reduction(s, C):
    A, B = C.op.input_tensors
    AA = s.cache_read(A, "shared", [C])
    BB = s.cache_read(B, "local", [C])
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 4)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=4)
    s[C].reorder(io, jo, ko, ii, ji, ki)
    s[AA].compute_at(s[C], ko)
    s[BB].compute_at(s[C], ko)


@matmul_case
def cache_read_at_root(s, C):
    s.cache_read(C.op.input_tensors[1], "global", [C])


# --- producers and consumers ------------------------------------------------------------------

def blur1d(n=20):
    """``B = 2*A``, ``C[i] = B[i] + B[i+1] + B[i+2]``: C reads B at offsets."""
    A = te.placeholder((n + 2,), name="A")
    B = te.compute((n + 2,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((n,), lambda i: B[i] + B[i + 1] + B[i + 2], name="C")
    return A, B, C


def blur1d_case(attach):
    def make(rng):
        A, B, C = blur1d()
        s = create_schedule(C.op)
        attach(s, B, C)
        a = random_array(rng, 22)
        b = 2 * a
        return Case(s, [A, C], [a], [b[:-2] + b[1:-1] + b[2:]])

    make.__name__ = attach.__name__
    return case(make)


@blur1d_case
def stencil_at_split_outer(s, B, C):
    xo, xi = s[C].split(C.op.axis[0], factor=6)
    s[B].compute_at(s[C], xo)


@blur1d_case
def stencil_at_split_inner(s, B, C):
    xo, xi = s[C].split(C.op.axis[0], factor=6)
    s[B].compute_at(s[C], xi)


@blur1d_case
def stencil_at_nparts_outer_with_producer_split(s, B, C):
    xo, xi = s[C].split(C.op.axis[0], nparts=3)
    s[B].compute_at(s[C], xo)
    s[B].split(B.op.axis[0], factor=4)


@blur1d_case
def stencil_inline(s, B, C):
    s[B].compute_inline()


@blur1d_case
def stencil_compute_root_undoes_compute_at(s, B, C):
    s[B].compute_at(s[C], C.op.axis[0])
    s[B].compute_root()


@blur1d_case
def stencil_cache_read_at_inner(s, B, C):
    BB = s.cache_read(B, "local", [C])
    xo, xi = s[C].split(C.op.axis[0], factor=4)
    s[BB].compute_at(s[C], xi)


@case
def chain_of_stencils(rng):
    # B at C at D: each attached stage covers what its consumer's tile reads.
    A = te.placeholder((21,), name="A")
    B = te.compute((21,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((19,), lambda i: B[i] + B[i + 2], name="C")
    D = te.compute((17,), lambda i: C[i] * C[i + 1] - C[i + 2], name="D")
    s = create_schedule(D.op)
    do, di = s[D].split(D.op.axis[0], factor=4)
    s[C].compute_at(s[D], do)
    co, ci = s[C].split(C.op.axis[0], factor=2)
    s[B].compute_at(s[C], co)
    a = random_array(rng, 21)
    b = 2 * a
    c = b[:-2] + b[2:]
    return Case(s, [A, D], [a], [c[:-2] * c[1:-1] - c[2:]])


@case
def blur2d_tiled(rng):
    # The classic Halide blur: blur_x computed per tile of blur_y.
    H, W = 10, 9
    A = te.placeholder((H + 2, W + 2), name="A")
    BX = te.compute((H + 2, W), lambda y, x: (A[y, x] + A[y, x + 1] + A[y, x + 2]) / 3.0,
                    name="blur_x")
    BY = te.compute((H, W), lambda y, x: (BX[y, x] + BX[y + 1, x] + BX[y + 2, x]) / 3.0,
                    name="blur_y")
    s = create_schedule(BY.op)
    yo, xo, yi, xi = s[BY].tile(BY.op.axis[0], BY.op.axis[1], 4, 4)
    s[BX].compute_at(s[BY], xo)
    s[BX].vectorize(BX.op.axis[1])
    s[BY].parallel(yo)
    a = random_array(rng, (H + 2, W + 2))
    bx = (a[:, :-2] + a[:, 1:-1] + a[:, 2:]) / 3
    return Case(s, [A, BY], [a], [(bx[:-2] + bx[1:-1] + bx[2:]) / 3])


@case
def conv1d_producer_at_reduction_axis(rng):
    A = te.placeholder((20,), name="A")
    W = te.placeholder((3,), name="W")
    B = te.compute((20,), lambda i: A[i] + 1.0, name="B")
    k = te.reduce_axis((0, 3), name="k")
    C = te.compute((18,), lambda i: te.sum(B[i + k] * W[k], axis=k), name="C")
    s = create_schedule(C.op)
    io, ii = s[C].split(C.op.axis[0], factor=4)
    s[C].reorder(io, k, ii)
    s[B].compute_at(s[C], k)
    a, w = random_array(rng, 20), random_array(rng, 3)
    b = a + 1
    return Case(s, [A, W, C], [a, w], [sum(b[j:j + 18] * w[j] for j in range(3))])


@case
def producer_at_fused_axis(rng):
    X = te.placeholder((5, 7), name="X")
    Y = te.compute((5, 7), lambda i, j: X[i, j] + 1.0, name="Y")
    Z = te.compute((5, 7), lambda i, j: Y[i, j] * Y[i, j], name="Z")
    s = create_schedule(Z.op)
    fo, fi = s[Z].split(s[Z].fuse(*Z.op.axis), factor=4)
    s[Y].compute_at(s[Z], fo)
    x = random_array(rng, (5, 7))
    return Case(s, [X, Z], [x], [(x + 1) ** 2])


@case
def inline_pipeline(rng):
    A = te.placeholder((6, 10), name="A")
    B = te.compute((6, 10), lambda i, j: A[i, j] * 2.0 + 1.0, name="B")
    C = te.compute((6, 10), lambda i, j: te.exp(B[i, j]), name="C")
    D = te.compute((6, 10), lambda i, j: C[i, j] - B[i, j], name="D")
    s = create_schedule(D.op)
    s[B].compute_inline()
    s[C].compute_inline()
    a = random_array(rng, (6, 10))
    b = a * 2 + 1
    return Case(s, [A, D], [a], [np.exp(b) - b])


@case
def two_outputs_share_a_producer(rng):
    X = te.placeholder((6, 8), name="X")
    P = te.compute((6, 8), lambda i, j: X[i, j] * 2.0, name="P")
    C = te.compute((6, 8), lambda i, j: P[i, j] + 1.0, name="C")
    D = te.compute((6, 8), lambda i, j: P[i, j] - X[i, j], name="D")
    s = create_schedule([C.op, D.op])
    s.cache_read(P, "local", [C, D])
    s[C].split(C.op.axis[1], factor=3)
    x = random_array(rng, (6, 8))
    return Case(s, [X, C, D], [x], [2 * x + 1, x])


@case
def cache_write_multi_output_argmax(rng):
    argmax = te.comm_reducer(
        lambda x, y: (te.if_then_else(x[1] >= y[1], x[0], y[0]),
                      te.if_then_else(x[1] >= y[1], x[1], y[1])),
        lambda t0, t1: (te.const(-1, t0), te.min_value(t1)), name="argmax")
    V = te.placeholder((6, 9), name="V")
    k = te.reduce_axis((0, 9), name="k")
    I, M = te.compute((6,), lambda i: argmax((k.var, V[i, k]), axis=k), name="T")
    s = create_schedule(I.op)
    IL, ML = s.cache_write([I, M], "local")
    io, ii = s[I].split(I.op.axis[0], factor=4)
    s[IL].compute_at(s[I], io)
    v = random_array(rng, (6, 9))
    return Case(s, [V, I, M], [v], [v.argmax(axis=1), v.max(axis=1)])


@case
def storage_align_and_set_scope(rng):
    A = te.placeholder((6, 10), name="A")
    B = te.compute((6, 10), lambda i, j: A[i, j] * 2.0, name="B")
    C = te.compute((6, 10), lambda i, j: B[i, j] + 1.0, name="C")
    D = te.compute((6, 10), lambda i, j: C[i, j] * B[i, j], name="D")
    s = create_schedule(D.op)
    s[B].storage_align(B.op.axis[0], 16, 3)
    s[C].set_scope("local")
    s[C].compute_at(s[D], D.op.axis[0])
    a = random_array(rng, (6, 10))
    return Case(s, [A, D], [a], [(2 * a + 1) * (2 * a)])


@case
def tile_of_a_fused_axis_read_through_a_broadcast(rng):
    # C reads B at the fused position of (n, y, x) with the size-1 n read at 0 (as a broadcast
    # does): the tile of 8 positions C's outer loop needs is 8 elements of B, not all 42.
    A = te.placeholder((42,), name="A")
    B = te.compute((42,), lambda m: A[m] * 2.0, name="B")
    C = te.compute((1, 6, 7), lambda n, y, x: B[y * 7 + x] + 1.0, name="C")
    s = create_schedule(C.op)
    n, y, x = C.op.axis
    mo, _ = s[C].split(s[C].fuse(n, y, x), factor=8)  # 8 does not divide 42: a guard
    s[B].compute_at(s[C], mo)
    a = random_array(rng, 42)
    return Case(s, [A, C], [a], [(2 * a + 1).reshape(1, 6, 7)])


@pytest.mark.parametrize("target", ["python", "cpu"])
@pytest.mark.parametrize("name", CASES)
def test_schedule_keeps_the_result(rng, name, target):
    c = CASES[name](rng)
    got = run(c.s, c.args, c.inputs, target=target)
    for g, want in zip(got, c.expected):
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-5)


# --- what the primitives do to the loop nest --------------------------------------------------

def lowered(name):
    c = CASES[name](np.random.default_rng(0))
    return str(lower(c.s, c.args))


@pytest.mark.parametrize("name, fragments", [
    ("split_factor_not_dividing", ["for (i.outer, 0, 4)", "for (i.inner, 0, 4)",
                                   "if (i.outer * 4 + i.inner < 13)"]),
    ("split_nparts", ["for (j.outer, 0, 3)", "for (j.inner, 0, 4)"]),
    ("split_factor_larger_than_extent", ["for (j.inner, 0, 16)", "if (j.inner < 11)"]),
    ("tile", ["for (i.outer, 0, 4) {\n    for (j.outer, 0, 4) {\n      for (i.inner, 0, 4)"]),
    ("fuse", ["for (i.j.fused, 0, 143)", "C[i.j.fused // 11, i.j.fused % 11]"]),
    ("reorder_reduction_outermost",
     ["for (k, 0, 17) {\n    for (j, 0, 11) {\n      for (i, 0, 13)"]),
    ("unroll", ['for (k, 0, 17) "unrolled"']),
    ("vectorize", ['for (j.inner, 0, 4) "vectorized"']),
    ("parallel", ['for (i, 0, 13) "parallel"']),
    ("bind", ['"thread_binding" blockIdx.x', '"thread_binding" threadIdx.x']),
    ("pragma", ["for (i, 0, 13) pragma(auto_unroll_max_step=16)",
                "pragma(unroll_explicit=False)"]),
    ("stencil_at_split_outer", ["allocate B[float32 * 8]", "B[i.inner] + B[i.inner + 1]"]),
    ("stencil_at_split_inner", ["allocate B[float32 * 3]", "B[0] + B[1] + B[2]"]),
    ("stencil_inline", ["C[i] = A[i] * 2.0f + A[i + 1] * 2.0f + A[i + 2] * 2.0f"]),
    ("cache_write_at_inner_axis", ["allocate C.local[float32 * 1, 1], storage_scope = local"]),
    ("storage_align_and_set_scope", ["allocate B[float32 * 6, 10], storage_scope = global "
                                     "strides=[19, 1]", "storage_scope = local"]),
    ("tile_of_a_fused_axis_read_through_a_broadcast",
     ["allocate B[float32 * 8]", "C[0, "]),
])
def test_lowered_loop_nest(name, fragments):
    text = lowered(name)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in\n{text}"


def test_vector_add_with_symbolic_extent_and_non_dividing_split(rng):
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    s = create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=4)
    s[C].parallel(xo)
    s[C].vectorize(xi)
    assert "for (i.outer, 0, (n + 3) // 4)" in str(lower(s, [A, B, C]))
    for size in (1, 4, 7, 13):
        a, b = random_array(rng, size), random_array(rng, size)
        (c,) = run_python(s, [A, B, C], [a, b])
        np.testing.assert_allclose(c, a + b, rtol=1e-6)


def test_symbolic_nparts_and_fuse_then_split(rng):
    n, m = te.var("n"), te.var("m")
    X = te.placeholder((n, m), name="X")
    Y = te.compute((n, m), lambda i, j: X[i, j] * 2.0, name="Y")
    s = create_schedule(Y.op)
    fo, fi = s[Y].split(s[Y].fuse(*Y.op.axis), factor=5)
    s[Y].split(fo, nparts=2)
    for shape in [(1, 1), (3, 4), (7, 3)]:
        x = random_array(rng, shape)
        (y,) = run_python(s, [X, Y], [x])
        np.testing.assert_allclose(y, 2 * x)


def test_symbolic_stencil_compute_at(rng):
    n = te.var("n")
    P = te.placeholder((n + 2,), name="P")
    Q = te.compute((n + 2,), lambda i: P[i] * 3.0, name="Q")
    R = te.compute((n,), lambda i: Q[i] + Q[i + 2], name="R")
    s = create_schedule(R.op)
    ro, ri = s[R].split(R.op.axis[0], factor=4)
    s[Q].compute_at(s[R], ro)
    for size in (1, 5, 8, 11):
        p = random_array(rng, size + 2)
        (r,) = run_python(s, [P, R], [p], n=size)
        np.testing.assert_allclose(r, 3 * p[:-2] + 3 * p[2:], rtol=1e-6)


# --- the schedule as data ---------------------------------------------------------------------

def test_str_lists_the_steps():
    A, B, C = matmul()
    s = create_schedule(C.op)
    assert str(s) == "schedule of C:\n  (no steps)"
    CC = s.cache_write(C, "local")
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 4)
    s[CC].compute_at(s[C], jo)
    s[C].parallel(io)
    assert str(s) == (
        "schedule of C:\n"
        "  cache_write(C, scope=local)\n"
        "  tile(C, x=i, y=j, x_factor=4, y_factor=4)\n"
        "  compute_at(C.local, parent=C, axis=j.outer)\n"
        "  parallel(C, axis=i.outer)"
    )


def test_steps_json_round_trip():
    c = CASES["cache_read_at_reduction"](np.random.default_rng(0))
    text = steps_to_json(c.s.steps)
    assert json.loads(text)[0] == {
        "kind": "cache_read", "stage": "A", "args": {"tensor": 0, "scope": "shared",
                                                     "readers": ["C"]},
    }
    assert steps_from_json(text) == c.s.steps
    assert steps_from_json(json.loads(text)) == c.s.steps


@pytest.mark.parametrize("name", CASES)
def test_replay_reproduces_the_lowered_function(name):
    c = CASES[name](np.random.default_rng(0))
    again = replay(c.s.outputs, steps_from_json(steps_to_json(c.s.steps)))
    assert again.steps == c.s.steps
    assert str(lower(again, c.args)) == str(lower(c.s, c.args))


def test_replay_of_a_bad_step_names_it():
    A, B, C = matmul()
    steps = [{"kind": "split", "stage": "C", "args": {"axis": "nope", "factor": 4}}]
    with pytest.raises(ScheduleError, match=r"replaying step 0 \(split\(C, axis=nope.*"
                                            r"stage C has no axis named 'nope'"):
        replay([C.op], steps)
    with pytest.raises(ScheduleError, match=r"no stage named 'D'"):
        replay([C.op], [{"kind": "compute_root", "stage": "D", "args": {}}])


# --- errors -----------------------------------------------------------------------------------

def pipeline():
    """``A -> X1 -> X2 -> X3`` (output) plus a matmul ``C`` of ``A`` read by ``D``, and ``E``."""
    A = te.placeholder((8, 8), name="A")
    X1 = te.compute((8, 8), lambda i, j: A[i, j] + 1.0, name="X1")
    X2 = te.compute((8, 8), lambda i, j: X1[i, j] * 2.0, name="X2")
    X3 = te.compute((8, 8), lambda i, j: X2[i, j] - X1[i, j], name="X3")
    k = te.reduce_axis((0, 8), name="k")
    C = te.compute((8, 8), lambda i, j: te.sum(A[i, k] * A[k, j], axis=k), name="C")
    D = te.compute((8, 8), lambda i, j: C[i, j] + 1.0, name="D")
    E = te.compute((8,), lambda i: A[i, 0] * 3.0, name="E")
    s = create_schedule([X3.op, D.op, E.op])
    return s, dict(A=A, X1=X1, X2=X2, X3=X3, C=C, D=D, E=E)


def _split_twice(s, t):
    s[t["C"]].split(t["C"].op.axis[0], factor=2)
    s[t["C"]].split(t["C"].op.axis[0], factor=2)


def _cycle(s, t):
    s[t["X1"]].compute_at(s[t["X2"]], t["X2"].op.axis[0])
    s[t["X2"]].compute_at(s[t["X1"]], t["X1"].op.axis[0])


def _cache_write_late(s, t):
    s[t["C"]].split(t["C"].op.axis[0], factor=2)
    s.cache_write(t["C"], "local")


SCHEDULE_ERRORS = [
    ("split a non-leaf axis", _split_twice, r"split on stage C: axis i is not a leaf any more"),
    ("split another stage's axis", lambda s, t: s[t["D"]].split(t["C"].op.axis[0], factor=2),
     r"split on stage D: axis i belongs to stage C, not to D"),
    ("split by zero", lambda s, t: s[t["D"]].split(t["D"].op.axis[0], factor=0),
     r"split of i in stage D: factor must be a positive integer, got 0"),
    ("split by a fraction", lambda s, t: s[t["D"]].split(t["D"].op.axis[0], nparts=2.5),
     r"split of i in stage D: nparts must be a positive integer, got 2.5"),
    ("split with factor and nparts",
     lambda s, t: s[t["D"]].split(t["D"].op.axis[0], factor=2, nparts=2),
     r"split of i in stage D: give exactly one of factor= or nparts="),
    ("split a placeholder", lambda s, t: s[t["A"]].split(t["D"].op.axis[0], factor=2),
     r"split: stage A is a placeholder"),
    ("reorder with another stage's axes",
     lambda s, t: s[t["C"]].reorder(t["D"].op.axis[0], t["C"].op.axis[0]),
     r"reorder on stage C: axis i belongs to stage D, not to C"),
    ("reorder an axis twice",
     lambda s, t: s[t["C"]].reorder(t["C"].op.axis[0], t["C"].op.axis[0]),
     r"reorder on stage C: an axis is given twice"),
    ("fuse non-adjacent axes", lambda s, t: s[t["C"]].fuse(t["C"].op.axis[0],
                                                            t["C"].op.reduce_axis[0]),
     r"fuse on stage C: axes \(i, k\) must be adjacent leaves"),
    ("fuse a data and a reduction axis",
     lambda s, t: s[t["C"]].fuse(t["C"].op.axis[1], t["C"].op.reduce_axis[0]),
     r"fuse on stage C: cannot fuse a reduction axis with a data axis"),
    ("vectorize a reduction axis", lambda s, t: s[t["C"]].vectorize(t["C"].op.reduce_axis[0]),
     r"vectorize on stage C: k is a reduction axis"),
    ("parallel a reduction axis", lambda s, t: s[t["C"]].parallel(t["C"].op.reduce_axis[0]),
     r"parallel on stage C: k is a reduction axis"),
    ("bind a reduction axis",
     lambda s, t: s[t["C"]].bind(t["C"].op.reduce_axis[0], te.thread_axis("blockIdx.x")),
     r"bind on stage C: binding the reduction axis k"),
    ("bind to a non-thread axis",
     lambda s, t: s[t["C"]].bind(t["C"].op.axis[0], t["C"].op.axis[1]),
     r"bind on stage C: expected te.thread_axis"),
    ("compute_inline a reduction", lambda s, t: s[t["C"]].compute_inline(),
     r"compute_inline: stage C is a reduction"),
    ("compute_inline an output", lambda s, t: s[t["D"]].compute_inline(),
     r"compute_inline: stage D is an output"),
    ("compute_at making a cycle", _cycle,
     r"compute_at of stage X2 at X1: X1 does not read X2"),
    ("compute_at to a non-consumer", lambda s, t: s[t["C"]].compute_at(s[t["E"]],
                                                                       t["E"].op.axis[0]),
     r"compute_at of stage C at E: E does not read C"),
    ("compute_at to itself", lambda s, t: s[t["C"]].compute_at(s[t["C"]], t["C"].op.axis[0]),
     r"compute_at of stage C at C: a stage cannot be computed inside itself"),
    ("compute_at an output", lambda s, t: s[t["D"]].compute_at(s[t["C"]], t["C"].op.axis[0]),
     r"compute_at of stage D at C: D is an output"),
    ("compute_at a consumer's non-leaf axis", lambda s, t: (
        s[t["D"]].split(t["D"].op.axis[0], factor=2),
        s[t["C"]].compute_at(s[t["D"]], t["D"].op.axis[0])),
     r"compute_at on stage D: axis i is not a leaf any more"),
    ("cache_write after split", _cache_write_late,
     r"cache_write of stage C: call cache_write before splitting"),
    ("cache_read for a non-reader", lambda s, t: s.cache_read(t["X1"], "local", [t["D"]]),
     r"cache_read of X1: D does not read it"),
    ("storage_align on a reduction axis",
     lambda s, t: s[t["C"]].storage_align(t["C"].op.reduce_axis[0], 4, 0),
     r"storage_align on stage C: k is not one of its data axes \(i, j\)"),
]


@pytest.mark.parametrize("label, apply, match", SCHEDULE_ERRORS,
                         ids=[e[0] for e in SCHEDULE_ERRORS])
def test_schedule_errors(label, apply, match):
    s, t = pipeline()
    with pytest.raises(ScheduleError, match=match):
        apply(s, t)


def test_wrong_number_of_indices_in_a_stage():
    A = te.placeholder((4, 4), name="A")
    with pytest.raises(te.TEValueError, match=r"tensor A has 2 dimension\(s\) but was indexed "
                                              r"with 1 index"):
        te.compute((4,), lambda i: A[i] * 2.0, name="B")


def test_lower_errors():
    s, t = pipeline()
    args = [t["A"], t["X3"], t["D"], t["E"]]
    with pytest.raises(ScheduleError, match=r"lower: the output E must be one of the args"):
        lower(s, args[:-1])
    with pytest.raises(ScheduleError, match=r"lower: X1 reads the placeholder A, which is not"):
        lower(s, args[1:])
    # X1 is read by X2 and by X3; computing it inside X2's loop leaves X3 without it.
    s[t["X1"]].compute_at(s[t["X2"]], t["X2"].op.axis[1])
    with pytest.raises(ScheduleError, match=r"lower: X1 is computed at X2 but is also read by "
                                            r"X3, which runs outside that loop"):
        lower(s, args)


def test_create_schedule_of_a_placeholder_is_an_error():
    A = te.placeholder((4,), name="A")
    with pytest.raises(ScheduleError, match=r"create_schedule: A is a placeholder"):
        create_schedule(A.op)


# --- calling a built function with the wrong arrays -------------------------------------------

@pytest.fixture
def vector_add():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    M = te.placeholder((3, 4), name="M")
    N = te.compute((3, 4), lambda i, j: M[i, j] * 2.0, name="N")
    return (build(create_schedule(C.op), [A, B, C], target="python"),
            build(create_schedule(N.op), [M, N], target="python"))


F32 = np.float32


@pytest.mark.parametrize("label, arrays, match", [
    ("too few arrays", lambda: [np.ones(3, F32)] * 2, r"takes 3 argument\(s\) \(A, B, C\), got 2"),
    ("a list", lambda: [[1.0], np.ones(1, F32), np.ones(1, F32)],
     r"A must be a numpy array, got list"),
    ("wrong dtype", lambda: [np.ones(3, F32), np.ones(3), np.ones(3, F32)],
     r"B must have dtype float32, got float64"),
    ("wrong rank", lambda: [np.ones((3, 1), F32), np.ones(3, F32), np.ones(3, F32)],
     r"A must have 1 dimension\(s\), got shape \(3, 1\)"),
    ("inconsistent n", lambda: [np.ones(3, F32), np.ones(4, F32), np.ones(3, F32)],
     r"n is 3 \(from an earlier argument\) but dimension 0 of B is 4"),
    ("non-contiguous", lambda: [np.ones(6, F32)[::2], np.ones(3, F32), np.ones(3, F32)],
     r"A must be C-contiguous"),
])
def test_call_errors_symbolic(vector_add, label, arrays, match):
    f, _ = vector_add
    with pytest.raises(ArgumentError, match=match):
        f(*arrays())


@pytest.mark.parametrize("label, arrays, match", [
    ("wrong shape", lambda: [np.ones((3, 5), F32), np.ones((3, 4), F32)],
     r"M must have shape \(3, 4\), got \(3, 5\)"),
    ("fortran order", lambda: [np.asfortranarray(np.ones((3, 4), F32)), np.ones((3, 4), F32)],
     r"M must be C-contiguous"),
    ("wrong output dtype", lambda: [np.ones((3, 4), F32), np.ones((3, 4), np.int32)],
     r"N must have dtype float32, got int32"),
])
def test_call_errors_static(vector_add, label, arrays, match):
    _, f = vector_add
    with pytest.raises(ArgumentError, match=match):
        f(*arrays())


def test_explicit_scalar_arguments_follow_the_order_given_to_lower():
    n = te.var("n")
    alpha = te.var("alpha", "float32")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * alpha, name="B")
    s = create_schedule(B.op)
    a = np.random.default_rng(1).random(7, dtype=F32)
    b = np.empty(7, F32)
    build(s, [A, alpha, B], target="python")(a, 2.5, b)
    np.testing.assert_allclose(b, a * np.float32(2.5))
    f = build(s, [n, A, alpha, B], target="python")
    f(7, a, -1.5, b)
    np.testing.assert_allclose(b, a * np.float32(-1.5))
    with pytest.raises(ArgumentError, match="n is 6"):
        f(6, a, 2.0, b)
    with pytest.raises(ArgumentError, match="alpha is a scalar float32"):
        build(s, [A, alpha, B], target="python")(a, np.ones(2), b)

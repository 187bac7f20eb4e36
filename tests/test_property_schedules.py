"""Random legal schedules compute what numpy computes.

Each schedule is built by calling the primitives with drawn arguments; only legal calls are
drawn (fuse only adjacent leaves of one kind, vectorize/parallel only data axes), so a
ScheduleError here is a bug.
"""

import numpy as np
from hypothesis import given, note, settings
from hypothesis import strategies as st
from conftest import matmul, random_array, run

import te
from schedules import create_schedule

SETTINGS = settings(max_examples=40, deadline=None)


def random_loops(draw, stage):
    """Draw splits, maybe one fuse, maybe a reorder, and annotations for ``stage``."""
    for _ in range(draw(st.integers(0, 3))):
        leaves = stage.leaf_iter_vars
        leaf = leaves[draw(st.integers(0, len(leaves) - 1))]
        if draw(st.booleans()):
            stage.split(leaf, factor=draw(st.integers(1, 6)))  # often not dividing
        else:
            stage.split(leaf, nparts=draw(st.integers(1, 6)))
    leaves = stage.leaf_iter_vars
    if len(leaves) >= 2 and draw(st.booleans()):
        p = draw(st.integers(0, len(leaves) - 2))
        if leaves[p].iter_type == leaves[p + 1].iter_type:
            stage.fuse(leaves[p], leaves[p + 1])
    if draw(st.booleans()):
        stage.reorder(*draw(st.permutations(stage.leaf_iter_vars)))
    for leaf in stage.leaf_iter_vars:
        kind = draw(st.sampled_from(["", "", "unroll", "vectorize", "parallel", "pragma"]))
        if kind == "unroll":
            stage.unroll(leaf)
        elif kind == "pragma":
            stage.pragma(leaf, "auto_unroll_max_step", 8)
        elif kind and not leaf.is_reduce:
            getattr(stage, kind)(leaf)


def attach_point(draw, stage):
    leaves = stage.leaf_iter_vars
    return leaves[draw(st.integers(0, len(leaves) - 1))]


MATMUL = dict(data=st.data(), M=st.integers(1, 9), N=st.integers(1, 9), K=st.integers(1, 9))


@SETTINGS
@given(**MATMUL)
def test_random_matmul_schedule(data, M, N, K):
    check_random_matmul(data, M, N, K, "python")


# Every example compiles a numba kernel (~0.3-1 s), so the cpu target draws fewer.
@settings(max_examples=12, deadline=None)
@given(**MATMUL)
def test_random_matmul_schedule_cpu(data, M, N, K):
    check_random_matmul(data, M, N, K, "cpu")


def check_random_matmul(data, M, N, K, target):
    A, B, C = matmul(M, K, N)
    s = create_schedule(C.op)
    if data.draw(st.booleans()):
        CC = s.cache_write(C, "local")
        random_loops(data.draw, s[C])
        s[CC].compute_at(s[C], attach_point(data.draw, s[C]))
        random_loops(data.draw, s[CC])
    else:
        random_loops(data.draw, s[C])
    note(str(s))
    rng = np.random.default_rng(M * 100 + N * 10 + K)
    a, b = random_array(rng, (M, K)), random_array(rng, (K, N))
    (c,) = run(s, [A, B, C], [a, b], target=target)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)


# Consumers C (H x W) of B (P x P, P = max(H, W) + 2), each with its numpy reference.
def pointwise(B):
    return lambda i, j: B[i + 1, j + 1] * B[i + 1, j + 1]


def stencil(B):
    return lambda i, j: B[i, j] + B[i + 1, j + 2] + B[i + 2, j]


def transpose(B):
    return lambda i, j: B[j, i] - B[i + 2, j + 2]


def window_sum(B):
    k = te.reduce_axis((0, 3), name="k")
    return lambda i, j: te.sum(B[i + k, j + 1], axis=k)


CONSUMERS = {
    "pointwise": (pointwise, lambda b, H, W: b[1:H + 1, 1:W + 1] ** 2),
    "stencil": (stencil, lambda b, H, W: b[:H, :W] + b[1:H + 1, 2:W + 2] + b[2:H + 2, :W]),
    "transpose": (transpose, lambda b, H, W: b[:W, :H].T - b[2:H + 2, 2:W + 2]),
    "window_sum": (window_sum, lambda b, H, W: sum(b[r:H + r, 1:W + 1] for r in range(3))),
}


PIPELINE = dict(data=st.data(), H=st.integers(1, 8), W=st.integers(1, 8),
                consumer=st.sampled_from(sorted(CONSUMERS)),
                placement=st.sampled_from(["inline", "root", "at"]))


@SETTINGS
@given(**PIPELINE)
def test_random_producer_consumer_schedule(data, H, W, consumer, placement):
    check_random_pipeline(data, H, W, consumer, placement, "python")


@settings(max_examples=12, deadline=None)
@given(**PIPELINE)
def test_random_producer_consumer_schedule_cpu(data, H, W, consumer, placement):
    check_random_pipeline(data, H, W, consumer, placement, "cpu")


def check_random_pipeline(data, H, W, consumer, placement, target):
    body, reference = CONSUMERS[consumer]
    P = max(H, W) + 2
    A = te.placeholder((P, P), name="A")
    B = te.compute((P, P), lambda i, j: A[i, j] * 2.0 + 1.0, name="B")
    C = te.compute((H, W), body(B), name="C")
    s = create_schedule(C.op)
    random_loops(data.draw, s[C])
    if placement == "inline":
        s[B].compute_inline()
    elif placement == "root":
        random_loops(data.draw, s[B])
    else:
        s[B].compute_at(s[C], attach_point(data.draw, s[C]))
        random_loops(data.draw, s[B])
    note(str(s))
    a = random_array(np.random.default_rng(H * 10 + W), (P, P))
    (c,) = run(s, [A, C], [a], target=target)
    np.testing.assert_allclose(c, reference(2 * a + 1, H, W), rtol=1e-5, atol=1e-5)

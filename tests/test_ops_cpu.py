"""The operator library on the "cpu" target through ``schedule_for``: the default schedules
(generic and per-op) compute what the python target computes, and the code they generate has
the shape that makes it fast."""

import numpy as np

import te
from runtime import build
from schedules import schedule_for
from te import ops


def test_float_max_reduction_uses_maxnum():
    # numba's max() is a compare and a select that LLVM does not vectorize as a reduction;
    # the cpu target emits llvm.maxnum / minnum instead (10x on a row maximum).
    x = te.placeholder((6, 40), name="x")
    hi, lo = ops.reduce_max(x, axis=1), ops.reduce_min(x, axis=1)
    f = build(schedule_for([hi, lo], "cpu"), [x, hi, lo], "cpu")
    assert "fast_max(" in f.source and "fast_min(" in f.source
    a = np.random.default_rng(0).standard_normal((6, 40)).astype("float32")
    got_hi, got_lo = np.empty(6, "float32"), np.empty(6, "float32")
    f(a, got_hi, got_lo)
    np.testing.assert_array_equal(got_hi, a.max(1))
    np.testing.assert_array_equal(got_lo, a.min(1))
    assert f.vector_stats()["zmm_ops"] + f.vector_stats()["ymm_ops"] > 0

"""The operator library on the "cpu" target through ``schedule_for``: the default schedules
(generic and per-op) compute what the python target computes, and the code they generate has
the shape that makes it fast."""

import numpy as np
import pytest

import te
from runtime import build
from schedules import schedule_for
from te import ops


def test_float_max_reduction_uses_maxnum(tmp_path, monkeypatch):
    # numba's max() is a compare and a select that LLVM does not vectorize as a reduction;
    # the cpu target emits llvm.maxnum / minnum instead (10x on a row maximum).
    monkeypatch.setenv("TETUNE_CACHE_DIR", str(tmp_path))  # numba shows no asm of cached code
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


def test_row_reduction_accumulates_in_a_scalar_with_full_fastmath():
    # A one-element local buffer is a scalar accumulator: the kernel keeps reassoc so that
    # LLVM vectorizes the row sums (only tiles of several elements need it off).
    x, g = te.placeholder((4, 96), name="x"), te.placeholder((96,), name="g")
    y = ops.layer_norm(x, g)
    f = build(schedule_for(y, "cpu"), [x, g, y], "cpu")
    assert f.build_info["fastmath"] is True
    assert sorted(f.build_info["register_tiles"]) == ["layer_norm_sqsum", "layer_norm_sum"]
    assert "layer_norm_sum_0 = layer_norm_sum_0 + " in f.source


def test_module_call_checks_every_new_argument_layout():
    # Module.__call__ remembers layouts it has checked; any other layout is checked again.
    from runtime.module import ArgumentError

    n = te.var("n")
    x = te.placeholder((n, 8), name="x")
    y = ops.relu(x)
    f = build(schedule_for(y, "cpu"), [x, y], "cpu")
    a = np.random.default_rng(0).standard_normal((3, 8)).astype("float32")
    out = np.empty_like(a)
    for _ in range(2):
        f(a, out)
        np.testing.assert_array_equal(out, np.maximum(a, 0))
    f(a[:2], out[:2])
    np.testing.assert_array_equal(out[:2], np.maximum(a[:2], 0))
    with pytest.raises(ArgumentError, match="n is 3"):
        f(a, out[:2])
    with pytest.raises(ArgumentError, match="dtype float32"):
        f(a.astype("float64"), out)
    with pytest.raises(ArgumentError, match="C-contiguous"):
        f(np.asfortranarray(a), out)

"""The cpu schedules of matmul, dense, batch_matmul and conv2d (schedules/cpu/gemm.py and
conv2d.py) against numpy, through ``schedule_for`` and through random points of their
tuning spaces; fused epilogues build one kernel without an anchor-sized buffer.

numba builds take seconds each, so the cpu cases use tiny shapes and share builds; the
python target covers the rest."""

import numpy as np
import pytest
from conftest import random_array

import te
from schedules import create_schedule, lower, replay


def test_cache_read_with_a_layout_packs_and_replays(rng):
    A = te.placeholder((5, 7), name="A")
    W = te.placeholder((11, 7), name="W")
    C = te.ops.dense(A, W)
    s = create_schedule(C.op)
    packed = s.cache_read(W, "global", [C], layout=("AB", "AB4a"))
    assert [int(d) for d in packed.shape] == [3, 7, 4]  # 11 rows in blocks of 4, zero-padded
    text = str(lower(s, [A, W, C]))
    assert "W.global[j // 4, k, j % 4]" in text
    a, w = random_array(rng, (5, 7)), random_array(rng, (11, 7))
    from conftest import run_python
    np.testing.assert_allclose(run_python(s, [A, W, C], [a, w])[0], a @ w.T, rtol=1e-5)
    again = replay([C.op], s.steps)
    assert str(lower(again, [A, W, C])) == text

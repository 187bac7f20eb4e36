"""The autotuner on the cuda target, in numba's CUDA simulator: candidates are built, checked
against the default config and timed in the measuring workers like cpu candidates."""

import numpy as np
from cuda_sim import rerun, simulator  # noqa: F401 - simulator is an autouse fixture

import autotune
import te
from autotune.measure_types import MeasureErrorNo
from autotune.tuner import RandomTuner
from runtime import build

test_in_subprocess = rerun(__file__)

MATMUL = (("TENSOR", (16, 8), "float32"), ("TENSOR", (8, 16), "float32"), False, False,
          "float32")


def test_cuda_candidates_are_measured_in_workers(tmp_path):
    task = autotune.create_task("matmul", MATMUL, target="cuda")
    assert len(task.config_space) > 1
    option = autotune.measure_option(autotune.LocalBuilder(n_parallel=1, timeout=300),
                                     autotune.LocalRunner(number=1, repeat=1, timeout=300))
    seen = []
    log = tmp_path / "cuda.jsonl"
    RandomTuner(task, seed=0).tune(
        3, option, callbacks=[lambda tuner, inputs, results: seen.extend(results),
                              autotune.log_to_file(str(log))])
    assert len(seen) == 3
    ok = [r for r in seen if r.error_no == MeasureErrorNo.NO_ERROR]
    assert ok, [r.error_msg for r in seen]
    assert all(min(r.costs) > 0 for r in ok)

    # the best record builds again on the cuda target and computes the product
    with autotune.apply_history_best(str(log)):
        A = te.placeholder((16, 8), name="A")
        B = te.placeholder((8, 16), name="B")
        C = te.ops.matmul(A, B)
        from schedules import schedule_for

        mod = build(schedule_for([C], "cuda"), [A, B, C], target="cuda")
    rng = np.random.default_rng(3)
    a = rng.standard_normal((16, 8)).astype(np.float32)
    b = rng.standard_normal((8, 16)).astype(np.float32)
    c = np.empty((16, 16), np.float32)
    mod(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)

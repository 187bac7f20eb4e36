"""Measuring candidates in worker processes: results, timings, and every way a candidate can
fail (fault injection through real forked workers, on tiny shapes)."""

import os
import signal
import sys
import time

import numpy as np
import pytest

import te
from autotune import (
    LocalBuilder,
    LocalRunner,
    MeasureErrorNo,
    MeasureInput,
    create_task,
    measure_option,
    template,
)
from autotune.candidate import mismatch
from autotune.measure import create_measure_batch
from autotune.workers import Worker
from schedules import create_schedule, get_config

MODES = ["ok", "segv", "exit", "hang", "raise", "wrong", "bad_lower", "slow"]


@template("test_measure_faults")
def faults(n):
    """y = 2 * x, except for the knob values that fail on purpose."""
    cfg = get_config()
    cfg.define_knob("mode", MODES)
    cfg.define_split("tile", n, num_outputs=2)
    mode = cfg["mode"].val  # a ConfigSpace answers "ok": the parent never trips a fault
    if mode == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "exit":
        os._exit(3)
    if mode == "hang":
        time.sleep(600)
    if mode == "raise":
        raise ValueError("knob 'mode' says raise")
    A = te.placeholder((n,), name="A")
    if mode == "slow":  # a kernel that runs far past the run time limit on the python target
        k = te.reduce_axis((0, 10**9), name="k")
        Z = te.compute((1,), lambda _: te.sum(A[0] * 0.0, axis=k), name="Z")
        B = te.compute((n,), lambda i: A[i] * 2.0 + Z[0], name="B")
    elif mode == "wrong":
        B = te.compute((n,), lambda i: A[i] * 2.0 + 1.0, name="B")
    else:
        B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    s = create_schedule(B.op)
    cfg["tile"].apply(s, B, B.op.axis[0])
    if mode == "bad_lower":
        return s, [B]  # A is read but not an argument: lowering fails
    return s, [A, B]


def _inputs(task, modes, tile=None):
    space = task.config_space
    out = []
    for mode in modes:
        knobs = {"mode": mode, "tile": tile or space["tile"].to_json()}
        out.append(MeasureInput(task, space.from_json(knobs)))
    return out


@pytest.fixture(scope="module")
def fault_results():
    task = create_task("test_measure_faults", (16,), target="python")
    option = measure_option(LocalBuilder(n_parallel=2, timeout=4),
                            LocalRunner(number=1, repeat=2, min_repeat_ms=0, timeout=2))
    modes = ["ok", "segv", "exit", "hang", "raise", "wrong", "bad_lower", "slow", "ok"]
    with create_measure_batch(task, option) as measure:
        start = time.perf_counter()
        results = measure(_inputs(task, modes))
        elapsed = time.perf_counter() - start
        again = measure(_inputs(task, ["ok"], tile=[-1, 4]))  # workers were respawned
    return dict(zip(modes[:-1], results)), results[-1], again[0], elapsed


def test_a_good_candidate_has_costs_and_build_time(fault_results):
    by_mode, last, again, _ = fault_results
    for res in (by_mode["ok"], last, again):
        assert res.error_no == MeasureErrorNo.NO_ERROR, res.error_msg
        assert len(res.costs) == 2 and all(c > 0 for c in res.costs)
        assert 0 < res.build_cost <= res.all_cost
        assert res.timestamp > time.time() - 300


@pytest.mark.parametrize("mode, error_no, words", [
    ("segv", MeasureErrorNo.WORKER_CRASH, "SIGSEGV while building"),
    ("exit", MeasureErrorNo.WORKER_CRASH, "exited with status 3"),
    ("hang", MeasureErrorNo.COMPILE_TIMEOUT, "building took longer"),
    ("raise", MeasureErrorNo.INSTANTIATION_ERROR, "knob 'mode' says raise"),
    ("wrong", MeasureErrorNo.WRONG_ANSWER, "output B: 16 of 16 elements differ"),
    ("bad_lower", MeasureErrorNo.COMPILE_ERROR, "not one of the args"),
    ("slow", MeasureErrorNo.RUN_TIMEOUT, "running took longer"),
])
def test_each_fault_is_recorded_and_the_batch_goes_on(fault_results, mode, error_no, words):
    res = fault_results[0][mode]
    assert res.error_no == error_no, (mode, res)
    assert words in res.error_msg
    assert res.costs == ()


def test_a_batch_waits_for_its_timeouts_only_once(fault_results):
    # The hang (4 s build limit) and the slow kernel (2 s run limit) dominate; a batch that
    # serialised everything or waited on dead workers would take far longer.
    assert fault_results[3] < 20


def test_mismatch_names_the_output_and_element():
    ref = [np.array([1.0, 2.0, 3.0], dtype=np.float32)]
    assert mismatch(["C"], [ref[0] + 1e-5], ref) is None
    msg = mismatch(["C"], [np.array([1.0, 2.5, np.nan], dtype=np.float32)], ref)
    assert msg.startswith("output C: 2 of 3 elements differ") and "first at [1]" in msg
    both_nan = [np.array([np.nan], dtype=np.float32)]
    assert mismatch(["C"], both_nan, both_nan) is None
    assert "int32[2]" in mismatch(["C"], [np.zeros(2, np.int32)], ref)


def test_measure_option_takes_autotvm_spellings():
    option = measure_option(builder="local", runner=LocalRunner(number=4))
    assert option.builder == LocalBuilder() and option.runner.number == 4
    with pytest.raises(TypeError, match="runner must be a LocalRunner"):
        measure_option(runner="rpc")
    with pytest.raises(ValueError, match="repeat must be >= 1"):
        LocalRunner(repeat=0)


def test_cpu_candidates_are_built_once_and_loaded_from_the_kernel_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TETUNE_CACHE_DIR", str(tmp_path / "cache"))
    task = create_task("test_measure_faults", (64,), target="cpu")
    option = measure_option(LocalBuilder(n_parallel=2, timeout=60),
                            LocalRunner(number=2, repeat=2, min_repeat_ms=0, timeout=60))
    with create_measure_batch(task, option) as measure:
        results = measure(_inputs(task, ["ok", "wrong"], tile=[-1, 8]))
    assert results[0].error_no == MeasureErrorNo.NO_ERROR, results[0].error_msg
    assert results[0].extra["cache_hit"]  # the runner loaded what a builder compiled
    assert results[1].error_no == MeasureErrorNo.WRONG_ANSWER
    assert list((tmp_path / "cache").rglob("k_*.py"))


def test_constant_inputs_are_packed_once_outside_the_timed_kernel():
    """A dense's weights are constant in a network: the candidate's packed copy of W comes
    from a prologue that runs before the check, and the timed kernel only reads it; a
    matmul's B may be an activation, so its packing stays in the timed kernel."""
    from autotune import candidate

    spec = ("dense", (("TENSOR", (4, 8), "float32"), ("TENSOR", (40, 8), "float32"),
                      "float32"), "python")
    candidate.load(spec, None)
    built = candidate._loaded[(repr(spec), None)]
    assert built.prologue is not None and built.prologue_inputs == (1,)
    assert [p.name for p in built.module.func.params][-1] == "in1.global"
    (got,) = candidate.reference_outputs(spec)
    x, w, _ = candidate._arrays(built.tensors)[0]
    np.testing.assert_allclose(got, x @ w.T, rtol=1e-5, atol=1e-5)

    spec = ("matmul", (("TENSOR", (4, 8), "float32"), ("TENSOR", (40, 8), "float32"),
                       False, True, "float32"), "python")
    candidate.load(spec, None)
    built = candidate._loaded[(repr(spec), None)]
    assert built.prologue is None and "in1_global = np.empty" in built.module.source


def test_workers_are_spawned_after_the_parent_ran_gnu_openmp(monkeypatch):
    import numba
    from numba.np.ufunc import omppool, parallel

    from autotune import workers
    from autotune.measure import _check_fork_safe

    monkeypatch.setattr(parallel, "_is_initialized", True)
    monkeypatch.setattr(numba, "threading_layer", lambda: "omp")
    monkeypatch.setattr(omppool, "openmp_vendor", "GNU")
    monkeypatch.setattr(workers, "_context", workers._context)  # restored afterwards
    assert _check_fork_safe("python")  # the python target runs no numba kernel
    with pytest.warns(RuntimeWarning, match="spawned instead"):
        assert not _check_fork_safe("cpu -parallel=1")
    assert workers.spawning()
    worker = workers.Worker()
    try:  # a spawned worker serves calls like a forked one
        assert worker.call(_sleep_and_return, (0, "spawned"), 60).value == "spawned"
    finally:
        worker.close()


def _sleep_and_return(seconds, value):
    time.sleep(seconds)
    return value


def test_a_worker_never_answers_with_a_stale_reply():
    worker = Worker()
    try:
        worker.submit(_sleep_and_return, (0.3, "stale"), 10)  # its caller gave up (Ctrl-C)
        assert worker.call(_sleep_and_return, (0, "fresh"), 10).value == "fresh"
        timed_out = worker.call(_sleep_and_return, (5, "late"), 0.2)
        assert timed_out.kind == "timeout"
        assert worker.call(_sleep_and_return, (0, "next"), 10).value == "next"
    finally:
        worker.close()


def test_workers_are_spawned_after_the_parent_initialised_a_real_gpu(monkeypatch):
    import types

    from autotune import workers
    from autotune.measure import _check_fork_safe
    from runtime import cuda_env

    fake_driver = types.ModuleType("numba.cuda.cudadrv.driver")
    fake_driver.driver = types.SimpleNamespace(is_initialized=False)
    for parent in ("numba.cuda", "numba.cuda.cudadrv"):
        monkeypatch.setitem(sys.modules, parent, types.ModuleType(parent))
    monkeypatch.setitem(sys.modules, "numba.cuda.cudadrv.driver", fake_driver)
    monkeypatch.setattr(cuda_env, "simulator_active", lambda: False)
    monkeypatch.setattr(workers, "_context", workers._context)  # restored afterwards
    assert _check_fork_safe("cuda")  # no CUDA context yet: forking is fine
    fake_driver.driver.is_initialized = True
    with pytest.warns(RuntimeWarning, match="CUDA driver.*spawned instead"):
        assert not _check_fork_safe("cuda")
    assert workers.spawning()

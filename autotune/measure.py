"""Measuring candidates: build them in parallel, time them one at a time, in child processes.

AutoTVM's interface::

    option = measure_option(builder=LocalBuilder(), runner=LocalRunner(number=1, repeat=3))
    measure_batch = create_measure_batch(task, option)
    results = measure_batch([MeasureInput(task, config), ...])

A batch is measured in two phases. First every candidate is instantiated, lowered and
compiled by ``n_parallel`` builder processes side by side; on the cpu target this leaves its
kernel in the on-disk kernel cache (``TETUNE_CACHE_DIR``). Then, with no build running, one
runner process loads each candidate from that cache, checks its outputs against the task's
default config on seeded random inputs and times it. Timing one candidate at a time on an
otherwise idle pool is what makes two candidates' times comparable.

A candidate that raises, fails to compile, crashes its process, overruns its time limit or
computes a different answer becomes a ``MeasureResult`` with the matching
``MeasureErrorNo``; a batch never raises because of one candidate.
"""

from __future__ import annotations

import sys
import time
import warnings
import weakref
from dataclasses import dataclass, field

from schedules.registry import workload_key

from . import candidate, workers
from .measure_types import MeasureErrorNo, MeasureInput, MeasureResult
from .workers import Outcome, Worker, WorkerPool, usable_cores

__all__ = ["LocalBuilder", "LocalRunner", "MeasureBatch", "MeasureOption",
           "create_measure_batch", "measure_option"]


@dataclass(frozen=True)
class LocalBuilder:
    """Compile candidates in ``n_parallel`` local processes (None: one per usable core),
    each allowed ``timeout`` seconds."""

    n_parallel: int | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class LocalRunner:
    """Time candidates in a local process: ``repeat`` measurements, each the mean of
    ``number`` calls (grown until one measurement lasts ``min_repeat_ms``), after one
    warm-up call. ``timeout``: seconds allowed for checking and timing one candidate.
    ``cooldown_interval``: seconds of rest between repeats. ``enable_cpu_cache_flush``:
    evict the CPU caches before each repeat (streams a buffer larger than the last-level
    cache), so that with ``number=1`` each call starts cold."""

    number: int = 1
    repeat: int = 3
    min_repeat_ms: float = 20.0
    timeout: float = 10.0
    cooldown_interval: float = 0.0
    enable_cpu_cache_flush: bool = False

    def __post_init__(self):
        if self.number < 1 or self.repeat < 1:
            raise ValueError(f"LocalRunner: number and repeat must be >= 1, got number="
                             f"{self.number}, repeat={self.repeat}")


@dataclass(frozen=True)
class MeasureOption:
    builder: LocalBuilder = field(default_factory=LocalBuilder)
    runner: LocalRunner = field(default_factory=LocalRunner)


def measure_option(builder=None, runner=None) -> MeasureOption:
    """How to build and run candidates (AutoTVM's ``autotvm.measure_option``). ``builder``
    and ``runner`` default to ``LocalBuilder()`` and ``LocalRunner()``; the string
    ``"local"`` means the same."""
    builder = LocalBuilder() if builder in (None, "local") else builder
    runner = LocalRunner() if runner in (None, "local") else runner
    if not isinstance(builder, LocalBuilder):
        raise TypeError(f"measure_option: builder must be a LocalBuilder, got {builder!r}")
    if not isinstance(runner, LocalRunner):
        raise TypeError(f"measure_option: runner must be a LocalRunner, got {runner!r}")
    return MeasureOption(builder, runner)


def create_measure_batch(task, option: MeasureOption | None = None) -> MeasureBatch:
    """A callable that measures a list of ``MeasureInput`` of ``task`` and returns their
    ``MeasureResult`` in the same order; ``.n_parallel`` is the number of parallel builds
    (a good batch size). Call ``.close()`` (or use it as a context manager) to stop its
    worker processes early; they also stop when it is garbage collected."""
    return MeasureBatch(task, option or measure_option())


class MeasureBatch:
    """See ``create_measure_batch``."""

    def __init__(self, task, option: MeasureOption):
        self.task = task
        self.option = option
        self.n_parallel = option.builder.n_parallel or usable_cores()
        self._builders = WorkerPool(self.n_parallel)
        self._runner = Worker()
        self._references: dict = {}  # (workload key, target) -> outputs, or None: unchecked
        self._finalizer = weakref.finalize(self, _close, self._builders, self._runner)
        _preload_codegen(task.target)

    def __call__(self, inputs: list[MeasureInput]) -> list[MeasureResult]:
        if not inputs:
            return []
        _check_fork_safe(self.task.target)
        builder = self.option.builder
        specs = [_spec(inp.task) for inp in inputs]
        built = self._builders.map(candidate.build,
                                   [(spec, inp.config.index) for spec, inp in zip(specs, inputs)],
                                   builder.timeout)
        results = []
        for inp, spec, outcome in zip(inputs, specs, built):
            if outcome.ok:
                results.append(self._run(inp, spec, outcome.seconds))
            else:
                results.append(_failure(outcome, "build", outcome.seconds, outcome.seconds))
        return results

    def _run(self, inp: MeasureInput, spec, build_cost: float) -> MeasureResult:
        builder, runner = self.option.builder, self.option.runner
        reference = self._reference(inp.task, spec)
        index = inp.config.index
        loaded = self._runner.call(candidate.load, (spec, index), builder.timeout)
        if not loaded.ok:
            return _failure(loaded, "load", build_cost, build_cost + loaded.seconds)
        ran = self._runner.call(
            candidate.run,
            (spec, index, reference, runner.number, runner.repeat, runner.min_repeat_ms,
             runner.cooldown_interval * 1e3, runner.enable_cpu_cache_flush),
            runner.timeout)
        all_cost = build_cost + loaded.seconds + ran.seconds
        if not ran.ok:
            return _failure(ran, "run", build_cost, all_cost)
        return MeasureResult(tuple(ran.value), MeasureErrorNo.NO_ERROR, all_cost, time.time(),
                             build_cost=build_cost, extra={"cache_hit": loaded.value})

    def _reference(self, task, spec):
        key = (workload_key(task.workload), task.target)
        if key not in self._references:
            timeout = self.option.builder.timeout + self.option.runner.timeout
            outcome = self._runner.call(candidate.reference_outputs, (spec,), timeout)
            if outcome.ok:
                self._references[key] = outcome.value
            else:
                self._references[key] = None
                warnings.warn(f"{task}: the default config failed ({_message(outcome)}); "
                              "candidates' answers are not checked", RuntimeWarning,
                              stacklevel=3)
        return self._references[key]

    def close(self) -> None:
        """Stop the worker processes."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _close(builders: WorkerPool, runner: Worker) -> None:
    builders.close()
    runner.close()


def _spec(task) -> tuple:
    return (task.name, task.args, task.target)


# How each way of failing maps to an error number, per phase.
_TIMEOUT = {"build": MeasureErrorNo.COMPILE_TIMEOUT, "load": MeasureErrorNo.COMPILE_TIMEOUT,
            "run": MeasureErrorNo.RUN_TIMEOUT}
_RAISED = {"build": MeasureErrorNo.COMPILE_ERROR, "load": MeasureErrorNo.COMPILE_ERROR,
           "run": MeasureErrorNo.RUNTIME_ERROR}
_DOING = {"build": "building", "load": "loading", "run": "running"}


def _message(outcome: Outcome) -> str:
    name, text, _ = outcome.error
    if outcome.kind == "raised" and name != "CandidateError":
        return f"{name}: {text}"
    return text


def _failure(outcome: Outcome, phase: str, build_cost: float, all_cost: float) -> MeasureResult:
    if outcome.kind == "timeout":
        error_no = _TIMEOUT[phase]
        msg = f"{_DOING[phase]} took longer than the limit ({outcome.error[1]})"
    elif outcome.kind == "crashed":
        error_no = MeasureErrorNo.WORKER_CRASH
        msg = f"{outcome.error[1]} while {_DOING[phase]} the candidate"
    else:
        code = outcome.error[2]
        error_no = MeasureErrorNo(code) if code is not None else _RAISED[phase]
        msg = _message(outcome)
    return MeasureResult((), error_no, all_cost, time.time(), error_msg=msg,
                         build_cost=build_cost)


def _preload_codegen(target: str) -> None:
    # Import numba and the code generator once in the parent, before any worker is forked,
    # so that each worker does not pay for the import again.
    import runtime

    if str(target).split()[0] in ("cpu", "llvm"):
        import runtime.codegen_cpu  # noqa: F401


def _check_fork_safe(target: str) -> bool:
    """Whether forked workers can run this target's kernels; when they cannot (the parent
    already ran a parallel kernel on GNU OpenMP, and numba terminates a forked child that
    uses it again, or it already holds a CUDA context, which a forked child inherits
    broken), workers are spawned instead, with one warning."""
    kind = str(target).split()[0]
    if kind == "cuda":
        return _cuda_fork_safe()
    if kind not in ("cpu", "llvm") or "numba" not in sys.modules:
        return True
    from numba.np.ufunc import parallel

    if not parallel._is_initialized:
        return True
    try:
        from numba.np.ufunc import omppool
    except ImportError:
        return True
    import numba

    if numba.threading_layer() == "omp" and omppool.openmp_vendor == "GNU":
        if workers.spawning():
            return False  # switched (and warned) before
        _spawn_from_now_on(
            "this process has already run a parallel numba kernel on GNU OpenMP, which a "
            "forked process cannot use again", "Tune before running kernels, or set "
            "NUMBA_THREADING_LAYER=tbb, to keep forking.")
        return False
    return True


def _cuda_fork_safe() -> bool:
    """The simulator forks like any Python code; a real GPU's driver, once initialised in
    this process, cannot be used by a forked child."""
    from runtime import cuda_env

    if "numba.cuda" not in sys.modules or cuda_env.simulator_active():
        return True
    try:
        from numba.cuda.cudadrv.driver import driver
        initialised = bool(getattr(driver, "is_initialized", True))
    except Exception:  # noqa: BLE001 - no driver to speak of: nothing a fork could break
        return True
    if not initialised:
        return True
    if not workers.spawning():
        _spawn_from_now_on("this process has already initialised the CUDA driver, which a "
                           "forked process cannot use", "Tune before running cuda kernels "
                           "to keep forking.")
    return False


def _spawn_from_now_on(why: str, advice: str) -> None:
    workers.use_spawn()
    warnings.warn(f"{why}: measuring workers are spawned instead, so templates must be "
                  f"importable (defined in a module, not a notebook cell). {advice}",
                  RuntimeWarning, stacklevel=4)

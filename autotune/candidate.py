"""What a measurement worker does with one candidate: build it, load it, check and time it.

These functions run inside the worker processes of ``autotune.measure`` and receive plain
values: a task as ``(name, args, target)`` and a config as its index in the task's space
(the template is found in the registry the worker inherited from its parent). A failure
that belongs to the candidate raises ``CandidateError`` carrying its ``MeasureErrorNo``.

Every candidate of a task computes the same outputs from the same inputs: seeded random
data, and the outputs of the task's default config, computed once, as the reference.

A template's constant inputs (a conv's or dense's weights, ``Template.constant_inputs``) are
treated as a network treats them: what the candidate derives from them alone (its packed
copy) is made once by a prologue before the check, and only the main kernel is timed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schedules.prologue import hoists_on, split_prologue
from te import arith
from te.tensor import PlaceholderOp

from .measure_types import MeasureErrorNo
from .task import Task

__all__ = ["CandidateError", "build", "load", "reference_outputs", "run"]

INPUT_SEED = 0

# Tolerance of the answer check, relative to the largest magnitude in the reference output:
# candidates reorder floating-point sums, so float results differ in their last bits.
RTOL = {"float16": 1e-2, "float32": 1e-3, "float64": 1e-6}


class CandidateError(Exception):
    """A candidate failed; ``error_no`` says at which step."""

    def __init__(self, error_no: MeasureErrorNo, message: str):
        super().__init__(message)
        self.error_no = int(error_no)


def _short(exc: BaseException, limit: int = 500) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= limit else text[:limit] + " ..."


# A worker sees the same few tasks again and again; their config spaces (one template run
# each) are computed once per worker.
_tasks: dict = {}


def _task(spec) -> Task:
    key = repr(spec)
    if key not in _tasks:
        _tasks[key] = Task(*spec)
    return _tasks[key]


@dataclass
class Built:
    """A compiled candidate: ``module`` takes ``tensors`` then the ``prepared`` arrays that
    ``prologue`` (if any) computes from the tensors at ``prologue_inputs``."""

    module: object
    tensors: list
    prologue: object = None
    prologue_inputs: tuple = ()
    prepared: tuple = ()

    def prepare(self, arrays: list) -> list:
        out = [np.empty(tuple(arith.const_int(d) for d in t.shape), t.dtype)
               for t in self.prepared]
        if self.prologue is not None:
            self.prologue(*[arrays[k] for k in self.prologue_inputs], *out)
        return out


def _compile(task: Task, index: int | None) -> Built:
    config = task.config_space.get(index) if index is not None else None
    try:
        s, tensors = task.instantiate(config)
    except Exception as exc:
        raise CandidateError(MeasureErrorNo.INSTANTIATION_ERROR,
                             f"template {task.name!r}: {_short(exc)}") from None
    import runtime  # here, not at import: the parent imports this module before it forks

    tensors = list(tensors)
    constants = [tensors[k] for k in task.template.constant_inputs] \
        if hoists_on(task.target) else []
    try:
        split = split_prologue(s, tensors, constants)  # lowers the schedule
        module = runtime.build(split.main, target=task.target)
        prologue = runtime.build(split.prologue, target=task.target) \
            if split.prologue is not None else None
    except Exception as exc:
        raise CandidateError(MeasureErrorNo.COMPILE_ERROR, _short(exc)) from None
    return Built(module, tensors, prologue, tuple(split.prologue_inputs),
                 tuple(split.prepared))


def build(spec, index: int) -> None:
    """Instantiate, lower and compile candidate ``index`` (on the cpu target this leaves the
    compiled kernel in the on-disk kernel cache, where ``load`` finds it)."""
    _compile(_task(spec), index)


# The runner worker keeps the one candidate it loaded last, for the ``run`` that follows.
_loaded: dict = {}


def load(spec, index: int | None) -> bool:
    """Build candidate ``index`` (None: the default config) in this worker for ``run``;
    returns whether the kernel came from the kernel cache."""
    built = _compile(_task(spec), index)
    _loaded.clear()
    _loaded[(repr(spec), index)] = built
    return bool(built.module.build_info.get("cache_hit", False))


def _arrays(tensors) -> tuple[list, list[int]]:
    """Arguments in the kernel's order: seeded random inputs, NaN-filled outputs (so an
    element a candidate forgets to write shows up); and the positions of the outputs."""
    rng = np.random.default_rng(INPUT_SEED)
    arrays, outputs = [], []
    for pos, t in enumerate(tensors):
        shape = tuple(arith.const_int(d) for d in t.shape)
        if None in shape:
            raise CandidateError(MeasureErrorNo.RUNTIME_ERROR,
                                 f"tensor {t.name} has a symbolic shape {t.shape}; a task "
                                 "must give every extent")
        dtype = np.dtype(t.dtype)
        if isinstance(t.op, PlaceholderOp):
            if dtype.kind == "f":
                arrays.append(rng.uniform(-1.0, 1.0, shape).astype(dtype))
            elif dtype.kind == "b":
                arrays.append(rng.integers(0, 2, shape).astype(bool))
            else:  # small and non-negative: index inputs (take, gather) stay in range
                arrays.append(rng.integers(0, 4, shape).astype(dtype))
        else:
            outputs.append(pos)
            fill = np.nan if dtype.kind == "f" else 0
            arrays.append(np.full(shape, fill, dtype=dtype))
    return arrays, outputs


def _call(built: Built) -> tuple[list, list]:
    """Run the candidate once; returns all its arguments (prepared arrays last) and its
    outputs."""
    arrays, outputs = _arrays(built.tensors)
    try:
        arrays += built.prepare(arrays)
        built.module(*arrays)
    except Exception as exc:
        raise CandidateError(MeasureErrorNo.RUNTIME_ERROR, _short(exc)) from None
    return arrays, [arrays[i] for i in outputs]


def reference_outputs(spec) -> list:
    """The default config's outputs on the seeded inputs."""
    load(spec, None)
    return _call(_loaded[(repr(spec), None)])[1]


def run(spec, index: int, reference, number: int, repeat: int, min_repeat_ms: float,
        cooldown_ms: float, flush_cache: bool) -> tuple:
    """Check the loaded candidate against ``reference`` (None: unchecked), then time it;
    returns the seconds per call of each repeat."""
    built = _loaded[(repr(spec), index)]
    arrays, outputs = _call(built)
    if reference is not None:
        names = [t.name for t in built.tensors if not isinstance(t.op, PlaceholderOp)]
        problem = mismatch(names, outputs, reference)
        if problem:
            raise CandidateError(MeasureErrorNo.WRONG_ANSWER, problem)
    timer = built.module.time_evaluator(number=number, repeat=repeat, min_repeat_ms=min_repeat_ms,
                                  cooldown_interval_ms=cooldown_ms, flush_cache=flush_cache)
    try:
        timing = timer(*arrays)
    except Exception as exc:
        raise CandidateError(MeasureErrorNo.RUNTIME_ERROR, _short(exc)) from None
    return timing.results


def mismatch(names, outputs, reference) -> str | None:
    """Why ``outputs`` differ from ``reference`` (a sentence naming the output, the element
    and both values), or None when they agree."""
    if len(outputs) != len(reference):
        return f"{len(outputs)} outputs, the default config has {len(reference)}"
    for name, out, ref in zip(names, outputs, reference):
        if out.shape != ref.shape or out.dtype != ref.dtype:
            return (f"output {name} is {out.dtype}{list(out.shape)}, the default config's is "
                    f"{ref.dtype}{list(ref.shape)}")
        if out.dtype.kind == "f":
            rtol = RTOL.get(str(out.dtype), 1e-3)
            finite = np.isfinite(ref)
            scale = float(np.max(np.abs(ref[finite]), initial=0.0)) or 1.0
            tol = rtol * scale
            with np.errstate(invalid="ignore", over="ignore"):
                diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
                same = (diff <= tol) | (out == ref) | (np.isnan(out) & np.isnan(ref))
        else:
            tol = 0
            same = out == ref
        if not same.all():
            bad = ~same
            where = np.unravel_index(int(np.argmax(bad)), out.shape)
            return (f"output {name}: {int(bad.sum())} of {out.size} elements differ from the "
                    f"default config's, first at {list(map(int, where))}: {out[where]!r} vs "
                    f"{ref[where]!r} (tolerance {tol:.3g})")
    return None

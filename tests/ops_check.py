"""Shared by the operator-library tests: input generators, the ONNX reference, and the
functions that build ops and compare them with their references.

A test table row is an ``OpCase``: the op applied to placeholders, a reference on numpy
arrays, and one generator per input. ``check(case, inline)`` builds it on the "python"
target with every stage at the root (the definition's own semantics).

On the "cpu" target a numba build costs 0.3-5 s, so the tables are checked in groups:
``check_group(cases)`` builds the outputs of several cases as one kernel, scheduled by
``schedule_for`` (the default schedules: op schedules, the multi-anchor dispatch and the
generic schedule together); when that fails, each case is checked alone to name the culprit.
``cpu_groups(table)`` splits a table into such groups for ``pytest.mark.parametrize``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import te
from runtime import build
from schedules import create_schedule, schedule_for
from te.ops import tags

# -- inputs: each generator takes a numpy Generator and returns one array -------------------


def f32(*shape, lo=None, hi=None):
    """Random float32 normal values, or uniform in [lo, hi); never all zeros."""
    def make(rng):
        if lo is not None:
            return rng.uniform(lo, hi, size=shape).astype("float32")
        return rng.standard_normal(shape).astype("float32")
    return make


def pos(*shape):
    """Positive float32 values (for log, sqrt, power)."""
    return f32(*shape, lo=0.5, hi=2.0)


def ints(*shape, lo=-5, hi=5, dtype="int32"):
    return lambda rng: rng.integers(lo, hi, size=shape).astype(dtype)


def bools(*shape):
    return lambda rng: rng.random(shape) < 0.5


# -- the ONNX reference -----------------------------------------------------------------------

_ELEM = {np.dtype(k): v for k, v in (
    ("float32", onnx.TensorProto.FLOAT), ("float64", onnx.TensorProto.DOUBLE),
    ("int32", onnx.TensorProto.INT32), ("int64", onnx.TensorProto.INT64),
    ("bool", onnx.TensorProto.BOOL))}


def onnx_model(op_type: str, arrays, consts=(), n_out: int = 1, opset: int = 21,
               out_type=onnx.TensorProto.UNDEFINED, **attrs):
    """A model of the single ONNX node ``op_type``: ``arrays`` are its first inputs (x0, x1,
    ...), ``consts`` (arrays, or None for an omitted optional input) the following ones."""
    names = [f"x{n}" for n in range(len(arrays))]
    inits, const_names = [], []
    for n, c in enumerate(consts):
        if c is None:
            const_names.append("")
            continue
        const_names.append(f"c{n}")
        inits.append(numpy_helper.from_array(np.asarray(c), f"c{n}"))
    outs = [f"y{n}" for n in range(n_out)]
    node = helper.make_node(op_type, names + const_names, outs, **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, _ELEM[a.dtype], a.shape) for n, a in
         zip(names, arrays)],
        [helper.make_tensor_value_info(n, out_type, None) for n in outs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10  # what opset 21 needs; newer ones are beyond onnxruntime 1.2x
    return model


def onnx_ref(op_type: str, consts=(), n_out: int = 1, opset: int = 21, **attrs):
    """A reference function: the node run by onnx's ReferenceEvaluator (see onnx_model)."""
    def ref(*arrays):
        model = onnx_model(op_type, arrays, consts, n_out, opset, **attrs)
        got = ReferenceEvaluator(model).run(None, {f"x{n}": a for n, a in enumerate(arrays)})
        return tuple(got) if n_out > 1 else got[0]
    return ref


def ort_ref(op_type: str, consts=(), n_out: int = 1, opset: int = 21, **attrs):
    """The same as onnx_ref, run by onnxruntime (the second oracle, for where onnx's reference
    is wrong); the outputs have the dtype of the first input."""
    import onnxruntime

    def ref(*arrays):
        model = onnx_model(op_type, arrays, consts, n_out, opset, _ELEM[arrays[0].dtype],
                           **attrs)
        sess = onnxruntime.InferenceSession(model.SerializeToString(),
                                            providers=["CPUExecutionProvider"])
        got = sess.run(None, {f"x{n}": a for n, a in enumerate(arrays)})
        return tuple(got) if n_out > 1 else got[0]
    return ref


# -- the table row and the runner -------------------------------------------------------------


@dataclass
class OpCase:
    id: str
    op: Callable  # (*placeholders) -> Tensor or tuple of tensors
    ref: Callable  # (*arrays) -> array or tuple of arrays
    inputs: list = field(default_factory=list)  # one generator per input
    rtol: float = 1e-5
    atol: float = 1e-5


def params(cases):
    """``pytest.param``s of the cases, with their ids."""
    import pytest

    return [pytest.param(c, id=c.id) for c in cases]


def by_id(cases, case_id: str) -> OpCase:
    """The row of a table with this id."""
    return next(c for c in cases if c.id == case_id)


def inline_injective(s):
    """compute_inline every intermediate elemwise / broadcast / injective stage."""
    inlined = []
    for st in s.stages:
        op = st.op
        if isinstance(op, te.ComputeOp) and not st.is_output and tags.is_injective(op.tag):
            st.compute_inline()
            inlined.append(st.name)
    return inlined


def run(op, arrays, inline: bool = False):
    """Build ``op`` on placeholders shaped like ``arrays`` for the "python" target and run it;
    returns the outputs (a list) and the names of the stages that were inlined."""
    phs = [te.placeholder(a.shape, str(a.dtype), name=f"in{n}") for n, a in enumerate(arrays)]
    got = op(*phs)
    outs = list(got) if isinstance(got, (tuple, list)) else [got]
    s = create_schedule([o.op for o in outs])
    inlined = inline_injective(s) if inline else []
    f = build(s, phs + outs, target="python")
    results = [np.empty(tuple(int(d) for d in o.shape), dtype=o.dtype) for o in outs]
    f(*arrays, *results)
    return results, inlined


def check(case: OpCase, inline: bool = False, seed: int = 0):
    """Run ``case`` and compare every output with its reference."""
    rng = np.random.default_rng(seed)
    arrays = [make(rng) for make in case.inputs]
    results, inlined = run(case.op, arrays, inline)
    want = case.ref(*[a.copy() for a in arrays])
    want = list(want) if isinstance(want, (tuple, list)) else [want]
    assert len(results) == len(want), case.id
    for got, exp in zip(results, want):
        exp = np.asarray(exp)
        assert got.shape == exp.shape, f"{case.id}: shape {got.shape} != {exp.shape}"
        np.testing.assert_allclose(got, exp.astype(got.dtype), rtol=case.rtol, atol=case.atol,
                                   err_msg=case.id)
    return inlined


# -- the cpu target: default schedules, several cases per kernel -----------------------------

CPU_GROUP = 12  # cases per kernel: longer kernels compile longer, fewer kernels load faster


def cpu_groups(cases, size: int = CPU_GROUP):
    """``pytest.param``s of ``cases`` in groups of ``size`` (id: first..last case)."""
    import pytest

    groups = [cases[i:i + size] for i in range(0, len(cases), size)]
    return [pytest.param(g, id=f"{g[0].id}..{g[-1].id}" if len(g) > 1 else g[0].id)
            for g in groups]


def _build_group(cases, arrays, target):
    """One kernel computing every case's outputs; returns (module, outputs per case)."""
    phs, outs, per_case = [], [], []
    for n, (case, arrs) in enumerate(zip(cases, arrays)):
        mine = [te.placeholder(a.shape, str(a.dtype), name=f"c{n}_in{k}")
                for k, a in enumerate(arrs)]
        got = case.op(*mine)
        got = list(got) if isinstance(got, (tuple, list)) else [got]
        phs += mine
        per_case.append(got)
        outs += [o for o in got if all(o is not x for x in outs)]
    s = schedule_for(outs, target)
    return build(s, phs + outs, target=target), outs, per_case


def check_group(cases, target: str = "cpu", seed: int = 0, parallel: bool = False):
    """Check ``cases`` built together as one kernel of ``target`` (default schedules).

    The tables' shapes are tiny, so the schedules keep them on one thread; ``parallel``
    lowers the size threshold to 0, so that every stage that would run in parallel at a real
    size gets its parallel loop here too (numba compiles a parallel loop 3-5x slower: the
    op schedules' tables use it, the generic schedule's parallel loops have tests of their
    own)."""
    from schedules import generic

    rng = np.random.default_rng(seed)
    arrays = [[make(rng) for make in case.inputs] for case in cases]
    threshold = generic.MIN_PARALLEL_WORK
    if parallel:
        generic.MIN_PARALLEL_WORK = 0
    try:
        f, outs, per_case = _build_group(cases, arrays, target)
        results = {id(o): np.empty(tuple(int(d) for d in o.shape), dtype=o.dtype)
                   for o in outs}
        f(*[a for arrs in arrays for a in arrs], *[results[id(o)] for o in outs])
        for case, arrs, got in zip(cases, arrays, per_case):
            _compare(case, arrs, [results[id(o)] for o in got], target)
    except Exception:
        if len(cases) == 1:
            raise
        for case in cases:  # find the case at fault (its own error and traceback)
            check_group([case], target, seed, parallel)
        raise
    finally:
        generic.MIN_PARALLEL_WORK = threshold


def _compare(case, arrays, results, target):
    want = case.ref(*[a.copy() for a in arrays])
    want = list(want) if isinstance(want, (tuple, list)) else [want]
    assert len(results) == len(want), case.id
    for got, exp in zip(results, want):
        exp = np.asarray(exp)
        assert got.shape == exp.shape, f"{case.id}: shape {got.shape} != {exp.shape}"
        np.testing.assert_allclose(got, exp.astype(got.dtype), rtol=case.rtol, atol=case.atol,
                                   err_msg=f"{case.id} on {target}")

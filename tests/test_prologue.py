"""Constant prologues (schedules/prologue.py): the stages that read only constants (packed
weights) split off into a function run once; prologue + main compute what the whole schedule
computes, for random points of every cpu template's space."""

import random

import numpy as np
import pytest
from conftest import random_array
from test_cpu_schedules_nn import TEMPLATE_CASES, _template_reference, allocations

import te
from autotune.task import create_task
from runtime import build
from schedules import ScheduleError, create_schedule, lower, schedule_for
from schedules.prologue import split_prologue
from schedules.registry import apply_config
from te import ops


def run_split(split, tensors, arrays, target="python"):
    """Run ``split``'s prologue on the constants, then main; returns the output."""
    main = build(split.main, target=target)
    prepared = [np.empty(tuple(int(d) for d in t.shape), t.dtype) for t in split.prepared]
    if split.prologue is not None:
        build(split.prologue, target=target)(*[arrays[k] for k in split.prologue_inputs],
                                             *prepared)
    out = np.empty(tuple(int(d) for d in tensors[-1].shape), tensors[-1].dtype)
    main(*arrays, out, *prepared)
    return out


@pytest.mark.parametrize("name, args", TEMPLATE_CASES,
                         ids=[f"{c[0]}-{n}" for n, c in enumerate(TEMPLATE_CASES)])
def test_random_configs_with_constant_weights(name, args):
    """The second operand (B, the weights) is constant: whatever the config packs from it
    moves to the prologue, and the result is unchanged."""
    task = create_task(name, args)
    space = task.config_space
    pick = random.Random(f"prologue{name}{args}")
    indices = {space.default_index} | {pick.randrange(len(space)) for _ in range(3)}
    rng = np.random.default_rng(2)
    for index in sorted(indices):
        s, tensors = task.instantiate(space.get(index))
        split = split_prologue(s, tensors, [tensors[1]], "k")
        arrays = [random_array(rng, tuple(int(d) for d in t.shape)) for t in tensors[:2]]
        got = run_split(split, tensors, arrays)
        np.testing.assert_allclose(got, _template_reference(name, args, arrays), rtol=1e-4,
                                   atol=1e-4, err_msg=f"{name} at {space.get(index)}")
        # nothing computed in the prologue is computed again by main
        assert not set(allocations(split.main)) & {t.name for t in split.prepared}
        if split.prologue is not None:
            assert split.prologue_inputs == [1]


def _dense(pack_b: str):
    X = te.placeholder((4, 8), name="X")
    W = te.placeholder((40, 8), name="W")
    Y = ops.dense(X, W)
    space = create_task(*_workload(Y)).config_space
    knobs = space.default_config().to_json()
    knobs.update(tile_x=[-1, 16], pack_b=pack_b)
    with apply_config(space.from_json(knobs)):
        s = schedule_for(Y, "cpu")
    return s, [X, W, Y]


def _workload(t):
    name, *args = t.op.attrs["workload"]
    return name, list(args)


@pytest.mark.parametrize("pack_b", ["panel", "all"])
def test_packed_weights_move_to_the_prologue(pack_b):
    """A dense's packed W, whether packed panel by panel inside the tile loops or all at
    first, is computed whole by the prologue ([N/nr, K, nr]) and only read by main."""
    s, tensors = _dense(pack_b)
    split = split_prologue(s, tensors, [tensors[1]], "dense")
    (packed,) = split.prepared
    assert [int(d) for d in packed.shape] == [3, 8, 16]  # 40 columns in panels of 16
    assert "W.global" not in allocations(split.main)
    assert [p.name for p in split.main.params] == ["X", "W", "dense", "W.global"]
    assert [p.name for p in split.prologue.params] == ["W", "W.global"]
    rng = np.random.default_rng(0)
    arrays = [random_array(rng, (4, 8)), random_array(rng, (40, 8))]
    got = run_split(split, tensors, arrays, target="cpu")
    np.testing.assert_allclose(got, arrays[0] @ arrays[1].T, rtol=1e-5, atol=1e-5)


def test_without_constants_or_copies_nothing_moves():
    s, tensors = _dense("all")
    split = split_prologue(s, tensors, [], "dense")
    assert split.prologue is None and split.prepared == []
    assert "W.global" in allocations(split.main)
    s, tensors = _dense("none")  # W is constant, but nothing copies it
    split = split_prologue(s, tensors, [tensors[1]], "dense")
    assert split.prologue is None and split.prepared == []


def test_a_stage_reading_an_input_is_not_constant():
    A = te.placeholder((8,), name="A")
    W = te.placeholder((8,), name="W")
    scaled = te.compute((8,), lambda i: W[i] * 2.0, name="scaled")
    mixed = te.compute((8,), lambda i: A[i] + W[i], name="mixed")
    out = te.compute((8,), lambda i: scaled[i] * mixed[i], name="out")
    s = create_schedule(out.op)
    split = split_prologue(s, [A, W, out], [W], "k")
    assert [t.name for t in split.prepared] == ["scaled"]
    a, w = np.arange(8, dtype="float32") + 1, np.linspace(-1, 1, 8, dtype="float32")
    got = run_split(split, [A, W, out], [a, w])
    np.testing.assert_allclose(got, (w * 2) * (a + w), rtol=1e-6)


def test_lower_given_tensors_must_be_args_and_not_hosts():
    A = te.placeholder((8,), name="A")
    B = te.compute((8,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((8,), lambda i: B[i] * 2.0, name="C")
    s = create_schedule(C.op)
    with pytest.raises(ScheduleError, match="given tensor B must be one of the args"):
        lower(s, [A, C], given=[B])
    func = lower(s, [A, C, B], given=[B])
    assert "B" not in allocations(func) and [p.name for p in func.params] == ["A", "C", "B"]
    # a stage computed inside a given one has nowhere to go
    D = te.compute((8,), lambda i: A[i] - 1.0, name="D")
    E2 = te.compute((8,), lambda i: D[i] * 3.0, name="E")
    F = te.compute((8,), lambda i: E2[i] + 1.0, name="F")
    s = create_schedule(F.op)
    s[D].compute_at(s[E2], E2.op.axis[0])
    with pytest.raises(ScheduleError, match="D is computed at E, which is given"):
        lower(s, [A, F, E2], given=[E2])

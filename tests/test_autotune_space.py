"""Config spaces: every knob kind and policy, point arithmetic, JSON round trips, and a
template that computes the same as numpy at any point of its space."""

import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import te
from autotune.task import Task
from runtime import build
from schedules import create_schedule, get_config, lower, template
from schedules.space import (
    AnnotateEntity,
    ConfigError,
    ConfigSpace,
    OtherOptionEntity,
    ReorderEntity,
    SplitEntity,
)


def matmul(M, K, N):
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C


@template("test_space_matmul")
def matmul_template(M, K, N, split_policy):
    """Every knob kind at once; split_policy "power2"/"verbose" leaves tails to guard."""
    A, B, C = matmul(M, K, N)
    s = create_schedule(C.op)
    cfg = get_config()
    i, j = s[C].op.axis
    (k,) = s[C].op.reduce_axis
    cfg.define_split("tile_i", i, num_outputs=3, policy=split_policy)
    cfg.define_split("tile_j", j, num_outputs=2, policy=split_policy, max_factor=4)
    cfg.define_split("tile_k", k, num_outputs=2, policy="factors")
    io, im, ii = cfg["tile_i"].apply(s, C, i)
    jo, ji = cfg["tile_j"].apply(s, C, j)
    ko, ki = cfg["tile_k"].apply(s, C, k)
    cfg.define_reorder("order", [im, ko, ii, ki], policy="all")
    order = cfg["order"].apply(s, C, [im, ko, ii, ki])
    s[C].reorder(io, jo, *order, ji)
    cfg.define_annotate("ann", [ki, ji], policy="try_unroll_vec")
    cfg["ann"].apply(s, C, [ki, ji], max_unroll=8)
    cfg.define_knob("parallel", [False, True])
    if cfg["parallel"].val:
        s[C].parallel(io)
    cfg.add_flop(2 * M * N * K)
    return s, [A, B, C]


def sizes(space, name):
    return [e.size for e in space.space_map[name].entities]


# ----------------------------------------------------------------------------- knobs


def test_split_factors_are_exact_divisors():
    space = ConfigSpace()
    space.define_split("x", 12, num_outputs=2)
    assert sizes(space, "x") == [(-1, f) for f in (1, 2, 3, 4, 6, 12)]
    space.define_split("y", 12, num_outputs=3)
    for _, a, b in sizes(space, "y"):
        assert 12 % (a * b) == 0
    assert len(space.space_map["y"]) == sum(1 for a in range(1, 13) for b in range(1, 13)
                                           if 12 % a == 0 and 12 % b == 0 and 12 % (a * b) == 0)


def test_split_power2_verbose_and_max_factor():
    space = ConfigSpace()
    space.define_split("p", 10, policy="power2")
    assert sizes(space, "p") == [(-1, f) for f in (1, 2, 4, 8)]
    space.define_split("v", 10, policy="verbose")
    assert sizes(space, "v") == [(-1, f) for f in (1, 2, 4, 5, 8, 10)]
    space.define_split("m", 10, policy="verbose", max_factor=4)
    assert sizes(space, "m") == [(-1, f) for f in (1, 2, 4)]
    space.define_split("d", 64, default=[-1, 6])  # nearest candidate in log2 distance
    assert space["d"] == SplitEntity((-1, 8))


def test_split_errors():
    space = ConfigSpace()
    with pytest.raises(ConfigError, match="policy"):
        space.define_split("x", 8, policy="candidate")
    with pytest.raises(ConfigError, match="num_outputs"):
        space.define_split("x", 8, num_outputs=1)
    with pytest.raises(ConfigError, match="symbolic"):
        space.define_split("x", te.reduce_axis((0, te.var("n")), name="k"))
    space.define_split("x", 8)
    with pytest.raises(ConfigError, match="declared twice"):
        space.define_split("x", 16)
    space.define_split("x", 8)  # the same declaration again is fine (templates re-run)


def test_reorder_policies():
    axes = [te.reduce_axis((0, 4), name=n) for n in "abc"]
    space = ConfigSpace()
    space.define_reorder("all", axes, policy="all")
    assert {e.perm for e in space.space_map["all"].entities} == \
        set(itertools.permutations(range(3)))
    space.define_reorder("id", axes, policy="identity")
    assert [e.perm for e in space.space_map["id"].entities] == [(0, 1, 2)]
    a, b, c = axes
    space.define_reorder("cand", axes, policy="candidate", candidate=[[a, b, c], [c, a, b]])
    assert [e.perm for e in space.space_map["cand"].entities] == [(0, 1, 2), (2, 0, 1)]
    with pytest.raises(ConfigError, match="not a permutation"):
        space.define_reorder("bad", axes, policy="candidate", candidate=[[a, a, b]])
    with pytest.raises(ConfigError, match="not in axes"):
        space.define_reorder("bad", axes, policy="candidate",
                             candidate=[[a, b, te.reduce_axis((0, 2), name="z")]])
    with pytest.raises(ConfigError, match="needs candidate"):
        space.define_reorder("bad", axes, policy="candidate")
    with pytest.raises(ConfigError, match="policy"):
        space.define_reorder("bad", axes, policy="interleave")


def test_annotate_policies():
    axes = [te.reduce_axis((0, 4), name=n) for n in "abc"]
    space = ConfigSpace()
    space.define_annotate("u", axes, policy="try_unroll")
    assert len(space.space_map["u"]) == 2 ** 3
    space.define_annotate("v", axes, policy="try_vec")
    assert [e.anns for e in space.space_map["v"].entities] == \
        [("none", "none", "none"), ("none", "none", "vec")]
    space.define_annotate("uv", axes, policy="try_unroll_vec")
    assert len(space.space_map["uv"]) == 2 * 2 * 3
    assert all(e.anns[-1] in ("none", "unroll", "vec") for e in space.space_map["uv"].entities)
    with pytest.raises(ConfigError, match="policy"):
        space.define_annotate("bad", axes, policy="bind_gpu")


def test_annotate_apply_on_split_axes_respects_max_unroll():
    *_, C = matmul(8, 16, 8)
    s = create_schedule(C.op)
    _, ji = s[C].split(C.op.axis[1], factor=4)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=8)
    AnnotateEntity(("unroll", "unroll")).apply(s, C, [ki, ji], max_unroll=4)
    kinds = {iv.name: a.kind for iv, a in s[C].iter_attrs.items()}
    assert kinds == {"j.inner": "unrolled"}  # k.inner has 8 iterations > 4: stays a loop
    AnnotateEntity(("unroll", "vec")).apply(s, C, [ko, ji])  # no bound: always unrolled
    assert s[C].iter_attrs[ko].kind == "unrolled"
    assert s[C].iter_attrs[ji].kind == "vectorized"


def test_define_knob():
    space = ConfigSpace()
    space.define_knob("unroll", [0, 4, 16], default=4)
    assert space["unroll"] == OtherOptionEntity(4) and space["unroll"].val == 4
    with pytest.raises(ConfigError, match="not a candidate"):
        space.define_knob("bad", [1, 2], default=3)
    with pytest.raises(ConfigError, match="no candidates"):
        space.define_knob("empty", [])
    with pytest.raises(ConfigError, match="before it is declared"):
        space["missing"]


# ----------------------------------------------------------------------------- points


@pytest.fixture(scope="module")
def task():
    return Task("test_space_matmul", (8, 6, 10, "verbose"), "python")


def test_space_len_get_and_printing(task):
    space = task.config_space
    assert [k.name for k in space.knobs] == ["tile_i", "tile_j", "tile_k", "order", "ann",
                                             "parallel"]
    assert [k.kind for k in space.knobs] == ["split", "split", "split", "reorder",
                                             "annotate", "knob"]
    assert len(space) == math.prod(len(k) for k in space.knobs)
    assert space.flop == 2 * 8 * 6 * 10 == task.flop
    text = repr(space)
    assert f"len={len(space)}" in text
    for k in space.knobs:
        assert k.name in text and k.kind in text
    cfg = space.get(len(space) - 1)
    assert cfg.index == len(space) - 1
    assert cfg["parallel"].val is True  # the last knob varies slowest
    assert "tile_i" in repr(cfg)
    with pytest.raises(ConfigError, match="out of range"):
        space.get(len(space))
    with pytest.raises(ConfigError, match="out of range"):
        space.point_to_knobs(-1)
    with pytest.raises(ConfigError, match="not in this config"):
        cfg["missing"]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_points_and_knobs_round_trip(task, data):
    space = task.config_space
    index = data.draw(st.integers(0, len(space) - 1))
    choice = space.point_to_knobs(index)
    assert space.knobs_to_point(choice) == index
    assert all(0 <= c < len(k) for c, k in zip(choice, space.knobs))
    cfg = space.get(index)
    assert space.from_json(cfg.to_json()) == cfg
    assert space.from_json(cfg.to_json()).index == index
    for near in space.neighbours(index):
        moved = space.point_to_knobs(near)
        diff = [(a, b) for a, b in zip(choice, moved) if a != b]
        assert len(diff) == 1 and abs(diff[0][0] - diff[0][1]) == 1


def test_neighbours_count_and_sample(task):
    space = task.config_space
    corner = space.knobs_to_point([0] * len(space.knobs))
    assert len(space.neighbours(corner)) == sum(1 for k in space.knobs if len(k) > 1)
    rng, again = random.Random(3), random.Random(3)
    drawn = [space.sample(rng) for _ in range(200)]
    assert drawn == [space.sample(again) for _ in range(200)]
    assert all(0 <= i < len(space) for i in drawn) and len(set(drawn)) > 150


def test_default_point_and_from_json_errors(task):
    space = task.config_space
    default = space.default_config()
    assert default.index == space.default_index
    assert default["tile_i"] == space["tile_i"]  # the space answers with defaults
    knobs = default.to_json()
    with pytest.raises(ConfigError, match="do not match"):
        space.from_json({k: v for k, v in knobs.items() if k != "ann"})
    with pytest.raises(ConfigError, match="is not a value"):
        space.from_json(dict(knobs, tile_j=[-1, 3]))
    assert space.from_json(dict(knobs, order=[3, 2, 1, 0]))["order"] == ReorderEntity((3, 2, 1, 0))


def test_a_knob_added_later_reads_older_records_as_its_legacy_value():
    """Records written before a template gained a knob still match: they mean the value
    that builds what the template built then; without a legacy value they do not match."""
    space = ConfigSpace()
    space.define_knob("unroll", [1, 2, 4], default=2)
    space.define_knob("lanes", ["oc", "ow"], default="ow", legacy="oc")
    old = space.from_json({"unroll": 4})
    assert old["lanes"] == OtherOptionEntity("oc") and old["unroll"] == OtherOptionEntity(4)
    assert space.from_json(old.to_json()) == old
    with pytest.raises(ConfigError, match="do not match"):
        space.from_json({"lanes": "ow"})  # unroll has no legacy value
    with pytest.raises(ConfigError, match="legacy 'nchw' is not a candidate"):
        space.define_knob("layout", ["nhwc"], legacy="nchw")


# ----------------------------------------------------------------------------- templates


@pytest.mark.parametrize("policy", ["factors", "power2", "verbose"])
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_template_at_random_points_matches_numpy(policy, data):
    M, K, N = 6, 8, 10
    task = Task("test_space_matmul", (M, K, N, policy), "python")
    index = data.draw(st.integers(0, len(task.config_space) - 1))
    s, (A, B, C) = task.instantiate(task.config_space.get(index))
    f = build(s, [A, B, C], target="python")
    rng = np.random.default_rng(index)
    a = rng.standard_normal((M, K)).astype("float32")
    b = rng.standard_normal((K, N)).astype("float32")
    c = np.zeros((M, N), "float32")
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


def test_template_called_directly_builds_its_default():
    s, tensors = matmul_template(8, 6, 10, "factors")
    text = str(lower(s, tensors))
    assert "for" in text

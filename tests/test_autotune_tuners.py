"""Tuners against a fake measurer: the cost of a config is a smooth synthetic function of its
knob choices, so every test is deterministic and needs no compiler or timer."""

import json
import math
import statistics

import numpy as np
import pytest

import te
from autotune.features import CURVE_LEN, ITERVAR_LEN, FeatureExtractor
from autotune.measure_types import MeasureErrorNo, MeasureInput, MeasureResult
from autotune.task import Task
from autotune.tuner import (
    GATuner,
    GridSearchTuner,
    RandomTuner,
    SimulatedAnnealingOptimizer,
    Tuner,
    XGBTuner,
)
from autotune.tuner.xgb_cost_model import XGBCostModel, xgb_params
from schedules import create_schedule, get_config, template
from schedules.space import ConfigError


@template("test_tuner_matmul")
def matmul_template(M, K, N, with_bad=False):
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = create_schedule(C.op)
    cfg = get_config()
    i, j = s[C].op.axis
    # power2 splits under max_factor have the same candidates for every shape, so knob
    # vectors of different shapes line up (load_history with knob features).
    for name, ax in (("tile_i", i), ("tile_j", j), ("tile_k", k)):
        cfg.define_split(name, ax, num_outputs=2, policy="power2", max_factor=32)
    io, ii = cfg["tile_i"].apply(s, C, i)
    jo, ji = cfg["tile_j"].apply(s, C, j)
    ko, ki = cfg["tile_k"].apply(s, C, k)
    axes = [io, jo, ko, ii, ki, ji]
    cfg.define_reorder("order", axes, policy="candidate",
                       candidate=[axes, [io, jo, ii, ko, ki, ji]])
    cfg["order"].apply(s, C, axes)
    cfg.define_annotate("ann", [ki, ji], policy="try_unroll_vec")
    cfg["ann"].apply(s, C, [ki, ji])
    cfg.define_knob("parallel", [0, 1])
    if cfg["parallel"].val:
        s[C].parallel(io)
    if with_bad:
        cfg.define_knob("bad", [0, 1])
        if cfg["bad"].val:
            raise ConfigError("this point cannot be built")
    cfg.add_flop(2 * M * N * K)
    return s, [A, B, C]


def make_task(M=64, K=64, N=64, **kw):
    return Task("test_tuner_matmul", (M, K, N, kw.get("with_bad", False)), "python")


class FakeMeasure:
    """Seconds = 1 ms * (1 + 8 * squared distance of the knob choices from a target point,
    each knob scaled to [0, 1]); the target is the same choice vector for every shape.
    ``fails(index)`` picks configs that come back as runtime errors."""

    def __init__(self, task, n_parallel=8, fails=None):
        self.task = task
        self.n_parallel = n_parallel
        self.fails = fails or (lambda index: False)
        self.sizes = [len(k) for k in task.config_space.knobs]
        self.target = [s * 2 // 3 for s in self.sizes]
        self.measured: list[int] = []

    def cost(self, index):
        choice = self.task.config_space.point_to_knobs(index)
        d = sum(((c - t) / max(s - 1, 1)) ** 2
                for c, t, s in zip(choice, self.target, self.sizes))
        return 1e-3 * (1 + 8 * d)

    def best_flops(self):
        return self.task.flop / min(self.cost(i) for i in range(len(self.task.config_space)))

    def __call__(self, inputs):
        out = []
        for inp in inputs:
            self.measured.append(inp.config.index)
            if self.fails(inp.config.index):
                out.append(MeasureResult(("boom",), MeasureErrorNo.RUNTIME_ERROR, 0.1, 0.0,
                                         "boom"))
            else:
                out.append(MeasureResult((self.cost(inp.config.index),),
                                         MeasureErrorNo.NO_ERROR, 0.1, 0.0))
        return out


class Recorder:
    def __init__(self):
        self.events = []
        self.pairs = []

    def on_start(self, tuner):
        self.events.append("start")

    def __call__(self, tuner, inputs, results):
        self.events.append(len(inputs))
        self.pairs.extend(zip(inputs, results))

    def on_end(self, tuner):
        self.events.append("end")


def small_sa(task, tuner):
    """A cheaper annealing schedule where features need lowering."""
    return SimulatedAnnealingOptimizer(task.config_space, n_iter=30, parallel_size=32,
                                       rng=tuner.rng)


TUNERS = {
    "random": lambda task, seed: RandomTuner(task, seed=seed),
    "grid": lambda task, seed: GridSearchTuner(task),
    "ga": lambda task, seed: GATuner(task, pop_size=16, seed=seed),
    "xgb": lambda task, seed: XGBTuner(task, plan_size=16, feature_type="knob", seed=seed),
}


@pytest.fixture(scope="module")
def task():
    return make_task()


# ----------------------------------------------------------------------------- the loop


@pytest.mark.parametrize("name", TUNERS)
def test_budget_no_repeats_and_callbacks(task, name):
    measure = FakeMeasure(task, n_parallel=7)
    rec = Recorder()
    tuner = TUNERS[name](task, 0)
    tuner.tune(60, measure, callbacks=[rec])
    assert len(measure.measured) == 60 == tuner.trials_done
    assert len(set(measure.measured)) == 60
    assert rec.events[0] == "start" and rec.events[-1] == "end"
    assert rec.events[1:-1] == [7] * 8 + [4]
    best = max(rec.pairs, key=lambda p: -p[1].cost)
    assert tuner.best_config == best[0].config
    assert tuner.best_flops == pytest.approx(task.flop / best[1].cost)
    assert tuner.best_measure_pair[0].config == tuner.best_config
    assert set(measure.measured) <= tuner.visited
    # A second run continues without measuring anything twice.
    tuner.tune(20, measure)
    assert len(measure.measured) == len(set(measure.measured)) == 80


@pytest.mark.parametrize("name", ["random", "ga", "xgb"])
def test_seeded_tuners_are_reproducible(task, name):
    runs = []
    for _ in range(2):
        measure = FakeMeasure(task)
        TUNERS[name](task, 5).tune(48, measure)
        runs.append(measure.measured)
    assert runs[0] == runs[1]
    other = FakeMeasure(task)
    TUNERS[name](task, 6).tune(48, other)
    assert other.measured != runs[0]


@pytest.mark.parametrize("name", TUNERS)
def test_small_space_is_exhausted_exactly_once(name):
    tiny = Task("test_tuner_matmul", (2, 2, 2, False), "python")
    n = len(tiny.config_space)
    assert n < 200
    measure = FakeMeasure(tiny)
    tuner = TUNERS[name](tiny, 1)
    tuner.tune(n + 50, measure)
    assert sorted(measure.measured) == list(range(n))
    assert not tuner.has_next()


def test_range_idx():
    task = make_task()
    measure = FakeMeasure(task)
    RandomTuner(task, range_idx=(10, 29), seed=0).tune(100, measure)
    assert sorted(measure.measured) == list(range(10, 30))
    measure = FakeMeasure(task)
    GridSearchTuner(task, range_idx=(5, 9)).tune(100, measure)
    assert measure.measured == [5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match="range_idx"):
        RandomTuner(task, range_idx=(0, len(task.config_space)))


def test_early_stopping(task):
    class Constant(FakeMeasure):
        def cost(self, index):
            return 1e-3

    measure = Constant(task, n_parallel=1)
    tuner = RandomTuner(task, seed=0)
    tuner.tune(100, measure, early_stopping=10)
    assert tuner.trials_done == 11 and tuner.best_iter == 1
    # Early stopping counts from the start of a run, not from an old best.
    tuner.tune(100, measure, early_stopping=5)
    assert tuner.trials_done == 16


def test_measure_errors_are_counted_never_best(task):
    measure = FakeMeasure(task, fails=lambda index: index % 3 == 0)
    tuner = GridSearchTuner(task)
    tuner.tune(30, measure)
    assert tuner.error_count == 10
    assert tuner.best_config.index % 3 != 0


def test_a_measurer_that_raises_is_a_failed_batch(task):
    calls = []

    def broken(inputs):
        calls.append(len(inputs))
        if len(calls) == 2:
            raise RuntimeError("worker pool died")
        return FakeMeasure(task)(inputs)

    broken.n_parallel = 4
    tuner = RandomTuner(task, seed=0)
    tuner.tune(12, broken)
    assert calls == [4, 4, 4] and tuner.trials_done == 12 and tuner.error_count == 4

    def wrong_count(inputs):
        return []

    with pytest.raises(ValueError, match="returned 0 results"):
        RandomTuner(task, seed=0).tune(4, wrong_count)


def test_keyboard_interrupt_ends_cleanly(task):
    measure = FakeMeasure(task, n_parallel=4)

    def interrupted(inputs):
        if len(measure.measured) >= 8:
            raise KeyboardInterrupt
        return measure(inputs)

    interrupted.n_parallel = 4
    rec = Recorder()
    tuner = XGBTuner(task, plan_size=16, feature_type="knob", seed=0)
    with pytest.raises(KeyboardInterrupt):
        tuner.tune(40, interrupted, callbacks=[rec])
    assert rec.events == ["start", 4, 4, "end"]
    assert tuner.trials_done == 8 and len(rec.pairs) == 8


# ----------------------------------------------------------------------------- resume


@pytest.mark.parametrize("name", TUNERS)
def test_the_default_config_is_measured_first_and_once(task, name):
    """A short search must never log a best that is slower than the template's default."""
    default = task.config_space.default_index
    measure = FakeMeasure(task, n_parallel=4)
    tuner = TUNERS[name](task, 0)
    tuner.tune(8, measure)
    assert measure.measured[0] == default
    tuner.tune(8, measure)
    assert measure.measured.count(default) == 1
    # a tuner whose log already holds the default does not measure it again
    inputs, results = records(task, [default])
    again = TUNERS[name](task, 1)
    again.resume(inputs, results)
    fresh = FakeMeasure(task)
    again.tune(4, fresh)
    assert default not in fresh.measured


def records(task, indices, measure=None):
    measure = measure or FakeMeasure(task)
    inputs = [MeasureInput(task, task.config_space.get(i)) for i in indices]
    return inputs, measure(inputs)


@pytest.mark.parametrize("name", TUNERS)
def test_resume_skips_visited_and_counts_toward_the_budget(task, name):
    old_in, old_res = records(task, range(0, 400, 10))
    other = make_task(M=32)
    foreign_in, foreign_res = records(other, range(5))

    class ResumeFromLog(Recorder):
        def on_start(self, tuner):
            super().on_start(tuner)
            self.taken = tuner.resume(old_in + foreign_in, old_res + foreign_res)

    measure = FakeMeasure(task)
    cb = ResumeFromLog()
    tuner = TUNERS[name](task, 0)
    tuner.tune(100, measure, callbacks=[cb])
    assert cb.taken == 40  # the other task's records are not this run's
    assert len(measure.measured) == 60 and tuner.trials_done == 100
    assert not set(measure.measured) & set(range(0, 400, 10))
    best_old = max(old_res, key=lambda r: -r.cost)
    assert tuner.best_flops >= task.flop / best_old.cost


def test_resume_through_log_to_file(task, tmp_path):
    autotune = pytest.importorskip("autotune")
    log = tmp_path / "tune.jsonl"
    first = FakeMeasure(task)
    RandomTuner(task, seed=0).tune(24, first, callbacks=[autotune.log_to_file(log)])
    second = FakeMeasure(task)
    tuner = RandomTuner(task, seed=0)  # the same seed would repeat the same configs
    tuner.tune(40, second, callbacks=[autotune.log_to_file(log)])
    assert len(second.measured) == 16
    assert not set(first.measured) & set(second.measured)
    assert len(log.read_text().splitlines()) == 40


def test_xgb_fits_early_then_as_results_grow_by_half(task):
    """The model is fitted on the first few results, not after plan_size random trials,
    and refitted on a geometric schedule (never more than plan_size results apart)."""
    tuner = XGBTuner(task, plan_size=16, feature_type="knob", seed=0)
    fitted_on = []
    fit = tuner.model.fit

    def counting_fit(xs, ys):
        fitted_on.append(len(xs))
        return fit(xs, ys)

    tuner.model.fit = counting_fit
    measure = FakeMeasure(task, n_parallel=1)  # every count is seen
    tuner.tune(60, measure)
    # 32 -> 48 is growth by half; 48 -> 72 would exceed plan_size, so the next is 64
    assert fitted_on == [4, 6, 9, 14, 21, 32, 48], fitted_on
    assert tuner.plan and tuner.model.booster is not None


def test_resume_warms_the_model(task):
    tuner = XGBTuner(task, plan_size=16, feature_type="knob", seed=0)
    inputs, results = records(task, range(0, 5184, 97))
    tuner.resume(inputs, results)
    assert tuner.model.booster is not None and tuner.plan


# ----------------------------------------------------------------------------- search quality


class Reached(Exception):
    pass


def trials_to_reach(tuner, task, frac=0.99, budget=150):
    """Trials until the best found is within ``frac`` of the optimum (2 * budget: never)."""
    measure = FakeMeasure(task)
    target = frac * measure.best_flops()

    def watch(t, inputs, results):
        if t.best_flops >= target:
            raise Reached  # ends the run early; tune() lets a callback's exception through

    try:
        tuner.tune(budget, measure, callbacks=[watch])
    except Reached:
        return tuner.trials_done
    return 2 * budget


def test_xgb_finds_the_optimum_in_fewer_trials_than_random(task):
    def median(make):
        return statistics.median(trials_to_reach(make(seed), task) for seed in range(3))

    random_trials = median(lambda s: RandomTuner(task, seed=s))
    xgb_reg = median(lambda s: XGBTuner(task, plan_size=16, feature_type="knob", seed=s))
    xgb_rank = median(lambda s: XGBTuner(task, plan_size=16, feature_type="knob",
                                         loss_type="rank", seed=s))
    assert xgb_reg * 2 <= random_trials, (xgb_reg, random_trials)
    assert xgb_rank * 2 <= random_trials, (xgb_rank, random_trials)


def test_load_history_warms_xgb(task):
    source = make_task(M=128, N=32)
    history = RandomTuner(source, seed=1)
    rec = Recorder()
    history.tune(150, FakeMeasure(source), callbacks=[rec])

    cold = XGBTuner(task, plan_size=16, feature_type="knob", seed=0)
    warm = XGBTuner(task, plan_size=16, feature_type="knob", seed=0)
    assert not warm.load_history(rec.pairs, min_seed_records=1000)  # too few: not used
    assert warm.load_history(rec.pairs, min_seed_records=100)
    assert warm.plan  # the first batch already comes from the model
    assert trials_to_reach(warm, task) * 2 <= trials_to_reach(cold, task)


def spearman(a, b):
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return np.corrcoef(ranks_a, ranks_b)[0, 1]


@pytest.mark.parametrize("feature_type", ["itervar", "curve", "knob"])
@pytest.mark.parametrize("loss_type", ["reg", "rank"])
def test_model_ranks_unseen_configs(feature_type, loss_type):
    task = make_task(16, 16, 16)
    measure = FakeMeasure(task)
    picked = np.random.default_rng(0).choice(len(task.config_space), 200, replace=False)
    train, test = [int(i) for i in picked[:128]], [int(i) for i in picked[128:]]
    model = XGBCostModel(task, feature_type, loss_type, seed=0)
    assert model.fit(train, [task.flop / measure.cost(i) for i in train])
    assert spearman(model.predict(test), [-measure.cost(i) for i in test]) > 0.4


def test_xgb_tuner_with_lowered_features():
    task = make_task(16, 16, 16)
    tuner = XGBTuner(task, plan_size=16, feature_type="itervar", seed=0,
                     diversity_filter_ratio=2)
    tuner.optimizer = small_sa(task, tuner)
    measure = FakeMeasure(task)
    tuner.tune(32, measure)
    assert len(set(measure.measured)) == 32
    assert tuner.model.booster is not None and len(tuner.plan) == 16


# ----------------------------------------------------------------------------- features


def test_features_shapes_and_failures():
    task = make_task(16, 16, 16, with_bad=True)
    space = task.config_space
    bad = [i for i in range(0, len(space), 37) if space.get(i)["bad"].val][:3]
    good = [i for i in range(0, len(space), 37) if not space.get(i)["bad"].val][:20]
    for feature_type, length in (("itervar", ITERVAR_LEN), ("curve", CURVE_LEN)):
        fe = FeatureExtractor(task, feature_type)
        X = fe(good + bad)
        assert X.shape == (23, length) and np.isfinite(X).all()
        assert not X[-3:].any() and X[:20].any(axis=1).all()
        assert fe.failed == set(bad)
        assert len({row.tobytes() for row in X[:20]}) > 10  # configs are told apart
    fe = FeatureExtractor(task, "knob")
    X = fe(good)
    assert X.shape[1] == 3 + 6 + 2 + 1 + 1 and not fe.failed
    with pytest.raises(ValueError, match="feature_type"):
        FeatureExtractor(task, "tree")


def test_model_rates_unbuildable_configs_lowest():
    task = make_task(16, 16, 16, with_bad=True)
    model = XGBCostModel(task, "itervar", "reg", seed=0)
    measure = FakeMeasure(task)
    idx = list(range(0, len(task.config_space), 97))
    good = [i for i in idx if not task.config_space.get(i)["bad"].val]
    model.fit(good, [task.flop / measure.cost(i) for i in good])
    bad = [i for i in idx if task.config_space.get(i)["bad"].val]
    assert np.isneginf(model.predict(bad)).all()
    assert np.isfinite(model.predict(good)).all()


@pytest.mark.parametrize("loss_type", ["reg", "rank"])
def test_every_pinned_xgboost_parameter_reaches_the_booster(task, loss_type):
    model = XGBCostModel(task, "knob", loss_type, num_threads=2, seed=3)
    measure = FakeMeasure(task)
    idx = list(range(0, 5184, 50))
    model.fit(idx, [task.flop / measure.cost(i) for i in idx])
    config = json.loads(model.booster.save_config())
    found: dict = {}

    def collect(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, (dict, list)):
                    collect(value)
                else:
                    found.setdefault(key, []).append(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(config)
    params = xgb_params(loss_type, num_threads=2, seed=3)
    assert params["nthread"] == 2 and params["seed"] == 3
    for key, value in params.items():
        if key in ("verbosity", "eval_metric"):
            continue  # global logging setting; metrics are stored by name below
        assert key in found, key
        seen = [v.strip("[]") for v in found[key]]
        if isinstance(value, bool):
            want = {"1", "true"} if value else {"0", "false"}
            assert set(seen) & want, (key, seen)
        elif isinstance(value, (int, float)):
            assert any(math.isclose(float(v), value, rel_tol=1e-6) for v in seen), (key, seen)
        else:
            assert value in seen, (key, seen)
    assert params["eval_metric"] in [m["name"] for m in config["learner"]["metrics"]] or \
        not config["learner"]["metrics"]
    with pytest.raises(ValueError, match="loss_type"):
        xgb_params("rank-binary")


# ----------------------------------------------------------------------------- optimizer


def test_simulated_annealing_finds_the_predicted_best(task):
    measure = FakeMeasure(task)
    target = task.config_space.knobs_to_point(measure.target)

    def predict(indices):
        return np.array([-measure.cost(i) for i in indices])

    sa = SimulatedAnnealingOptimizer(task.config_space, rng=__import__("random").Random(0))
    found = sa.find_maximums(predict, 8, exclude=set())
    assert found[0] == target and len(found) == 8 == len(set(found))
    assert target not in sa.find_maximums(predict, 8, exclude={target})
    tiny = Task("test_tuner_matmul", (2, 2, 2, False), "python")
    exhaustive = SimulatedAnnealingOptimizer(tiny.config_space)
    ranked = exhaustive.find_maximums(lambda ix: np.asarray(ix, float), 5, exclude={0})
    assert ranked == sorted(range(len(tiny.config_space)), reverse=True)[:5]


@template("test_tuner_no_knobs")
def no_knobs(n):
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    return create_schedule(B.op), [A, B]


@pytest.mark.parametrize("make", [
    *TUNERS.values(),
    lambda task, seed: XGBTuner(task, plan_size=1, feature_type="knob", seed=seed),
    lambda task, seed: XGBTuner(task, plan_size=1, feature_type="itervar", seed=seed),
])
def test_a_space_of_one_point(make):
    task = Task("test_tuner_no_knobs", (8,), "python")
    assert len(task.config_space) == 1
    tuner = make(task, 0)
    measure = FakeMeasure(task)
    tuner.tune(10, measure)
    assert measure.measured == [0] and tuner.best_config.index == 0


def test_tuner_argument_errors(task):
    with pytest.raises(ValueError, match="optimizer"):
        XGBTuner(task, optimizer="ga")
    with pytest.raises(ValueError, match="diversity_filter_ratio"):
        XGBTuner(task, diversity_filter_ratio=0.5)
    with pytest.raises(ValueError, match="pop_size"):
        GATuner(task, pop_size=0)
    with pytest.raises(NotImplementedError):
        Tuner(task).next_batch(1)

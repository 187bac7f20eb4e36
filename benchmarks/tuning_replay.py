"""Replay a tuning log to compare when the XGBoost cost model should be fitted, in seconds
instead of hours: the configs a log measured (fastest repeat; failures score 0) form a pool,
and each strategy picks from that pool only, so every pick's speed is already known.

    python benchmarks/tuning_replay.py LOG [--seeds 30] [--trials 60]
                                       [--schedules 32x32,4x1.5,4x2,8x2] [--features itervar]

A schedule ``FxR`` fits the model after F results, then refits each time the results grew by
a factor R (R < 2) or every R results (R >= 2); ``32x32`` is AutoTVM's plan_size=32 rule,
``4x1.5`` is XGBTuner's (``FIRST_FIT``, ``REFIT_GROWTH``). Between fits the best-predicted
unvisited pool config is measured next, 5 % of picks are random, like the tuner.

Printed: median (and mean, capped at trials+1) over seeds of the picks until 90 % of the
pool's best, for random picks and for each schedule. The pool comes from tuners that already
steered towards fast configs, so it is richer in them than the whole space: absolute counts
are lower than a real run's; the ratios between strategies are what this is for.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from autotune.record import load_records  # noqa: E402
from autotune.tuner.xgb_cost_model import XGBCostModel  # noqa: E402
from autotune.tuner.xgb_tuner import EPSILON  # noqa: E402

TARGET_SHARE = 0.9


def load_pool(path):
    """The log's task and {config index: GFLOP/s of its fastest run (0 if it failed)}."""
    task, pool = None, {}
    for inp, res in load_records(path):
        if task is None:
            task = inp.task
        elif inp.task.workload_key != task.workload_key:
            raise SystemExit(f"{path}: more than one workload; replay one at a time")
        flops = (task.flop or 1) / res.cost / 1e9 if res.ok and res.cost > 0 else 0.0
        index = inp.config.index
        pool[index] = max(pool.get(index, 0.0), flops)
    if task is None:
        raise SystemExit(f"{path}: no records")
    return task, pool


def refit_due(n: int, last: int, first: int, rate: float) -> bool:
    if last == 0:
        return n >= first
    if rate < 2:
        return n >= max(last + 1, math.ceil(last * rate))
    return n - last >= rate


def picks_to_goal(task, pool, seed, trials, schedule, features) -> float:
    rng = random.Random(seed)
    goal = TARGET_SHARE * max(pool.values())
    left = list(pool)
    xs, ys, ranked, last, taken = [], [], [], 0, set()
    model = XGBCostModel(task, features, "reg", seed=seed) if schedule else None
    for t in range(1, min(trials, len(pool)) + 1):
        pick = None
        if model is not None and refit_due(len(xs), last, *schedule) and \
                model.fit(xs, [y * 1e9 for y in ys]):
            last = len(xs)
            scores = model.predict(left)
            ranked = [i for _, i in sorted(zip(-scores, left))]
        if ranked and rng.random() >= EPSILON:
            ranked = [i for i in ranked if i not in taken]
            pick = ranked[0] if ranked else None
        if pick is None:
            pick = rng.choice(left)
        left.remove(pick)
        taken.add(pick)
        xs.append(pick)
        ys.append(pool[pick])
        if pool[pick] >= goal:
            return t
    return math.inf


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--schedules", default="32x32,4x1.5,4x2,8x2")
    ap.add_argument("--features", default="itervar", choices=["itervar", "knob", "curve"])
    args = ap.parse_args(argv)
    task, pool = load_pool(args.log)
    good = sum(g >= TARGET_SHARE * max(pool.values()) for g in pool.values())
    print(f"{task.name}: {len(pool)} configs in the pool of {len(task.config_space)}, "
          f"{good} within 90 % of the best ({max(pool.values()):.1f} GFLOP/s)")
    strategies = [("random", None)] + [
        (text, (int(text.split("x")[0]), float(text.split("x")[1])))
        for text in args.schedules.split(",")]
    for name, schedule in strategies:
        runs = [picks_to_goal(task, pool, s, args.trials, schedule, args.features)
                for s in range(args.seeds)]
        capped = [min(r, args.trials + 1) for r in runs]
        print(f"{name:>8s}: median {statistics.median(runs):g} picks to 90 %, "
              f"mean {statistics.mean(capped):.1f}", flush=True)


if __name__ == "__main__":
    main()

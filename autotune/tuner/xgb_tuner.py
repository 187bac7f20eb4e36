"""The model-based tuner: an XGBoost cost model picks what to measure next."""

from __future__ import annotations

import math

from .sa_optimizer import SimulatedAnnealingOptimizer
from .tuner import Tuner
from .xgb_cost_model import XGBCostModel

__all__ = ["XGBTuner"]

EPSILON = 0.05  # share of trials drawn at random, so a wrong model cannot trap the search
# When the model is (re)fitted: first after FIRST_FIT results, then each time the results
# grew by REFIT_GROWTH (and at least every plan_size). AutoTVM first fits after plan_size
# random trials; on this machine's matmul and conv2d logs (benchmarks/RESULTS.md) an
# itervar model fitted on 4 results already ranks well enough to halve the trials random
# draws need, and the geometric schedule keeps the annealing searches (seconds each) few.
FIRST_FIT = 4
REFIT_GROWTH = 1.5


class XGBTuner(Tuner):
    """AutoTVM's ``XGBTuner``: measure, fit the cost model, let the optimizer find the
    ``plan_size`` configs it rates best, measure those in that order, refit and plan again.
    The first fit comes after ``FIRST_FIT`` results and the next ones each time the results
    grew by half, at least every ``plan_size`` results (AutoTVM waits for ``plan_size``
    random trials first). Until the first fit, and for ~5 % of trials after it, configs are
    drawn at random.

    ``feature_type``: "itervar", "knob" or "curve" (see ``autotune.features``);
    ``loss_type``: "reg" (squared error on throughput / best) or "rank" (pairwise);
    ``optimizer``: "sa" or an object with ``find_maximums(predict, num, exclude)``;
    ``diversity_filter_ratio``: if set, the optimizer returns that many times
    ``plan_size`` candidates and the plan keeps a well-rated but varied subset.
    """

    def __init__(self, task, plan_size=64, feature_type="itervar", loss_type="reg",
                 num_threads=None, optimizer="sa", diversity_filter_ratio=None, seed=None):
        super().__init__(task, seed)
        self.plan_size = plan_size
        self.model = XGBCostModel(task, feature_type, loss_type, num_threads, seed)
        if optimizer == "sa":
            optimizer = SimulatedAnnealingOptimizer(self.space, rng=self.rng)
        elif not hasattr(optimizer, "find_maximums"):
            raise ValueError(f"optimizer must be 'sa' or have find_maximums(), not {optimizer!r}")
        self.optimizer = optimizer
        if diversity_filter_ratio is not None and diversity_filter_ratio < 1:
            raise ValueError("diversity_filter_ratio must be >= 1")
        self.diversity_filter_ratio = diversity_filter_ratio
        self.xs: list[int] = []
        self.ys: list[float] = []
        self.plan: list[int] = []
        self._plan_pos = 0
        self._fitted_at = 0

    def next_batch(self, batch_size):
        out = []
        while len(out) < batch_size:
            index = None
            if self.rng.random() >= EPSILON:
                while self._plan_pos < len(self.plan):
                    cand = self.plan[self._plan_pos]
                    self._plan_pos += 1
                    if cand not in self.visited:
                        index = cand
                        break
            if index is None:
                index = self._random_unvisited()
                if index is None:
                    break
            out.append(self._claim(index))
        return out

    def _observe(self, inputs, results):
        for inp, res in zip(inputs, results):
            self.xs.append(inp.config.index)
            self.ys.append(self._flops(res) if res.ok else 0.0)
        if len(self.xs) >= self._next_fit() and self.model.fit(self.xs, self.ys):
            self._fitted_at = len(self.xs)
            self._replan()

    def _next_fit(self) -> int:
        """How many results the next fit waits for."""
        last = self._fitted_at
        if last == 0:
            return min(FIRST_FIT, self.plan_size)
        grown = max(last + 1, math.ceil(last * REFIT_GROWTH))
        return min(grown, last + self.plan_size)

    def load_history(self, records, min_seed_records=100):
        """Warm the cost model with (input, result) records of other tasks; the first plan
        then comes from it instead of random draws. Returns whether it was used."""
        if not self.model.fit_history(list(records), min_seed_records):
            return False
        self._replan()
        return True

    def _replan(self):
        ratio = self.diversity_filter_ratio or 1
        want = math.ceil(self.plan_size * ratio)
        cands = self.optimizer.find_maximums(self.model.predict, want, self.visited)
        if self.diversity_filter_ratio:
            cands = _diverse(self.space, cands, self.plan_size)
        self.plan = cands
        self._plan_pos = 0


def _diverse(space, ranked: list[int], num: int) -> list[int]:
    """Greedily keep ``num`` of the ``ranked`` candidates (best first), trading rank against
    knob values not yet in the kept set, so a plan does not spend itself on near-twins."""
    if len(ranked) <= num:
        return list(ranked)
    choices = {i: space.point_to_knobs(i) for i in ranked}
    rank_score = {i: 1.0 - pos / len(ranked) for pos, i in enumerate(ranked)}
    n_knobs = len(space.knobs) or 1
    seen: list[set] = [set() for _ in range(n_knobs)]
    left = list(ranked)
    kept = []
    while left and len(kept) < num:
        def gain(i):
            new = sum(c not in seen[k] for k, c in enumerate(choices[i]))
            return rank_score[i] + new / n_knobs

        best = max(left, key=gain)
        kept.append(best)
        left.remove(best)
        for k, c in enumerate(choices[best]):
            seen[k].add(c)
    return kept

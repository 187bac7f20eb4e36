"""Simulated annealing over a config space, to find the configs a cost model rates best."""

from __future__ import annotations

import heapq
import math
import random

__all__ = ["SimulatedAnnealingOptimizer"]


class SimulatedAnnealingOptimizer:
    """``find_maximums(predict, num, exclude)``: the ``num`` best-predicted indices outside
    ``exclude``, best first.

    ``parallel_size`` chains walk the space for up to ``n_iter`` steps while the temperature
    falls linearly from ``temp[0]`` to ``temp[1]`` (in units of the spread of the first
    predictions); a step moves one knob to a neighbouring candidate or to a random one. The
    walk stops early after ``early_stop`` steps that found nothing for the top ``num``.
    With ``persistent`` the chains start where the last search ended. Spaces of at most
    ``exhaustive_limit`` points are predicted whole instead.

    The defaults make fewer predictions than AutoTVM's (500 steps x 128 chains) because
    itervar features come from lowering each candidate in Python, about a millisecond each.
    """

    def __init__(self, space, n_iter=150, parallel_size=64, temp=(1.0, 0.0), early_stop=30,
                 persistent=True, exhaustive_limit=1024, rng=None):
        self.space = space
        self.n_iter = n_iter
        self.parallel_size = parallel_size
        self.temp = temp
        self.early_stop = early_stop
        self.persistent = persistent
        self.exhaustive_limit = exhaustive_limit
        self.rng = rng or random.Random(0)
        self._points: list[int] = []
        self._sizes = [len(k) for k in space.knobs]
        self._movable = [k for k, size in enumerate(self._sizes) if size > 1]

    def find_maximums(self, predict, num: int, exclude) -> list[int]:
        n = len(self.space)
        if n <= self.exhaustive_limit:
            cands = [i for i in range(n) if i not in exclude]
            scores = predict(cands) if cands else []
            ranked = sorted(zip(scores, cands), key=lambda sc: (-sc[0], sc[1]))
            return [i for s, i in ranked[:num] if s > -math.inf]

        size = min(self.parallel_size, n)
        points = self._points if self.persistent and self._points else \
            [self.rng.randrange(n) for _ in range(size)]
        scores = list(predict(points))
        finite = [s for s in scores if s > -math.inf]
        scale = (max(finite) - min(finite)) if finite else 0.0
        scale = scale if scale > 0 else 1.0

        top: list[tuple[float, int]] = []  # min-heap of the best num outside exclude
        in_top: set[int] = set()

        def offer(score, index):
            if index in exclude or index in in_top or score == -math.inf:
                return False
            if len(top) < num:
                heapq.heappush(top, (score, index))
            elif score > top[0][0]:
                in_top.discard(heapq.heapreplace(top, (score, index))[1])
            else:
                return False
            in_top.add(index)
            return True

        for s, i in zip(scores, points):
            offer(s, i)
        t0, t1 = self.temp
        quiet = 0
        for step in range(self.n_iter):
            t = t0 + (t1 - t0) * step / max(self.n_iter - 1, 1)
            moved = [self._move(p) for p in points]
            new_scores = predict(moved)
            improved = False
            for k, (p, s_new) in enumerate(zip(moved, new_scores)):
                improved |= offer(s_new, p)
                s_old = scores[k]
                if s_new >= s_old or s_old == -math.inf or (
                        t > 0 and s_new > -math.inf
                        and self.rng.random() < math.exp((s_new - s_old) / (t * scale))):
                    points[k], scores[k] = p, s_new
            quiet = 0 if improved else quiet + 1
            if quiet >= self.early_stop:
                break
        self._points = points
        return [i for s, i in sorted(top, key=lambda sc: (-sc[0], sc[1]))]

    def _move(self, index: int) -> int:
        """One knob changed: half the time one step along its candidate list (a point of
        ``space.neighbours(index)``, drawn without listing them all), else to any value."""
        if not self._movable:
            return index
        choice = self.space.point_to_knobs(index)
        k = self.rng.choice(self._movable)
        size = self._sizes[k]
        if self.rng.random() < 0.5:
            step = self.rng.choice((-1, 1))
            c = choice[k] + step
            choice[k] = c if 0 <= c < size else choice[k] - step
        else:
            choice[k] = self.rng.randrange(size)
        return self.space.knobs_to_point(choice)

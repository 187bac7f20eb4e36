"""Tuners that walk config indices without learning: grid order and random order."""

from __future__ import annotations

from .tuner import Tuner

__all__ = ["GridSearchTuner", "RandomTuner"]


def _range(space, range_idx) -> tuple[int, int]:
    """``range_idx`` is AutoTVM's inclusive (first, last) index pair; None is the whole space."""
    if range_idx is None:
        return 0, len(space)
    first, last = range_idx
    if not 0 <= first <= last < len(space):
        raise ValueError(f"range_idx {range_idx} is not inside the space (len {len(space)})")
    return first, last + 1


class GridSearchTuner(Tuner):
    """Configs in index order (the first knob varies fastest)."""

    def __init__(self, task, range_idx=None, seed=None):
        super().__init__(task, seed)
        self._next, self._end = _range(self.space, range_idx)
        self.measure_default = self._next <= self.space.default_index < self._end

    def has_next(self):
        return self._next < self._end

    def next_batch(self, batch_size):
        out = []
        while len(out) < batch_size and self._next < self._end:
            if self._next not in self.visited:
                out.append(self._claim(self._next))
            self._next += 1
        return out


class RandomTuner(Tuner):
    """Configs in a random order without repeats; ``seed`` makes the order reproducible.

    The order is a Fisher-Yates shuffle done lazily: only the swapped positions are kept,
    so a space of billions of points costs memory in proportion to the trials made.
    """

    def __init__(self, task, range_idx=None, seed=None):
        super().__init__(task, seed)
        self._start, end = _range(self.space, range_idx)
        self.measure_default = self._start <= self.space.default_index < end
        self._n = end - self._start
        self._drawn = 0
        self._swapped: dict[int, int] = {}

    def has_next(self):
        return self._drawn < self._n

    def _draw(self) -> int:
        k = self._drawn
        j = self.rng.randrange(k, self._n)
        picked = self._swapped.get(j, j)
        self._swapped[j] = self._swapped.pop(k, k)
        self._drawn += 1
        return self._start + picked

    def next_batch(self, batch_size):
        out = []
        while len(out) < batch_size and self._drawn < self._n:
            index = self._draw()
            if index not in self.visited:  # resumed from a log
                out.append(self._claim(index))
        return out

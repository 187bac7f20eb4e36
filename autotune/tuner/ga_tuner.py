"""A genetic-algorithm tuner over knob choice vectors (AutoTVM's ``GATuner``)."""

from __future__ import annotations

import heapq

from .tuner import Tuner

__all__ = ["GATuner"]

MAX_RETRIES = 16  # children bred per slot before a random unvisited point is taken instead


class GATuner(Tuner):
    """Each config is a gene: the vector of its knobs' choices. A generation of ``pop_size``
    genes is measured; the next one is bred from it and from the ``elite_num`` best genes
    seen so far: parents drawn in proportion to their FLOP/s, uniform crossover per knob,
    and each knob re-drawn with ``mutation_prob``. Children never repeat a visited config.
    """

    def __init__(self, task, pop_size=100, elite_num=3, mutation_prob=0.1, seed=None):
        super().__init__(task, seed)
        if pop_size < 1 or elite_num < 0 or not 0 <= mutation_prob <= 1:
            raise ValueError("GATuner: pop_size >= 1, elite_num >= 0 and 0 <= mutation_prob "
                             "<= 1 are needed")
        self.pop_size = min(pop_size, len(self.space))
        self.elite_num = min(elite_num, self.pop_size)
        self.mutation_prob = mutation_prob
        self.scores: dict[int, float] = {}   # index -> FLOP/s (0 when it failed)
        self.elites: list[tuple[float, int]] = []
        self.population: list[int] = []      # the generation being measured
        self.generation = 0
        self._queue: list[int] = []
        self._sizes = [len(k) for k in self.space.knobs]

    def next_batch(self, batch_size):
        out = []
        while len(out) < batch_size:
            if not self._queue:
                self._breed()
                if not self._queue:
                    break
            index = self._queue.pop()
            if index not in self.visited:
                out.append(self._claim(index))
        return out

    def _observe(self, inputs, results):
        for inp, res in zip(inputs, results):
            score = self._flops(res) if res.ok else 0.0
            self.scores[inp.config.index] = score
            self.elites = heapq.nlargest(self.elite_num, set(self.elites) | {(score,
                                         inp.config.index)})

    # -- breeding -------------------------------------------------------------------------
    def _breed(self):
        pool = {i: self.scores[i] for i in self.population if i in self.scores}
        pool.update((i, s) for s, i in self.elites)
        fresh: list[int] = []
        taken: set[int] = set()
        if pool:
            parents = sorted(pool)  # a fixed order keeps seeded runs reproducible
            weights = [pool[i] for i in parents]
            if not any(w > 0 for w in weights):
                weights = [1.0] * len(parents)
            genes = [self.space.point_to_knobs(i) for i in parents]
        for _ in range(self.pop_size):
            child = None
            for _ in range(MAX_RETRIES if pool else 0):
                a, b = self.rng.choices(genes, weights, k=2)
                gene = [x if self.rng.random() < 0.5 else y for x, y in zip(a, b)]
                for k, size in enumerate(self._sizes):
                    if self.rng.random() < self.mutation_prob:
                        gene[k] = self.rng.randrange(size)
                index = self.space.knobs_to_point(gene)
                if index not in self.visited and index not in taken:
                    child = index
                    break
            if child is None:
                child = self._random_unvisited(exclude=taken)
                if child is None:
                    break
            taken.add(child)
            fresh.append(child)
        self.population = fresh
        self._queue = fresh[::-1]  # popped from the end: proposed in breeding order
        self.generation += 1

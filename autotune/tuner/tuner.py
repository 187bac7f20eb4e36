"""The tuning loop every tuner shares: propose a batch, measure it, learn, repeat.

A tuner only decides *which* configs to try (``next_batch``) and what to learn from results
(``_observe``); ``tune`` does the rest: batching, the trial budget, early stopping, the best
config so far, callbacks, and a clean stop on Ctrl-C.
"""

from __future__ import annotations

import logging
import random
import time

from ..measure_types import MeasureErrorNo, MeasureInput, MeasureResult

__all__ = ["Tuner"]

log = logging.getLogger("autotune.tuner")

# Spaces up to this size are enumerated when a random unvisited point is hard to hit.
ENUMERATE_LIMIT = 1 << 20


class Tuner:
    """Base class of the tuners (AutoTVM's ``Tuner``) for one ``task``.

    Attributes: ``best_flops``, ``best_config``, ``best_measure_pair`` (the (input, result)
    of the best run), ``n_trial`` (budget of the last ``tune`` call), ``trials_done``
    (results taken in: measured here or resumed from a log), ``visited`` (config indices
    proposed or resumed; never proposed again), ``error_count``.

    Subclasses implement ``next_batch`` (proposing unvisited configs, each claimed with
    ``_claim``) and may override ``_observe`` to learn from results.
    """

    def __init__(self, task, seed=None):
        self.task = task
        self.space = task.config_space
        self.seed = seed
        self.rng = random.Random(seed)
        self.visited: set[int] = set()
        self.best_flops = 0.0
        self.best_config = None
        self.best_measure_pair = None
        self.best_iter = 0
        self.n_trial = 0
        self.trials_done = 0
        self.error_count = 0
        self._resumed_pending = 0  # resumed records that the next tune() counts as done
        # measure the template's default config first (see _proposals); a tuner confined to
        # part of the space turns this off when the default lies outside it
        self.measure_default = True

    # -- what subclasses provide ------------------------------------------------------------
    def has_next(self) -> bool:
        """Whether there are configs left to propose."""
        return len(self.visited) < len(self.space)

    def next_batch(self, batch_size: int) -> list:
        """Up to ``batch_size`` unvisited configs (``ConfigEntity``) to measure next."""
        raise NotImplementedError

    def _observe(self, inputs, results):
        """Learn from results (of this task); the base tuner learns nothing."""

    # -- results in -------------------------------------------------------------------------
    def update(self, inputs, results):
        """Take in measured results: bookkeeping (best, errors, visited), then learning."""
        self._record(inputs, results)
        self._observe(inputs, results)

    def resume(self, inputs, results) -> int:
        """Take in records of this task from an earlier run's log: their configs are never
        measured again, they count toward the best and teach the model, and the next
        ``tune`` call counts them toward its ``n_trial``. Records of other tasks (workload
        or target string), or whose config does not fit this space, are skipped. Returns
        how many were taken."""
        mine_in, mine_res = [], []
        for inp, res in zip(inputs, results):
            index = self._index_of(inp)
            if index is None or index in self.visited:
                continue
            config = self.space.get(index)
            mine_in.append(MeasureInput(self.task, config))
            mine_res.append(res)
            self.visited.add(index)
        if mine_in:
            self.update(mine_in, mine_res)
            self._resumed_pending += len(mine_in)
        return len(mine_in)

    def load_history(self, records, min_seed_records: int = 100) -> bool:
        """Learn from (input, result) records of *other* tasks before tuning. Only
        model-based tuners use them; returns whether a model was warmed."""
        return False

    def _index_of(self, inp) -> int | None:
        if inp.task.workload_key != self.task.workload_key or inp.task.target != self.task.target:
            return None
        config = inp.config
        index = getattr(config, "index", None)
        if isinstance(index, int) and 0 <= index < len(self.space) and \
                self.space.get(index) == config:
            return index
        try:  # the record's index may come from another version of the template
            return self.space.from_json(config.to_json()).index
        except Exception:  # noqa: BLE001 - any mismatch means "not a point of this space"
            return None

    def _record(self, inputs, results):
        for inp, res in zip(inputs, results):
            self.trials_done += 1
            self.visited.add(inp.config.index)
            if not res.ok:
                self.error_count += 1
                continue
            flops = self._flops(res)
            if flops > self.best_flops:
                self.best_flops = flops
                self.best_config = inp.config
                self.best_measure_pair = (inp, res)
                self.best_iter = self.trials_done

    def _flops(self, res) -> float:
        """FLOP/s of a result; without a FLOP count, runs per second (still comparable)."""
        cost = res.cost
        if not cost > 0 or cost == float("inf"):
            return 0.0
        return (self.task.flop or 1) / cost

    # -- proposing helpers ------------------------------------------------------------------
    def _claim(self, index: int):
        """Mark ``index`` visited and return its config."""
        self.visited.add(index)
        return self.space.get(index)

    def _random_unvisited(self, exclude=()) -> int | None:
        """A uniformly drawn index that is neither visited nor in ``exclude``; None if all
        are taken."""
        n = len(self.space)
        for _ in range(64):
            i = self.rng.randrange(n)
            if i not in self.visited and i not in exclude:
                return i
        if n <= ENUMERATE_LIMIT:  # nearly exhausted: draw from what is left
            left = [i for i in range(n) if i not in self.visited and i not in exclude]
            return self.rng.choice(left) if left else None
        return None

    # -- the loop ---------------------------------------------------------------------------
    def tune(self, n_trial: int, measure_option, early_stopping: int | None = None,
             callbacks=()):
        """Measure up to ``n_trial`` configs (records resumed by a callback's ``on_start``
        count toward it) and keep the best.

        ``measure_option``: options for ``autotune.measure.create_measure_batch`` (from
        ``autotune.measure_option``), or a callable ``measure(inputs) -> results`` used as
        is (its ``n_parallel`` attribute, if any, sets the batch size). ``early_stopping``:
        stop after that many trials without a better config. ``callbacks``:
        ``cb(tuner, inputs, results)`` after each batch; a callback may also have
        ``on_start(tuner)`` and ``on_end(tuner)``; an exception from a callback ends the
        run (after every ``on_end``) and propagates.
        A candidate that fails is a result with an error number, never an exception; on
        Ctrl-C the callbacks' ``on_end`` run and the ``KeyboardInterrupt`` propagates.
        """
        owned = None  # a measurer made here is closed here (it holds worker processes)
        if callable(measure_option):
            measure = measure_option
        else:
            from ..measure import create_measure_batch

            measure = owned = create_measure_batch(self.task, measure_option)
        batch_size = max(1, int(getattr(measure, "n_parallel", 1) or 1))
        callbacks = list(callbacks)
        self.n_trial = n_trial
        start = self.trials_done - self._resumed_pending
        t0 = time.perf_counter()
        try:
            for cb in callbacks:
                if hasattr(cb, "on_start"):
                    cb.on_start(self)
            start = self.trials_done - self._resumed_pending
            self._resumed_pending = 0
            # Early stopping counts from this run's start, not from an older best.
            self.best_iter = max(self.best_iter, start)
            while self.trials_done - start < n_trial and self.has_next():
                want = min(batch_size, n_trial - (self.trials_done - start))
                configs = self._proposals(want)
                if not configs:
                    break
                inputs = [MeasureInput(self.task, c) for c in configs]
                results = self._measure(measure, inputs)
                self.update(inputs, results)
                for cb in callbacks:
                    cb(self, inputs, results)
                log.debug("%s: %d/%d trials, best %.2f GFLOP/s, %d errors", self.task.name,
                          self.trials_done - start, n_trial, self.best_flops / 1e9,
                          self.error_count)
                if early_stopping is not None and \
                        self.trials_done - self.best_iter >= early_stopping:
                    log.debug("early stop: %d trials without improvement", early_stopping)
                    break
        except KeyboardInterrupt:
            log.warning("tuning %s interrupted after %d trials", self.task.name,
                        self.trials_done - start)
            raise
        finally:
            for cb in callbacks:
                if hasattr(cb, "on_end"):
                    cb.on_end(self)
            if owned is not None and hasattr(owned, "close"):
                owned.close()
            log.debug("tuning %s: %d trials in %.1f s", self.task.name,
                      self.trials_done - start, time.perf_counter() - t0)
        return self

    def _proposals(self, want: int) -> list:
        """The next batch, led by the template's default config while that is unmeasured:
        defaults are set from measurements, and a short search that never met the default
        could log a best that is slower than it, which apply_history_best would then build
        instead (measured: MobileNetV2 tuned with 4-19 trials per task ran 1.25x slower)."""
        default = self.space.default_index
        if not self.measure_default or default in self.visited:
            return self.next_batch(want)
        return [self._claim(default)] + (self.next_batch(want - 1) if want > 1 else [])

    def _measure(self, measure, inputs) -> list:
        try:
            results = list(measure(inputs))
        except KeyboardInterrupt:
            raise
        except Exception as err:  # noqa: BLE001
            # The measurer's own failure still must not kill a long run: every candidate of
            # the batch is recorded as failed, with the reason.
            log.warning("measuring a batch of %s failed: %s: %s", self.task.name,
                        type(err).__name__, err)
            msg = f"{type(err).__name__}: {err}"
            now = time.time()
            return [MeasureResult((msg,), MeasureErrorNo.UNKNOWN_ERROR, 0.0, now, msg)
                    for _ in inputs]
        if len(results) != len(inputs):
            raise ValueError(f"the measure function returned {len(results)} results for "
                             f"{len(inputs)} inputs")
        return results

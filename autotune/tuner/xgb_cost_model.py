"""The XGBoost cost model: predicts how fast a config runs from its feature vector.

Every XGBoost parameter the loss depends on is pinned in ``xgb_params``, defaults included:
XGBoost has changed defaults under users before (``tree_method`` in 2.0, the
``rank:pairwise`` pair construction and the fitted ``base_score`` since), and a tuner's
behaviour should change only when this file does. ``tests/test_autotune_tuners.py`` checks
that the booster really runs with these values.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np

from ..features import FeatureExtractor

__all__ = ["XGBCostModel", "xgb_params"]

log = logging.getLogger("autotune.tuner")

LOSS_TYPES = ("reg", "rank")
N_ROUNDS = 60  # boosting rounds per fit: trees are shallow and plans are re-fitted often


def xgb_params(loss_type: str, num_threads: int | None = None, seed: int | None = None) -> dict:
    """The full XGBoost parameter set of the cost model for ``loss_type``."""
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, not {loss_type!r}")
    params = {
        "booster": "gbtree",
        "tree_method": "hist",
        "grow_policy": "depthwise",
        "max_depth": 3,
        "max_leaves": 0,
        "max_bin": 256,
        "eta": 0.3,
        "gamma": 1e-4,
        "min_child_weight": 1.0,
        "max_delta_step": 0.0,
        "lambda": 1.0,
        "alpha": 0.0,
        "subsample": 1.0,
        "sampling_method": "uniform",
        "colsample_bytree": 1.0,
        "colsample_bylevel": 1.0,
        "colsample_bynode": 1.0,
        "num_parallel_tree": 1,
        "multi_strategy": "one_output_per_tree",
        "device": "cpu",
        # Measuring runs beside the model on a small machine: one or two threads.
        "nthread": num_threads or 1,
        "seed": 0 if seed is None else int(seed),
        "seed_per_iteration": False,
        "validate_parameters": True,
        "verbosity": 0,
    }
    if loss_type == "reg":
        # Labels are throughput divided by the best seen, so in [0, 1].
        params.update({"objective": "reg:squarederror", "eval_metric": "rmse",
                       "base_score": 0.0})
    else:
        # Classic pairwise ranking: pairs drawn uniformly within a task ("mean"), no
        # position debiasing, labels are relative throughput (floats are fine here).
        params.update({
            "objective": "rank:pairwise", "eval_metric": "ndcg", "base_score": 0.0,
            "lambdarank_pair_method": "mean", "lambdarank_num_pair_per_sample": 8,
            "lambdarank_unbiased": False, "lambdarank_bias_norm": 1.0,
            "lambdarank_normalization": True, "lambdarank_score_normalization": True,
            "ndcg_exp_gain": False,
        })
    return params


class XGBCostModel:
    """``fit(indices, scores)`` on configs of ``task`` (scores: FLOP/s, 0 for failures),
    ``predict(indices)`` -> higher is faster (-inf for a config that cannot be built).

    ``fit_history`` trains a base model on records of other tasks; its predictions are the
    starting margin of every later fit (the own model learns the difference), and it alone
    ranks configs until the task has results of its own.
    """

    def __init__(self, task, feature_type="itervar", loss_type="reg", num_threads=None,
                 seed=None, n_rounds=N_ROUNDS):
        import xgboost  # imported here: the rest of autotune works without it

        self._xgb = xgboost
        self.task = task
        self.feature_type = feature_type
        self.loss_type = loss_type
        self.params = xgb_params(loss_type, num_threads, seed)
        self.n_rounds = n_rounds
        self.extract = FeatureExtractor(task, feature_type)
        self.booster = None
        self.base = None
        self._fitted_on = None  # (indices, scores) of the last fit, to refit on a new base

    @property
    def trained(self) -> bool:
        return self.booster is not None or self.base is not None

    # -- training ---------------------------------------------------------------------------
    def _train(self, X, y, groups, margin=None):
        dtrain = self._xgb.DMatrix(X, label=y, base_margin=margin)
        if self.loss_type == "rank":
            dtrain.set_group(groups)
        return self._xgb.train(self.params, dtrain, num_boost_round=self.n_rounds)

    def fit(self, indices, scores) -> bool:
        """Train on this task's results; False (and no change) when none succeeded."""
        y = np.asarray(scores, dtype=np.float64)
        best = y.max() if len(y) else 0.0
        if not best > 0:
            return False
        X = self.extract(indices)
        if X.shape[1] == 0:  # a template without knobs: nothing to learn from
            return False
        margin = self._base_margin(X)
        self.booster = self._train(X, y / best, [len(y)], margin)
        self._fitted_on = (list(indices), y)
        return True

    def fit_history(self, records, min_seed_records: int) -> bool:
        """Train the base model on (input, result) records of any tasks (each task's
        throughput normalized by its own best); False if fewer than ``min_seed_records``
        usable records."""
        rows: dict[str, list] = defaultdict(list)
        extractors: dict[str, FeatureExtractor] = {self.task.workload_key: self.extract}
        for inp, res in records:
            key = inp.task.workload_key
            if key not in extractors:
                if not self._compatible(inp.task):
                    continue
                extractors[key] = FeatureExtractor(inp.task, self.feature_type)
            try:
                vec = extractors[key].one(int(inp.config.index))
            except Exception:  # noqa: BLE001, S112 - an index that does not fit that space
                continue
            flops = (inp.task.flop or 1) / res.cost if res.ok and res.cost > 0 else 0.0
            rows[key].append((vec, flops))
        X, y, groups = [], [], []
        for key in sorted(rows):
            best = max(f for _, f in rows[key])
            if not best > 0:
                continue
            X.extend(v for v, _ in rows[key])
            y.extend(f / best for _, f in rows[key])
            groups.append(len(rows[key]))
        if len(y) < max(min_seed_records, 1):
            log.info("load_history: %d usable records, %d needed; not used", len(y),
                     min_seed_records)
            return False
        self.base = self._train(np.stack(X), np.asarray(y), groups)
        if self._fitted_on is not None:  # the own model learned margins of no base: redo
            self.fit(*self._fitted_on)
        return True

    def _compatible(self, task) -> bool:
        """Knob vectors only line up between spaces with the same knobs."""
        if self.feature_type != "knob":
            return True
        mine = [(k.name, len(k)) for k in self.task.config_space.knobs]
        try:
            theirs = [(k.name, len(k)) for k in task.config_space.knobs]
        except Exception:  # noqa: BLE001 - a template that no longer builds its space
            return False
        return mine == theirs

    # -- predicting ---------------------------------------------------------------------------
    def _base_margin(self, X):
        if self.base is None:
            return None
        return self.base.inplace_predict(X)

    def predict(self, indices) -> np.ndarray:
        """Predicted scores of ``indices`` (zeros before any training)."""
        X = self.extract(indices)
        if self.booster is not None:
            out = self.booster.inplace_predict(X, base_margin=self._base_margin(X))
        elif self.base is not None:
            out = self.base.inplace_predict(X)
        else:
            out = np.zeros(len(indices))
        out = np.asarray(out, dtype=np.float64)
        if self.extract.failed:
            bad = [k for k, i in enumerate(indices) if int(i) in self.extract.failed]
            out[bad] = -np.inf
        return out

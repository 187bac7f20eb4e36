"""Tuners: which configs of a task to measure next (AutoTVM's ``autotvm.tuner``).

``Tuner`` holds the loop (``tune``); ``RandomTuner`` and ``GridSearchTuner`` walk indices,
``GATuner`` breeds knob vectors, ``XGBTuner`` lets an XGBoost cost model choose.
"""

from .ga_tuner import GATuner
from .index_based import GridSearchTuner, RandomTuner
from .sa_optimizer import SimulatedAnnealingOptimizer
from .tuner import Tuner
from .xgb_cost_model import XGBCostModel
from .xgb_tuner import XGBTuner

__all__ = ["GATuner", "GridSearchTuner", "RandomTuner", "SimulatedAnnealingOptimizer",
           "Tuner", "XGBCostModel", "XGBTuner"]

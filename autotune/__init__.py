"""Automatic tuning: tasks, config spaces, isolated builders/runners, tuners (random, grid,
GA, XGBoost cost model) and append-only JSON-lines tuning logs.

It searches each operator's schedule template on the real machine and hands the winners to
later builds through ``apply_history_best``.
"""

# runtime first: it sets numba's environment (SLP vectorizer, threading layer) before anything
# here imports numba (the record module reads numba's host CPU features).
import runtime  # noqa: F401, I001

from schedules.registry import get_config, template
from schedules.space import ConfigEntity, ConfigSpace

from .callback import log_to_file, progress_bar
from .dispatch import ApplyHistoryBest, apply_history_best, default_logs
from .measure import LocalBuilder, LocalRunner, create_measure_batch, measure_option
from .measure_types import MeasureErrorNo, MeasureInput, MeasureResult
from .plot import plot_curve
from .record import load_records, pick_best
from .task import Task, create_task
from .tuner import GATuner, GridSearchTuner, RandomTuner, Tuner, XGBTuner

"""Schedules: the primitives that decide how a tensor expression runs (split, reorder,
compute_at, ...), recorded as replayable steps, and ``lower``, which turns a schedule into a
printable loop-nest IR for the code generators."""

from .ir import PrimFunc
from .lower import lower
from .replay import replay
from .schedule import Schedule, ScheduleError, Stage, create_schedule
from .steps import Step, steps_from_json, steps_to_json

__all__ = [
    "PrimFunc", "Schedule", "ScheduleError", "Stage", "Step", "create_schedule", "lower",
    "replay", "steps_from_json", "steps_to_json",
]

from .auto import anchor_op, schedule_for
from .registry import (
    ApplyConfig,
    DispatchContext,
    get_config,
    get_template,
    list_templates,
    register_schedule,
    template,
    workload_key,
)
from .space import ConfigEntity, ConfigError, ConfigSpace

__all__ += [
    "ApplyConfig", "ConfigEntity", "ConfigError", "ConfigSpace", "DispatchContext", "anchor_op",
    "get_config", "get_template", "list_templates", "register_schedule", "schedule_for",
    "template", "workload_key",
]

from . import cpu  # noqa: E402,F401 - registers the default CPU op schedules
from . import cuda  # noqa: E402,F401 - registers the CUDA op schedules

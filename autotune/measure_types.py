"""What a tuner hands the measurer and what comes back (AutoTVM's MeasureInput/Result)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from schedules.space import ConfigEntity

from .task import Task

__all__ = ["MeasureErrorNo", "MeasureInput", "MeasureResult"]


class MeasureErrorNo(enum.IntEnum):
    """Why a candidate has no valid time. Logged by name, so the numbers may change."""

    NO_ERROR = 0
    INSTANTIATION_ERROR = 1   # the template raised for this config (bad schedule)
    COMPILE_ERROR = 2         # lowering or numba compilation failed
    COMPILE_TIMEOUT = 3
    RUNTIME_ERROR = 4         # the kernel raised
    WRONG_ANSWER = 5          # disagrees with the default config's result
    RUN_TIMEOUT = 6
    WORKER_CRASH = 7          # the worker process died (segfault, out of memory, kill)
    UNKNOWN_ERROR = 8


@dataclass(frozen=True)
class MeasureInput:
    task: Task
    config: ConfigEntity


@dataclass(frozen=True)
class MeasureResult:
    """``costs``: seconds per run, one per repeat (empty when failed: ``error_msg`` says
    why); ``all_cost``: wall seconds spent on the candidate (build + load + check + timing);
    ``build_cost``: seconds its parallel build took; ``timestamp``: when it finished
    (time.time())."""

    costs: tuple
    error_no: MeasureErrorNo
    all_cost: float
    timestamp: float
    error_msg: str = ""
    build_cost: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error_no == MeasureErrorNo.NO_ERROR

    @property
    def mean_cost(self) -> float:
        return sum(self.costs) / len(self.costs) if self.ok and self.costs else float("inf")

    @property
    def cost(self) -> float:
        """What candidates are ranked by: the fastest repeat (infinity if failed). Timing
        noise only ever adds time, and on a shared machine one disturbed repeat moved the
        mean enough to rank a 1.3x slower config first."""
        return min(self.costs) if self.ok and self.costs else float("inf")

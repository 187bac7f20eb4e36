"""CUDA schedules of the operator library, one module per op family. Importing a module
registers its op schedules (``register_schedule(anchor, "cuda")``) for ``schedule_for`` and
the tuning templates; ``schedule_injective``/``schedule_generic`` bind what no op schedule
claims (elementwise and injective graphs, plain reductions)."""

from . import conv2d, gemm, norm, pooling
from .injective import schedule_generic, schedule_injective

__all__ = ["schedule_generic", "schedule_injective"]

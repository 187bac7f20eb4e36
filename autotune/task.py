"""Tuning tasks: a template bound to concrete arguments and a target.

A task's workload is ``(template_name, *args)`` with tensors written as
``("TENSOR", shape, dtype)``; the same tuple that the operator library's anchor stages carry
in ``op.attrs["workload"]``, so a record tuned through a task is found again when a network
build meets the same op (``schedule_for`` under ``apply_history_best``).
"""

from __future__ import annotations

import contextlib
from functools import cached_property

from schedules import registry as _template
from schedules.space import ConfigEntity, ConfigSpace

__all__ = ["Task", "create_task"]


class Task:
    """``Task(name, args, target)``: template ``name`` (see ``autotune.template``) applied to
    ``args`` (JSON-able values) for ``target`` ("cpu", "cuda", or a target string with
    flags such as ``"cpu -fastmath=off"``)."""

    def __init__(self, name: str, args, target: str = "cpu"):
        self.name = name
        self.args = tuple(_tupled(a) for a in args)
        self.target = str(target)
        self.template = _template.get_template(name)

    @property
    def workload(self) -> tuple:
        return (self.name, *self.args)

    @property
    def workload_key(self) -> str:
        return _template.workload_key(self.workload)

    @property
    def target_kind(self) -> str:
        return _template.normalize_target(self.target)

    @cached_property
    def config_space(self) -> ConfigSpace:
        with _template.target_context(self.target):
            return self.template.space(self.args)

    @property
    def flop(self) -> int:
        return self.config_space.flop

    def instantiate(self, config: ConfigEntity | None = None):
        """``(schedule, tensors)`` of the candidate ``config`` (None: the default point)."""
        dispatch = _template.ApplyConfig(config) if config is not None else contextlib.nullcontext()
        with dispatch, _template.target_context(self.target):
            return self.template.instantiate(self.args, config)

    def __repr__(self):
        return f"Task({self.name!r}, args={self.args!r}, target={self.target!r})"



def _tupled(value):
    """Lists from JSON become tuples so workloads compare and hash equal either way."""
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value


def create_task(name: str, args, target: str = "cpu") -> Task:
    """AutoTVM's ``autotvm.task.create``: the task of template ``name`` on ``args``."""
    return Task(name, args, target)

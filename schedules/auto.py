"""``schedule_for``: a schedule for any graph of operator-library stages.

The graph's anchor stage (the one tagged ``"anchor:<op>"``, see ``te.ops.tags``) picks the
op schedule registered for it and the target; the config comes from the innermost dispatch
context (a tuning log via ``autotune.apply_history_best``) or is the template's default.
Graphs without a registered anchor get the generic schedule: injective stages inlined,
outputs parallel over their outer loop.
"""

from __future__ import annotations

from te import ops
from te.tensor import ComputeOp, Tensor

from .registry import normalize_target, op_schedule, query_config, resolve_config
from .schedule import Schedule, create_schedule
from .space import ConfigSpace

__all__ = ["anchor_op", "schedule_for"]


def _outputs(outputs) -> list[Tensor]:
    return [outputs] if isinstance(outputs, Tensor) else list(outputs)


def _compute_ops(s: Schedule) -> list[ComputeOp]:
    return [st.op for st in s.stages if isinstance(st.op, ComputeOp)]


def anchor_op(outputs, target="cpu") -> ComputeOp | None:
    """The anchor stage of the graph ending in ``outputs`` that has a schedule on
    ``target`` (the last one, nearest the outputs, when there are several)."""
    s = create_schedule([t.op for t in _outputs(outputs)])
    found = None
    for op in _compute_ops(s):
        name = ops.tags.anchor_name(op.tag)
        if name is not None and op_schedule(name, target) is not None:
            found = op
    return found


def schedule_for(outputs, target="cpu") -> Schedule:
    """A schedule for the graph ending in ``outputs`` (a tensor or a list): the anchor op's
    tuned config when the dispatch context holds one, else its default."""
    outs = _outputs(outputs)
    s = create_schedule([t.op for t in outs])
    anchor = anchor_op(outs, target)
    if anchor is None:
        schedule_generic(s, outs, target)
        return s
    func = op_schedule(ops.tags.anchor_name(anchor.tag), target)
    answer = query_config(target, anchor.attrs.get("workload"))
    if answer is None:
        func(ConfigSpace(), s, outs, anchor)
        return s
    space = ConfigSpace()
    func(space, create_schedule([t.op for t in outs]), outs, anchor)
    func(resolve_config(space, answer), s, outs, anchor)
    return s


def schedule_generic(s: Schedule, outs: list[Tensor], target="cpu") -> Schedule:
    """Inline every injective stage that is not an output; parallel outer loops on cpu."""
    out_ops = {id(t.op) for t in outs}
    for op in _compute_ops(s):
        if id(op) not in out_ops and ops.tags.is_injective(op.tag):
            s[op].compute_inline()
    if normalize_target(target) == "cpu":
        for t in outs:
            axes = s[t].op.axis
            if len(axes) >= 2:
                s[t].parallel(axes[0])
    return s

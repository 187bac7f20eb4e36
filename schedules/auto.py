"""``schedule_for``: a schedule for any graph of operator-library stages.

Every anchor stage (tagged ``"anchor:<op>"``, see ``te.ops.tags``) with an op schedule
registered for the target schedules its own subgraph: the anchor, the elementwise chain
after it and everything before it; the ends of the other anchors' subgraphs are treated as
outputs meanwhile, so no op schedule inlines them into its loops. Its config comes from the
innermost dispatch context (a tuning log via ``autotune.apply_history_best``) or is the
template's default. The stages left over, and graphs without an anchor, get
``schedule_generic`` (``schedules.generic``).
"""

from __future__ import annotations

import contextlib
import warnings

from te import ops
from te.tensor import ComputeOp, Tensor

from .generic import compute_stages, direct_consumers, schedule_generic
from .registry import op_schedule, query_config, resolve_config
from .schedule import Schedule, Stage, create_schedule
from .space import ConfigError, ConfigSpace

__all__ = ["anchor_op", "schedule_for", "schedule_generic"]


def _outputs(outputs) -> list[Tensor]:
    return [outputs] if isinstance(outputs, Tensor) else list(outputs)


def _registered_anchors(s: Schedule, target) -> list[Stage]:
    """The anchor stages with an op schedule on ``target``, in topological order."""
    out = []
    for st in compute_stages(s):
        name = ops.tags.anchor_name(st.op.tag)
        if name is not None and op_schedule(name, target) is not None:
            out.append(st)
    return out


def anchor_op(outputs, target="cpu") -> ComputeOp | None:
    """The anchor stage of the graph ending in ``outputs`` that has a schedule on
    ``target`` (the last one, nearest the outputs, when there are several)."""
    s = create_schedule([t.op for t in _outputs(outputs)])
    found = _registered_anchors(s, target)
    return found[-1].op if found else None


def schedule_for(outputs, target="cpu") -> Schedule:
    """A schedule for the graph ending in ``outputs`` (a tensor or a list): each anchor op's
    tuned config when the dispatch context holds one, else its default; the generic
    schedule for the rest."""
    outs = _outputs(outputs)
    s = create_schedule([t.op for t in outs])
    anchors = _registered_anchors(s, target)
    claimed: set = set()
    if len(anchors) == 1 and not _other_outputs(s, outs, anchors[0]):
        _apply_op_schedule(s, outs, anchors[0].op, target)
        return s
    ends = {id(a): _chain_end(s, a) for a in anchors}
    for a in anchors:
        end = ends[id(a)]
        with _as_outputs(s, [ends[id(b)] for b in anchors]):
            _apply_op_schedule(s, [end.op.output(i) for i in range(end.op.num_outputs)], a.op,
                               target)
        claimed |= {id(end)} | {id(st) for st in s._producers_closure(end)}
    rest = [st for st in compute_stages(s) if id(st) not in claimed]
    schedule_generic(s, outs, target, stages=rest)
    return s


def _apply_op_schedule(s, outs, anchor: ComputeOp, target):
    func = op_schedule(ops.tags.anchor_name(anchor.tag), target)
    answer = query_config(target, anchor.attrs.get("workload"))
    if answer is None:
        func(ConfigSpace(), s, outs, anchor)
        return
    space = ConfigSpace()
    func(space, create_schedule([t.op for t in outs]), outs, anchor)
    try:
        config = resolve_config(space, answer)
    except ConfigError as err:
        # A record from an older template (its knobs changed since): the default still
        # builds a correct kernel, and the user hears which workload lost its tuning.
        warnings.warn(f"tuned config for {anchor.attrs.get('workload')} no longer fits its "
                      f"template ({err}); using the default config", RuntimeWarning,
                      stacklevel=3)
        config = space
    func(config, s, outs, anchor)


def _other_outputs(s, outs, anchor: Stage) -> bool:
    """Whether some output is not the end of ``anchor``'s chain (so the generic schedule
    has stages to do as well)."""
    end = _chain_end(s, anchor)
    return any(s[t] is not end for t in outs)


def _chain_end(s: Schedule, anchor: Stage) -> Stage:
    """The last stage of the elementwise chain that follows ``anchor``: each link is the
    only consumer of the previous one and is elementwise, broadcast or injective."""
    consumers = direct_consumers(s)
    st = anchor
    while not st.is_output:
        nxt = consumers[id(st)]
        if len(nxt) != 1 or not ops.tags.is_injective(nxt[0].op.tag):
            break
        st = nxt[0]
    return st


@contextlib.contextmanager
def _as_outputs(s: Schedule, stages):
    """Treat ``stages`` as outputs inside the block: an op schedule then keeps them at the
    root (it never inlines the end of another anchor's subgraph into its own loops)."""
    old = [(st, st.is_output) for st in stages]
    for st in stages:
        st.is_output = True
    try:
        yield
    finally:
        for st, flag in old:
            st.is_output = flag

"""Replaying recorded steps onto a fresh schedule of the same computation."""

from __future__ import annotations

from te import thread_axis

from .schedule import Schedule, ScheduleError, create_schedule
from .steps import Step, steps_from_json


def replay(outputs, steps) -> Schedule:
    """A new schedule of ``outputs`` with ``steps`` (Steps, dicts or a JSON string) applied."""
    if isinstance(steps, str) or (steps and isinstance(steps[0], dict)):
        steps = steps_from_json(steps)
    s = create_schedule(outputs)
    for n, step in enumerate(steps):
        try:
            apply_step(s, step)
        except ScheduleError as err:
            raise ScheduleError(f"replaying step {n} ({step}): {err}") from None
        except (KeyError, TypeError, ValueError) as err:
            raise ScheduleError(f"replaying step {n} ({step}): malformed step ({err})") from None
    return s


def apply_step(s: Schedule, step: Step) -> None:
    """Apply one recorded step to ``s``."""
    st = s.stage_by_name(step.stage)
    a = step.args
    ax = st.axis_by_name
    kind = step.kind
    if kind == "split":
        st.split(ax(a["axis"]), factor=a.get("factor"), nparts=a.get("nparts"))
    elif kind == "tile":
        st.tile(ax(a["x"]), ax(a["y"]), a["x_factor"], a["y_factor"])
    elif kind == "fuse":
        st.fuse(*[ax(n) for n in a["axes"]])
    elif kind == "reorder":
        st.reorder(*[ax(n) for n in a["axes"]])
    elif kind in ("unroll", "vectorize", "parallel"):
        getattr(st, kind)(ax(a["axis"]))
    elif kind == "bind":
        st.bind(ax(a["axis"]), thread_axis(a["thread"]))
    elif kind == "pragma":
        st.pragma(ax(a["axis"]), a["type"], a.get("value"))
    elif kind == "compute_at":
        parent = s.stage_by_name(a["parent"])
        st.compute_at(parent, parent.axis_by_name(a["axis"]))
    elif kind in ("compute_inline", "compute_root", "double_buffer"):
        getattr(st, kind)()
    elif kind == "set_scope":
        st.set_scope(a["scope"])
    elif kind == "storage_align":
        st.storage_align(ax(a["axis"]), a["factor"], a["offset"])
    elif kind == "cache_read":
        readers = [s.stage_by_name(r).op for r in a["readers"]]
        s.cache_read(st.op.output(a["tensor"]), a["scope"], readers, a.get("layout"),
                     a.get("reindex"))
    elif kind == "cache_write":
        outs = [st.op.output(i) for i in range(st.op.num_outputs)]
        s.cache_write(outs if len(outs) > 1 else outs[0], a["scope"], a.get("reindex"))
    elif kind == "rfactor":
        s.rfactor(st.op.output(0), ax(a["axis"]), a.get("factor_axis", 0))
    else:
        raise ScheduleError(f"unknown schedule step kind {kind!r}")

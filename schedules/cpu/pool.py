"""CPU schedules of the pools (``max_pool2d``, ``avg_pool2d``, ``global_avg_pool2d``) and of
``lrn``.

Windowed pools: the padding is inlined (a guarded read, never a padded copy of the input),
the output rows (batch x channels x output rows, fused) run in parallel and each output
element reduces its window in a scalar: the window loops are unrolled inside the output
column loop, which LLVM vectorizes. In the channel-blocked layouts (``NCHW{c}c``) the
``c`` lanes are the vector instead, the window loops sit outside them.

global_avg_pool2d and lrn reduce along whole rows (the spatial plane) or across channels:
the sum is computed inside the output's row loop, accumulating a row of the contiguous axis.

Knobs:

``row_tile``       output rows per parallel iteration (1..16; default 1, 8 for
                   global_avg_pool2d's short rows)
``unroll_window``  unroll the kernel window (default: when it has at most 16 elements)
"""

from __future__ import annotations

from .. import library  # noqa: F401 - registers the tuning templates of these anchors
from ..generic import axis_extent, inlinable, op_work, schedule_generic, worth_parallel
from ..registry import register_schedule

ROW_TILES = [1, 2, 4, 8, 16]
MAX_UNROLLED_WINDOW = 16


def _inline_injective(s, out):
    for st in s._producers_closure(s[out]):
        if st.attach_type == "root" and not st.relations and inlinable(st):
            st.compute_inline()


def _parallel_rows(cfg, st, rows, work, default_tile=1):
    """Fuse ``rows`` (leading leaves of ``st``), split off ``row_tile`` of them per parallel
    iteration; returns the innermost row leaf."""
    cfg.define_knob("row_tile", ROW_TILES, default=default_tile)
    tile = cfg["row_tile"].val
    fused = st.fuse(*rows) if len(rows) > 1 else rows[0]
    outer = fused
    n = axis_extent(fused) if fused.dom is not None else None
    if tile > 1 and (n is None or n > tile):
        outer, fused = st.split(fused, factor=tile)
    if worth_parallel(work):
        st.parallel(outer)
    return fused


@register_schedule("max_pool2d", "cpu")
@register_schedule("avg_pool2d", "cpu")
def schedule_pool2d(cfg, s, outs, anchor):
    """Output rows in parallel; every output element reduces its (unrolled) window in a
    scalar, inside the vectorized column (NCHW) or lane (NCHW{c}c) loop."""
    out = outs[0]
    _inline_injective(s, out)
    st = s[out]
    window = anchor if anchor.reduce_axis else next(
        t.op for t in anchor.input_tensors if t.op.reduce_axis)
    if len(st.op.axis) != len(anchor.axis):  # an epilogue changed the shape
        return schedule_generic(s, outs, "cpu")
    kh, kw = (axis_extent(r) for r in window.reduce_axis)
    cfg.define_knob("unroll_window", [True, False], default=kh * kw <= MAX_UNROLLED_WINDOW)
    unroll = cfg["unroll_window"].val
    n, c, oh, ow, *lane = st.op.axis
    rows = _parallel_rows(cfg, st, [n, c, oh], op_work(anchor, kh * kw))
    vec = lane[0] if lane else ow
    if s[window] is st:
        ry, rx = st.op.reduce_axis
        if lane:
            st.reorder(rows, ow, ry, rx, vec)
        st.vectorize(vec)
        if unroll:
            st.unroll(ry)
            st.unroll(rx)
        return
    # avg_pool2d: the window sum in a scalar (a lane vector) at each output element
    acc = s[window]
    acc.compute_at(st, vec if not lane else ow)
    acc.set_scope("local")
    ry, rx = acc.op.reduce_axis
    if lane:
        acc.reorder(ry, rx, acc.op.axis[-1])
        acc.vectorize(acc.op.axis[-1])
    if unroll:
        acc.unroll(ry)
        acc.unroll(rx)
    st.vectorize(vec)


@register_schedule("global_avg_pool2d", "cpu")
@register_schedule("lrn", "cpu")
def schedule_row_reduce(cfg, s, outs, anchor):
    """The generic row schedule (the sum inside the output's row loop, in parallel tiles of
    ``row_tile`` rows)."""
    global_pool = anchor.attrs.get("op") == "global_avg_pool2d"
    cfg.define_knob("row_tile", ROW_TILES, default=8 if global_pool else 1)
    schedule_generic(s, outs, "cpu", row_tile=cfg["row_tile"].val)

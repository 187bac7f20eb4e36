"""CPU schedules of ``softmax``, ``log_softmax`` and ``layer_norm``: one pass over the rows.

Each row (the normalized axes of one index of the others) is finished before the next one
starts: its maximum / sum / mean and variance are computed inside the row loop, into buffers
of one element (LLVM keeps them in registers and vectorizes the reductions), so the row
stays in L1 between the passes and nothing of the tensor's size is stored but the output.
``exp(x - max)`` of softmax is stored once per row and read by the sum and the division
(knob ``keep_exp``). Rows run in parallel, ``row_tile`` of them per parallel iteration.

When the normalized axis is not the innermost one (softmax over the channels of NCHW), a
"row" is a chunk of ``vec_chunk`` positions of the innermost axis: the reductions
accumulate a vector of partial results per step of the normalized axis.

Knobs (defaults measured on the 2-core AVX-512 machine, softmax [1536, 128] and layer_norm
[128, 768]):

``row_tile``   rows per parallel iteration (1..32; default 4)
``vec_chunk``  innermost positions per row when the normalized axis is not innermost
               (16..256; default 64)
``keep_exp``   softmax: store ``exp(x - max)`` in a row buffer (True, default) or compute
               it again for the division
"""

from __future__ import annotations

from te.ops import tags

from .. import library  # noqa: F401 - registers the tuning templates of these anchors
from ..generic import (
    axis_extent,
    inlinable,
    op_work,
    schedule_generic,
    schedule_inner,
    worth_parallel,
)
from ..registry import register_schedule

ROW_TILES = [1, 2, 4, 8, 16, 32]
VEC_CHUNKS = [16, 32, 64, 128, 256]


def _op_stages(s, out, anchor):
    """The compute stages behind ``out`` that belong to the anchor's op, producers first."""
    name = anchor.attrs.get("op")
    closure = s._producers_closure(out) + [out]
    return [st for st in s.stages if st in closure and st.op.attrs.get("op") == name
            and st.op is not anchor and st is not out]


def _inline_rest(s, out, anchor, keep=()):
    """Inline the injective stages behind ``out`` (pre-ops, the epilogue, the anchor when an
    epilogue follows it), except those in ``keep``."""
    for st in s._producers_closure(out):
        if st in keep or st.attach_type != "root" or st.relations:
            continue
        if inlinable(st) or (st.op is anchor and not st.is_output):
            st.compute_inline()


def _rows_then(cfg, s, out, inner_axes: list, work: int | None):
    """Loops of ``out``: the fused other axes (rows, parallel in tiles of ``row_tile``),
    then ``inner_axes`` with the last one vectorized. Returns the row leaf (None for a
    single row) at which the row's producers are computed."""
    st = s[out]
    rows = [iv for iv in st.op.axis if all(iv is not a for a in inner_axes)]
    st.reorder(*rows, *inner_axes)
    n_rows = 1
    for iv in rows:
        n_rows = None if n_rows is None or axis_extent(iv) is None else n_rows * axis_extent(iv)
    cfg.define_knob("row_tile", ROW_TILES, default=4)
    tile = cfg["row_tile"].val
    st.vectorize(inner_axes[-1])
    if not rows:
        return None
    fused = st.fuse(*rows) if len(rows) > 1 else rows[0]
    parallel = worth_parallel(work)
    if tile > 1 and (n_rows is None or n_rows > tile):
        outer, fused = st.split(fused, factor=tile)
    else:
        outer = fused
    if parallel:
        st.parallel(outer)
    return fused


def _chunked_columns(cfg, s, out, axis: int):
    """Loops of ``out`` when the normalized ``axis`` is not innermost: (other axes, a chunk
    of the innermost axis) fused and parallel, then ``axis``, then the chunk (vectorized).
    Returns the fused leaf."""
    st = s[out]
    axes = list(st.op.axis)
    norm, last = axes[axis], axes[-1]
    cfg.define_knob("vec_chunk", VEC_CHUNKS, default=64)
    chunk = cfg["vec_chunk"].val
    n = axis_extent(last)
    if n is None or n > chunk:
        last_o, last_i = st.split(last, factor=chunk)
        outer = [a for a in axes if a is not norm and a is not last] + [last_o]
    else:
        last_i = last
        outer = [a for a in axes if a is not norm and a is not last]
    st.reorder(*outer, norm, last_i)
    st.vectorize(last_i)
    if not outer:
        return None
    fused = st.fuse(*outer) if len(outer) > 1 else outer[0]
    st.parallel(fused)
    return fused


def _attach(s, producers, out, leaf):
    for st in producers:
        if leaf is None:
            continue  # one row: the producers stay at the root, computed once
        st.compute_at(s[out], leaf)
        if st.op.reduce_axis:
            # One element per row: the code generator keeps it in a scalar local.
            st.set_scope("local")
        schedule_inner(st)


@register_schedule("softmax", "cpu")
@register_schedule("log_softmax", "cpu")
def schedule_softmax(cfg, s, outs, anchor):
    """Softmax / log_softmax over ``anchor.attrs["axis"]``: max, exp-sum and the output of a
    row in one pass over the rows."""
    out = outs[0]
    axis = anchor.attrs["axis"]
    stages = _op_stages(s, s[out], anchor)
    exp_stage = [st for st in stages if not st.op.reduce_axis and st.op.tag == tags.BROADCAST]
    if exp_stage:
        cfg.define_knob("keep_exp", [True, False], default=True)
        if not cfg["keep_exp"].val:
            exp_stage = []
    _inline_rest(s, s[out], anchor, keep=exp_stage)
    producers = [st for st in stages if st.attach_type == "root"]
    axes = list(s[out].op.axis)
    if len(axes) != len(anchor.axis):  # an epilogue changed the shape: the generic way
        return schedule_generic(s, outs, "cpu")
    if axis == len(axes) - 1:
        leaf = _rows_then(cfg, s, out, [axes[axis]], op_work(anchor, 4))
    else:
        leaf = _chunked_columns(cfg, s, out, axis)
    _attach(s, producers, out, leaf)


@register_schedule("layer_norm", "cpu")
def schedule_layer_norm(cfg, s, outs, anchor):
    """Layer norm over trailing axes: mean, variance and output of a row in one pass."""
    out = outs[0]
    norm_axes = tuple(anchor.attrs["axis"])
    ndim = len(anchor.axis)
    stages = _op_stages(s, s[out], anchor)
    _inline_rest(s, s[out], anchor)
    producers = [st for st in stages if st.attach_type == "root"]
    axes = list(s[out].op.axis)
    if len(axes) != ndim or norm_axes != tuple(range(ndim - len(norm_axes), ndim)):
        return schedule_generic(s, outs, "cpu")  # normalized axes not innermost
    leaf = _rows_then(cfg, s, out, [axes[a] for a in norm_axes], op_work(anchor, 3))
    _attach(s, producers, out, leaf)


"""CUDA schedules of ``softmax``, ``log_softmax`` and ``layer_norm``: one kernel, a block per
row (or ``rows`` rows, one per threadIdx.y), block reductions.

Each row's reductions (the maximum and the sum of exponentials; the mean and the variance)
are computed inside the row's block: thread t reduces elements t, t + threads, ... (adjacent
threads read adjacent elements), then the partials are combined through shared memory, and
every thread keeps the result in a register.  The output loop then runs over the row the
same way.  The elementwise stages in between (``exp(x - max)``) are inlined: recomputing an
exponential is cheaper than a round trip through memory.  With ``cache_row`` the block first
copies its rows into shared memory, so global memory sees one read and one write per
element (the least a separate kernel can do); without it, each reduction and the output
read the row again.

Knobs: ``threads`` (per row; a power of two up to 1024, default the row length rounded down
to a power of two, at most 256), ``rows`` (rows per block, on threadIdx.y; default 1, more
when a row has fewer than 128 elements) and ``cache_row`` (default on when the block's rows
take at most 16 KiB).
"""

from __future__ import annotations

from te.tensor import ComputeOp, PlaceholderOp

from ..registry import register_schedule
from ._common import (
    MAX_THREADS,
    WARP,
    block_reduce,
    cooperative_fetch,
    epilogue_output,
    extent,
    inline_injective,
    pow2_at_most,
    thread,
)

DEFAULT_THREADS = 256
CACHE_ROW_BYTES = 16 * 1024  # shared memory for the cached rows of a block, by default
BLOCK_THREADS = 128  # aim for at least this many threads per block when rows are short


def _row_axes(stage, norm_axes):
    """(outer axes, normalized axes) of a stage of the input's shape."""
    axes = list(stage.op.axis)
    return [a for p, a in enumerate(axes) if p not in norm_axes], \
        [a for p, a in enumerate(axes) if p in norm_axes]


@register_schedule("softmax", "cuda")
@register_schedule("log_softmax", "cuda")
@register_schedule("layer_norm", "cuda")
def schedule_row_norm(cfg, s, outs, anchor):
    """The block-per-row schedule above."""
    axis = anchor.attrs.get("axis", -1)
    norm_axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    norm_axes = tuple(a % len(anchor.axis) for a in norm_axes)
    row = 1
    for a in norm_axes:
        row *= extent(anchor.axis[a])
    rows_total = 1
    for p, a in enumerate(anchor.axis):
        if p not in norm_axes:
            rows_total *= extent(a)
    choices = [t for t in (32, 64, 128, 256, 512, 1024) if t <= max(row, WARP)]
    cfg.define_knob("threads", choices,
                    default=min(pow2_at_most(row, DEFAULT_THREADS), choices[-1]) if row >= WARP
                    else choices[0])
    threads = cfg["threads"].val
    rows_choices = [r for r in (1, 2, 4, 8, 16, 32)
                    if r <= rows_total and r * threads <= MAX_THREADS]
    cfg.define_knob("rows", rows_choices,
                    default=max(r for r in rows_choices if r * threads <= max(BLOCK_THREADS,
                                                                               threads)))
    rows = cfg["rows"].val
    cfg.define_knob("cache_row", [True, False],
                    default=row * rows * 4 <= CACHE_ROW_BYTES)

    out = epilogue_output(s, outs, anchor)
    data = _row_input(anchor)
    readers = [st.op for st in s.stages if isinstance(st.op, ComputeOp)
               and data in st.op.input_tensors]
    cached = None
    if cfg["cache_row"].val and data is not None and len(norm_axes) < len(anchor.axis):
        cached = s.cache_read(data, "shared", readers)
    inline_injective(s)
    out_stage = s[out] if out is not None else s[anchor]
    if out is not None:
        s[anchor].compute_inline()
    outer, inner = _row_axes(out_stage, norm_axes)
    fused_row = out_stage.fuse(*outer) if len(outer) > 1 else (outer[0] if outer else None)
    fused_col = out_stage.fuse(*inner) if len(inner) > 1 else inner[0]
    if fused_row is not None and rows > 1:
        block, row_thread = out_stage.split(fused_row, factor=rows)
        out_stage.bind(block, thread("blockIdx.x"))
        out_stage.bind(row_thread, thread("threadIdx.y"))
        attach = row_thread
    elif fused_row is not None:
        out_stage.bind(fused_row, thread("blockIdx.x"))
        attach = fused_row
    else:
        attach = None
    _, col_thread = out_stage.split(fused_col, factor=threads)
    out_stage.bind(col_thread, thread("threadIdx.x"))

    reductions = [st for st in s.stages if isinstance(st.op, ComputeOp) and st.op.reduce_axis
                  and st.attach_type == "root" and st is not out_stage]
    if cached is not None:  # the rows, read from global memory once by the whole block
        s[cached].compute_at(out_stage, attach)
        cooperative_fetch(s[cached], rows, threads)
    for st in reductions:
        st.set_scope("local")  # every thread keeps the row's result in a register
        if attach is not None:
            st.compute_at(out_stage, attach)
        block_reduce(st, threads)
    return s


def _row_input(anchor):
    """The normalized input: the tensor of the anchor's own shape that its stages read."""
    todo, seen = [anchor], set()
    while todo:
        op = todo.pop()
        for t in op.input_tensors:
            if isinstance(t.op, PlaceholderOp) and tuple(map(str, t.shape)) == \
                    tuple(map(str, anchor.output(0).shape)):
                return t
            if id(t.op) not in seen and isinstance(t.op, ComputeOp):
                seen.add(id(t.op))
                todo.append(t.op)
    return None

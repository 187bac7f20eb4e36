"""Pieces the CUDA op schedules share: thread axes, inlining, the flat elementwise binding,
cooperative loads of shared tiles and the block reduction of a row."""

from __future__ import annotations

import te
from te import expr as E
from te import ops
from te.tensor import ComputeOp

from ..schedule import ScheduleError

WARP = 32
MAX_THREADS = 1024


def thread(tag: str):
    """A fresh ``te.thread_axis(tag)`` (bindings only look at the tag)."""
    return te.thread_axis(tag)


def extent(iv) -> int:
    """The constant extent of an axis; GPU schedules need them to size their tiles."""
    ext = iv.dom.extent if iv.dom is not None else None
    if not isinstance(ext, E.Const):
        raise ScheduleError(f"cuda schedule: axis {iv.name} has the symbolic extent {ext}; "
                            "the op schedules need constant shapes")
    return int(ext.value)


def inline_injective(s, keep=()):
    """Inline every injective stage that is not an output (padding, casts, transposes and
    the elementwise links between an anchor and its output)."""
    for st in s.stages:
        if isinstance(st.op, ComputeOp) and st.attach_type == "root" and not st.is_output \
                and ops.tags.is_injective(st.op.tag) and st not in keep:
            st.compute_inline()


def epilogue_output(s, outs, anchor):
    """The output stage when elementwise stages follow the anchor (a bias, an activation),
    else None (the anchor is the output)."""
    out = s[outs[0]]
    return None if out.op is anchor else out


def bind_flat(st, num_threads: int, axes=None):
    """Fuse ``axes`` (default: all data axes), split by ``num_threads`` and bind the parts to
    blockIdx.x and threadIdx.x (TVM's injective schedule); returns (block, thread) axes."""
    axes = list(st.op.axis if axes is None else axes)
    fused = st.fuse(*axes) if len(axes) > 1 else axes[0]
    bx, tx = st.split(fused, factor=num_threads)
    st.bind(bx, thread("blockIdx.x"))
    st.bind(tx, thread("threadIdx.x"))
    return bx, tx


def cooperative_fetch(st, threads_y: int, threads_x: int):
    """All threads of a (threads_y x threads_x) block load the tile of ``st`` together:
    consecutive elements go to consecutive threadIdx.x, so the loads coalesce."""
    fused = st.fuse(*st.op.axis) if len(st.op.axis) > 1 else st.op.axis[0]
    _, rest = st.split(fused, factor=threads_y * threads_x)
    ty, tx = st.split(rest, nparts=threads_y)
    st.bind(ty, thread("threadIdx.y"))
    st.bind(tx, thread("threadIdx.x"))


def block_reduce(st, threads: int, tag: str = "threadIdx.x"):
    """Reduce ``st`` (attached inside a block) across ``threads`` threads: the fused
    reduction axis is split so that thread t takes elements t, t + threads, ... (adjacent
    threads read adjacent elements), partials combined through shared memory."""
    red = list(st.op.reduce_axis)
    fused = st.fuse(*red) if len(red) > 1 else red[0]
    outer, inner = st.split(fused, factor=threads)
    st.reorder(inner, outer)
    st.bind(inner, thread(tag))
    return inner, outer


def pow2_at_most(n: int, limit: int) -> int:
    """The largest power of two <= min(n, limit), at least 1."""
    p = 1
    while p * 2 <= min(n, limit):
        p *= 2
    return p

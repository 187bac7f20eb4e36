"""The generic CUDA schedules: elementwise and injective graphs, and plain reductions.

``schedule_injective`` is TVM's: every injective stage that is not an output is inlined
(one kernel reads the inputs and writes the output: a fused elementwise chain moves each
byte once), and each output is fused flat, split by ``num_threads`` and bound to
blockIdx.x / threadIdx.x, so consecutive threads touch consecutive elements.

``schedule_generic`` also handles the reductions such a graph may hold: a reduction over
many elements gets a block per output element and its threads reduce together; one over few
elements (or with many outputs) runs one output per thread.
"""

from __future__ import annotations

from te import ops
from te.tensor import ComputeOp

from ._common import bind_flat, block_reduce, pow2_at_most, thread

NUM_THREADS = 256  # a multiple of the warp size that fills an SM with a few blocks
# A reduction of at least this many elements per output uses a block per output.
BLOCK_REDUCE_MIN = 256


def schedule_injective(s, outs, num_threads: int = NUM_THREADS):
    """Inline the inner stages and bind each output flat (see the module docstring)."""
    outs = [outs] if not isinstance(outs, (list, tuple)) else list(outs)
    for st in s.stages:
        if isinstance(st.op, ComputeOp) and st.attach_type == "root" and not st.is_output \
                and ops.tags.is_injective(st.op.tag):
            st.compute_inline()
    for t in outs:
        st = s[t]
        if st.attach_type == "root" and not st.op.reduce_axis:
            bind_flat(st, num_threads)
    return s


def schedule_generic(s, outs, stages=None, num_threads: int = NUM_THREADS):
    """Schedule ``stages`` (default: all compute stages): injective ones inlined unless they
    are outputs; every stage left at the root bound to threads."""
    stages = [st for st in s.stages if isinstance(st.op, ComputeOp)] if stages is None \
        else list(stages)
    for st in stages:
        if st.attach_type == "root" and not st.is_output and ops.tags.is_injective(st.op.tag):
            st.compute_inline()
    for st in stages:
        if st.attach_type != "root":
            continue
        if st.op.reduce_axis:
            schedule_reduction(st, num_threads)
        else:
            bind_flat(st, num_threads)
    return s


def schedule_reduction(st, num_threads: int = NUM_THREADS):
    """A root reduction: a block per output element when each reduces many elements,
    else an output per thread with the reduction serial."""
    size = 1
    for iv in st.op.reduce_axis:
        ext = iv.dom.extent
        size *= int(ext.value) if hasattr(ext, "value") else BLOCK_REDUCE_MIN
    if size >= BLOCK_REDUCE_MIN or not st.op.axis:
        data = list(st.op.axis)
        if data:
            fused = st.fuse(*data) if len(data) > 1 else data[0]
            st.bind(fused, thread("blockIdx.x"))
        block_reduce(st, pow2_at_most(size, num_threads))
    else:
        bind_flat(st, num_threads)

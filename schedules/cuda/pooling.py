"""CUDA schedules of ``max_pool2d``, ``avg_pool2d`` and ``global_avg_pool2d``.

Window pools are elementwise over the output: each thread computes one output element,
reducing its window in registers (the padding stage inlined: out-of-range taps read the
fill value without a load).  Outputs are fused flat, consecutive threads on consecutive
output columns.  ``global_avg_pool2d`` reduces a whole plane per output: a block per
(n, c) whose threads reduce together.

Knob: ``threads`` per block (default 256).
"""

from __future__ import annotations

from te.tensor import ComputeOp

from ..registry import register_schedule
from ._common import (
    bind_flat,
    block_reduce,
    epilogue_output,
    extent,
    inline_injective,
    pow2_at_most,
    thread,
)

DEFAULT_THREADS = 256


@register_schedule("max_pool2d", "cuda")
@register_schedule("avg_pool2d", "cuda")
def schedule_pool(cfg, s, outs, anchor):
    """One output element per thread (see the module docstring)."""
    cfg.define_knob("threads", [32, 64, 128, 256, 512, 1024], default=DEFAULT_THREADS)
    out_stage = _output_stage(s, outs, anchor)
    _, tx = bind_flat(out_stage, cfg["threads"].val)
    for st in _root_reductions(s, out_stage):
        st.set_scope("local")
        st.compute_at(out_stage, tx)
        for ax in st.op.reduce_axis:
            if extent(ax) <= 4:
                st.unroll(ax)
    return s


@register_schedule("global_avg_pool2d", "cuda")
def schedule_global_pool(cfg, s, outs, anchor):
    """A block per output element; its threads reduce the plane together."""
    cfg.define_knob("threads", [32, 64, 128, 256, 512], default=DEFAULT_THREADS)
    out_stage = _output_stage(s, outs, anchor)
    fused = out_stage.fuse(*out_stage.op.axis)
    out_stage.bind(fused, thread("blockIdx.x"))
    for st in _root_reductions(s, out_stage):
        st.set_scope("local")
        st.compute_at(out_stage, fused)
        size = 1
        for ax in st.op.reduce_axis:
            size *= extent(ax)
        block_reduce(st, pow2_at_most(size, cfg["threads"].val))
    return s


def _output_stage(s, outs, anchor):
    """Inline the injective stages (padding, epilogue links) and the anchor itself when it
    is elementwise over a reduction (avg_pool's division) and an epilogue follows."""
    out = epilogue_output(s, outs, anchor)
    inline_injective(s)
    if out is None:
        return s[anchor]
    if not anchor.reduce_axis:
        s[anchor].compute_inline()
    return s[out]


def _root_reductions(s, out_stage):
    return [st for st in s.stages if isinstance(st.op, ComputeOp) and st.op.reduce_axis
            and st.attach_type == "root" and st is not out_stage]

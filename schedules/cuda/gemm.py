"""CUDA schedules of ``matmul``, ``dense`` and ``batch_matmul``: shared-memory tiles and a
register tile per thread (the classic SGEMM of TVM's GPU tutorials and topi).

A block computes a ``(ty * ry) x (tx * rx)`` tile of the output with ``ty x tx`` threads,
each an ``ry x rx`` tile held in registers.  The reduction runs in chunks of ``tile_k``: all
threads of the block load the A rows and B columns of a chunk into shared memory together
(consecutive threads, consecutive addresses), wait, and every thread then accumulates its
tile from shared memory, each k step reading ``ry`` values of A and ``rx`` of B into
registers for ``ry * rx`` FMAs.  Batch axes are blockIdx.z.  An epilogue (bias, activation)
is applied as the register tile is written out.

Knobs (defaults: a 64x64 block tile, 16x16 threads, 4x4 registers each, k chunks of 16):

``tile_y``  rows: ``[blocks, threads, registers]``
``tile_x``  columns: ``[blocks, threads, registers]``
``tile_k``  the reduction: ``[chunks, chunk]`` (each chunk is one shared-memory load)
``unroll_k`` unroll the steps of a chunk (no loop counter; default on)
``double_buffer`` load the next chunk into a second pair of shared tiles while computing on
            this one (one barrier per chunk instead of two; default off)
"""

from __future__ import annotations

from te import expr as E

from ..registry import register_schedule
from ._common import (
    MAX_THREADS,
    cooperative_fetch,
    epilogue_output,
    extent,
    inline_injective,
    thread,
)

DEFAULT_Y, DEFAULT_X, DEFAULT_K = [-1, 16, 4], [-1, 16, 4], [-1, 16]
MAX_REGS = 8  # per axis: an 8x8 tile plus its operands is ~100 registers


def _uses(load, iv) -> bool:
    return any(v.uid == iv.var.uid for idx in load.indices for v in E.free_vars(idx))


def operands(anchor):
    """The tensors the product reads: ``(a, b)``, a indexed by the row, b by the column."""
    i_ax, j_ax = anchor.axis[-2:]
    loads = [n for n in E.walk(anchor.body[0].source[0]) if isinstance(n, E.TensorLoad)]
    a = next(ld.tensor for ld in loads if _uses(ld, i_ax) and not _uses(ld, j_ax))
    b = next(ld.tensor for ld in loads if _uses(ld, j_ax) and not _uses(ld, i_ax))
    return a, b


@register_schedule("matmul", "cuda")
@register_schedule("dense", "cuda")
@register_schedule("batch_matmul", "cuda")
def schedule_gemm(cfg, s, outs, anchor):
    """The tiled GEMM above, for any anchor ``C[*b, i, j] = sum_k a[.., i, k] * b[.., k, j]``
    (operands in any layout)."""
    *batch_axes, i_ax, j_ax = anchor.axis
    (k_ax,) = anchor.reduce_axis
    m, n, kk = extent(i_ax), extent(j_ax), extent(k_ax)
    cfg.define_split("tile_y", m, num_outputs=3, policy="verbose", max_factor=MAX_THREADS,
                     default=DEFAULT_Y)
    cfg.define_split("tile_x", n, num_outputs=3, policy="verbose", max_factor=MAX_THREADS,
                     default=DEFAULT_X)
    cfg.define_split("tile_k", kk, num_outputs=2, policy="verbose", max_factor=64,
                     default=DEFAULT_K)
    cfg.define_knob("unroll_k", [True, False], default=True)
    cfg.define_knob("double_buffer", [False, True], default=False)
    cfg.add_flop(2 * m * n * kk * _prod(extent(b) for b in batch_axes))
    ty_n = cfg["tile_y"].size[1]
    tx_n = cfg["tile_x"].size[1]

    out = epilogue_output(s, outs, anchor)
    inline_injective(s)
    if out is None:
        acc = s[s.cache_write(anchor.output(0), "local")]
        out_stage = s[anchor]
    else:
        acc = s[anchor]
        acc.set_scope("local")
        out_stage = s[out]
    a, b = operands(acc.op)
    shared = [s.cache_read(t, "shared", [acc.op]) for t in (a, b)]
    local = [s.cache_read(t, "local", [acc.op]) for t in shared]

    *ob, oi, oj = out_stage.op.axis
    by, ty, yi = cfg["tile_y"].apply(s, out_stage, oi)
    bx, tx, xi = cfg["tile_x"].apply(s, out_stage, oj)
    out_stage.reorder(*ob, by, bx, ty, tx, yi, xi)
    if ob:
        out_stage.bind(out_stage.fuse(*ob) if len(ob) > 1 else ob[0], thread("blockIdx.z"))
    for ax, tag in ((by, "blockIdx.y"), (bx, "blockIdx.x"), (ty, "threadIdx.y"),
                    (tx, "threadIdx.x")):
        out_stage.bind(ax, thread(tag))
    out_stage.unroll(yi)
    out_stage.unroll(xi)

    acc.compute_at(out_stage, tx)
    *ab, ai, aj = acc.op.axis
    ko, ki = cfg["tile_k"].apply(s, acc, acc.op.reduce_axis[0])
    acc.reorder(*ab, ko, ki, ai, aj)
    acc.unroll(ai)
    acc.unroll(aj)
    if cfg["unroll_k"].val:
        acc.unroll(ki)
    for t in shared:
        s[t].compute_at(acc, ko)
        cooperative_fetch(s[t], ty_n, tx_n)
        if cfg["double_buffer"].val:
            s[t].double_buffer()
    for t in local:
        s[t].compute_at(acc, ki)
        for ax in s[t].op.axis:
            s[t].unroll(ax)
    return s


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out

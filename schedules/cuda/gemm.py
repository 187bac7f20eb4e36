"""CUDA schedules of ``matmul``, ``dense`` and ``batch_matmul``: shared-memory tiles and a
register tile per thread (the classic SGEMM of TVM's GPU tutorials and topi).

A block computes a ``(ty * ry) x (tx * rx)`` tile of the output with ``ty x tx`` threads,
each an ``ry x rx`` tile held in registers.  The reduction runs in chunks of ``tile_k``: all
threads of the block load the A rows and B columns of a chunk into shared memory together
(consecutive threads, consecutive addresses), wait, and every thread then accumulates its
tile from shared memory, each k step reading ``ry`` values of A and ``rx`` of B into
registers for ``ry * rx`` FMAs.  Batch axes are blockIdx.z.  An epilogue (bias, activation)
is applied as the register tile is written out.  ``tile_product`` is this structure for any
product with a local accumulator; conv2d's implicit GEMM uses it too.

Knobs (defaults: a 64x64 block tile, 16x16 threads, 4x4 registers each, k chunks of 16):

``tile_y``  rows: ``[blocks, threads, registers]``
``tile_x``  columns: ``[blocks, threads, registers]``
``tile_k``  the reduction: ``[chunks, chunk]`` (each chunk is one shared-memory load)
``unroll_k`` unroll the steps of a chunk (no loop counter; default on)
``double_buffer`` load the next chunk into a second pair of shared tiles while computing on
            this one (one barrier per chunk instead of two; default off)
"""

from __future__ import annotations

import math

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
KNOBS = ("tile_y", "tile_x", "tile_k")  # the splits of rows, columns and the reduction


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
    define_knobs(cfg, m, n, kk, KNOBS)
    cfg.add_flop(2 * m * n * kk * math.prod(extent(b) for b in batch_axes))

    out = epilogue_output(s, outs, anchor)
    inline_injective(s)
    if out is None:
        acc = s[s.cache_write(anchor.output(0), "local")]
        out_stage = s[anchor]
    else:
        acc = s[anchor]
        acc.set_scope("local")
        out_stage = s[out]
    shared = [s.cache_read(t, "shared", [acc.op]) for t in operands(acc.op)]
    *ob, oi, oj = out_stage.op.axis
    tile_product(cfg, s, out_stage, oi, oj, acc, shared, KNOBS, batch=ob)
    return s


def define_knobs(cfg, rows: int, cols: int, depth: int, names=KNOBS):
    """The knobs of ``tile_product`` (the module docstring), the three splits named ``names``:
    a product of ``rows x cols`` outputs reducing over ``depth``."""
    tile_y, tile_x, tile_k = names
    cfg.define_split(tile_y, rows, num_outputs=3, policy="verbose", max_factor=MAX_THREADS,
                     default=DEFAULT_Y)
    cfg.define_split(tile_x, cols, num_outputs=3, policy="verbose", max_factor=MAX_THREADS,
                     default=DEFAULT_X)
    cfg.define_split(tile_k, depth, num_outputs=2, policy="verbose", max_factor=64,
                     default=DEFAULT_K)
    cfg.define_knob("unroll_k", [True, False], default=True)
    cfg.define_knob("double_buffer", [False, True], default=False)


def tile_product(cfg, s, out_stage, rows, cols, acc, shared, names=KNOBS, batch=()):
    """The block, thread and register tiles of a product (the module docstring).

    ``out_stage`` writes the result: its axes ``rows`` and ``cols`` are tiled (``batch`` axes go
    to blockIdx.z).  ``acc`` is the local accumulator it reads, two data axes (after any
    batch axes) indexed like ``rows`` and ``cols``; its reduction axes are fused into one,
    split in chunks; ``shared`` are the shared copies of its operands, loaded per chunk."""
    tile_y, tile_x, tile_k = (cfg[n] for n in names)
    ty_n, tx_n = tile_y.size[1], tile_x.size[1]
    local = [s.cache_read(t, "local", [acc.op]) for t in shared]

    by, ty, yi = tile_y.apply(s, out_stage, rows)
    bx, tx, xi = tile_x.apply(s, out_stage, cols)
    out_stage.reorder(*batch, by, bx, ty, tx, yi, xi)
    if batch:
        out_stage.bind(out_stage.fuse(*batch) if len(batch) > 1 else batch[0],
                       thread("blockIdx.z"))
    for ax, tag in ((by, "blockIdx.y"), (bx, "blockIdx.x"), (ty, "threadIdx.y"),
                    (tx, "threadIdx.x")):
        out_stage.bind(ax, thread(tag))
    out_stage.unroll(yi)
    out_stage.unroll(xi)

    acc.compute_at(out_stage, tx)
    *ab, ai, aj = acc.op.axis
    red = list(acc.op.reduce_axis)
    ko, ki = tile_k.apply(s, acc, acc.fuse(*red) if len(red) > 1 else red[0])
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

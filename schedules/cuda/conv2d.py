"""CUDA schedules of NCHW convolutions: ``conv2d`` (direct or implicit GEMM; grouped: direct),
``depthwise``.

**Direct conv2d** (the structure of TVM's conv2d_direct): a block computes a tile of
``f x y x x`` outputs (channels x rows x columns) with ``tf x ty x tx`` threads on
threadIdx.z/y/x, each thread an ``fi x yi x xi`` tile in registers.  The reduction over input
channels runs in chunks (``tile_rc``; the kernel window ``tile_ry``/``tile_rx`` likewise):
for each chunk all threads load the input patch (with its halo; the zero padding is computed
in the load, never stored) and the weights into shared memory, wait, and accumulate.
Batch and output-channel blocks share blockIdx.z.

**Implicit GEMM** (``algorithm="implicit_gemm"``): the convolution as the product
``C[N, M] = W[N, K] x X[K, M]`` with M = batch*out_h*out_w output positions, N = output
channels and K = in_channels*kh*kw, scheduled exactly as gemm.py's ``tile_product`` (block
tiles, a register tile per thread, K in chunks through two shared tiles, barriers, unrolled
register loops).  X is the im2col matrix of the input: never stored, its shared tile is
loaded straight from the input (the zero padding computed in the load).

Why reindexing: tiling a fused axis (n, y, x) of the 4-D output cannot give tight regions -
4 consecutive positions may wrap to the next row, so bound inference through ``% out_w``
relaxes to the whole axis, and an accumulator or input tile sized by its bounding box would
cover whole rows or images.  So the schedule gives the stages GEMM shapes instead:
``cache_write(reindex=[[f], [n, y, x]])`` makes the accumulator [N, M] (the output stage reads
``acc[f, (n*out_h + y)*out_w + x]``, which simplifies back to its fused position; an
epilogue's broadcast reads ``n`` as 0 at batch 1, and bound inference knows the fused
position's size-1 outer part is 0 there too), and
``cache_read(reindex=...)`` makes the shared copies of the weight [N, K] and of the input
[K, M] (im2col), indexed by the accumulator's own fused axes, so every tile is a box.  The
input tile's loads are coalesced along M (consecutive output columns), the weight's along K.

Knobs: ``algorithm`` (declared first; ``direct`` by default; grouped convolutions have only
``direct``, their input channel depends on the output channel, which no im2col matrix of the
input alone expresses).  Direct: ``tile_f``, ``tile_y``, ``tile_x`` (``[blocks, threads,
registers]``), ``tile_rc``, ``tile_ry``, ``tile_rx`` (``[chunks, chunk]``).  Implicit GEMM
(declared always, read only by it): ``tile_n`` (channels) and ``tile_m`` (positions, on
threadIdx.x: the output writes coalesce), ``[blocks, threads, registers]``; ``tile_k``
(``[chunks, chunk]``); ``unroll_k``, ``double_buffer`` (as in gemm.py).  Depthwise:
``threads``.

**Depthwise** (each output channel reads one input channel): an output element per thread,
its window reduced in registers and unrolled; the input rows a warp reads overlap, which the
L1 cache serves.
"""

from __future__ import annotations

import math

from te import expr as E

from ..registry import register_schedule
from ._common import MAX_THREADS, bind_flat, epilogue_output, extent, inline_injective, thread
from .gemm import define_knobs, tile_product


@register_schedule("conv2d_nchw", "cuda")
@register_schedule("group_conv2d_nchw", "cuda")
def schedule_conv2d(cfg, s, outs, anchor):
    """The direct convolution or the implicit GEMM, as the knob ``algorithm`` says."""
    grouped = anchor.attrs["groups"] > 1
    cfg.define_knob("algorithm", ["direct"] if grouped else ["direct", "implicit_gemm"],
                    default="direct")
    n_ax, f_ax, y_ax, x_ax = anchor.axis
    reduce_axes = list(anchor.reduce_axis)
    rc = reduce_axes[0] if len(reduce_axes) == 3 else None
    ry, rx = reduce_axes[-2:]
    f, h, w = extent(f_ax), extent(y_ax), extent(x_ax)
    cfg.define_split("tile_f", f, num_outputs=3, policy="verbose", max_factor=64,
                     default=[-1, 8, 2])
    cfg.define_split("tile_y", h, num_outputs=3, policy="verbose", max_factor=32,
                     default=[-1, 4, 2])
    cfg.define_split("tile_x", w, num_outputs=3, policy="verbose", max_factor=32,
                     default=[-1, 8, 2])
    cfg.define_split("tile_rc", extent(rc) if rc is not None else 1, num_outputs=2,
                     policy="verbose", max_factor=64, default=[-1, 8])
    cfg.define_split("tile_ry", extent(ry), num_outputs=2, policy="verbose",
                     default=[-1, extent(ry)])
    cfg.define_split("tile_rx", extent(rx), num_outputs=2, policy="verbose",
                     default=[-1, extent(rx)])
    depth = math.prod(extent(r) for r in reduce_axes)
    if not grouped:
        define_knobs(cfg, f, extent(n_ax) * h * w, depth, IMPLICIT_GEMM_KNOBS)
    cfg.add_flop(2 * extent(n_ax) * f * h * w * depth)
    if cfg["algorithm"].val == "implicit_gemm":
        return _implicit_gemm(cfg, s, outs, anchor)
    return _direct(cfg, s, outs, anchor)


IMPLICIT_GEMM_KNOBS = ("tile_n", "tile_m", "tile_k")  # channels, positions, reduction


def _implicit_gemm(cfg, s, outs, anchor):
    """The implicit GEMM: the accumulator and both operand tiles reindexed by the GEMM's
    (channel, position, reduction) iterations, then gemm.py's tiling."""
    data, weight = _data_and_weight(anchor)
    out = epilogue_output(s, outs, anchor)
    inline_injective(s)
    n_ax, f_ax, y_ax, x_ax = anchor.axis
    acc = s[s.cache_write(anchor.output(0), "local", reindex=[[f_ax], [n_ax, y_ax, x_ax]])]
    if out is None:
        out_stage = s[anchor]
    else:
        s[anchor].compute_inline()  # only copies the accumulator out: the epilogue reads it
        out_stage = s[out]
    fm, mm = acc.op.axis
    k_axes = [r.name for r in acc.op.reduce_axis]
    shared = [s.cache_read(weight, "shared", [acc.op], reindex=[[fm], k_axes]),
              s.cache_read(data, "shared", [acc.op], reindex=[k_axes, [mm]])]
    on, of, oy, ox = out_stage.op.axis
    out_stage.reorder(of, on, oy, ox)
    tile_product(cfg, s, out_stage, of, out_stage.fuse(on, oy, ox), acc, shared,
                 IMPLICIT_GEMM_KNOBS)
    return s


def _direct(cfg, s, outs, anchor):
    """The shared-memory direct convolution (the module docstring)."""
    tf_n, ty_n, tx_n = (cfg[k].size[1] for k in ("tile_f", "tile_y", "tile_x"))

    out = epilogue_output(s, outs, anchor)
    inline_injective(s)
    if out is None:
        acc = s[s.cache_write(anchor.output(0), "local")]
        out_stage = s[anchor]
    else:
        acc = s[anchor]
        acc.set_scope("local")
        out_stage = s[out]
    shared = [s.cache_read(t, "shared", [acc.op]) for t in _data_and_weight(acc.op)]

    on, of, oy, ox = out_stage.op.axis
    bf, tf, fi = cfg["tile_f"].apply(s, out_stage, of)
    by, ty, yi = cfg["tile_y"].apply(s, out_stage, oy)
    bx, tx, xi = cfg["tile_x"].apply(s, out_stage, ox)
    out_stage.reorder(on, bf, by, bx, tf, ty, tx, fi, yi, xi)
    for ax, tag in ((out_stage.fuse(on, bf), "blockIdx.z"), (by, "blockIdx.y"),
                    (bx, "blockIdx.x"), (tf, "threadIdx.z"), (ty, "threadIdx.y"),
                    (tx, "threadIdx.x")):
        out_stage.bind(ax, thread(tag))
    for ax in (fi, yi, xi):
        out_stage.unroll(ax)

    acc.compute_at(out_stage, tx)
    an, af, ay, ax_ = acc.op.axis
    red = list(acc.op.reduce_axis)
    outer, inner = [], []
    for r, knob in zip(red, ["tile_rc", "tile_ry", "tile_rx"][-len(red):]):  # rc: if C > 1
        o, i = cfg[knob].apply(s, acc, r)
        outer.append(o)
        inner.append(i)
    acc.reorder(*outer, *inner, an, af, ay, ax_)
    for ax in (af, ay, ax_):
        acc.unroll(ax)
    for t in shared:
        s[t].compute_at(acc, outer[-1])
        _fetch_3d(s[t], tf_n, ty_n, tx_n)
    return s


def _data_and_weight(op):
    """The (possibly padded) input, the only operand indexed by the batch axis, and the
    weight."""
    batch = op.axis[0].var.uid
    loads = [n for n in E.walk(op.body[0].source[0]) if isinstance(n, E.TensorLoad)]
    data = next(ld.tensor for ld in loads
                if any(v.uid == batch for i in ld.indices for v in E.free_vars(i)))
    weight = next(ld.tensor for ld in loads if ld.tensor != data)
    return data, weight


def _fetch_3d(st, tz: int, ty: int, tx: int):
    """The cooperative load of a shared tile by a (tz, ty, tx) block."""
    fused = st.fuse(*st.op.axis)
    _, rest = st.split(fused, factor=tz * ty * tx)
    z, rest = st.split(rest, nparts=tz)
    y, x = st.split(rest, nparts=ty)
    for ax, tag in ((z, "threadIdx.z"), (y, "threadIdx.y"), (x, "threadIdx.x")):
        st.bind(ax, thread(tag))


@register_schedule("depthwise_conv2d_nchw", "cuda")
def schedule_depthwise(cfg, s, outs, anchor):
    """An output element per thread, the window unrolled in registers."""
    cfg.define_knob("threads", [32, 64, 128, 256, 512, MAX_THREADS], default=256)
    out = epilogue_output(s, outs, anchor)
    inline_injective(s)
    if out is None:
        acc = s[s.cache_write(anchor.output(0), "local")]
        out_stage = s[anchor]
    else:
        acc = s[anchor]
        acc.set_scope("local")
        out_stage = s[out]
    _, tx = bind_flat(out_stage, cfg["threads"].val)
    acc.compute_at(out_stage, tx)
    for r in acc.op.reduce_axis:
        if extent(r) <= 7:
            acc.unroll(r)
    return s

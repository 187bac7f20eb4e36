"""CPU schedules of ``conv2d``: NCHW (plain, grouped, depthwise) and NCHW{c}c.

Every variant computes a small block of the output in a ``"local"`` register tile that
accumulates over the whole reduction (channels x kernel window) and is then written out with
the epilogue applied (bias, relu, residual add: one kernel, the output written once). The
tile has an unrolled axis and a vectorized one (shared/research/numba_codegen.md, section 3:
7 output columns x 32 output channels, 14 zmm accumulators, matched onnxruntime):

``conv2d_nchw`` / ``group_conv2d_nchw``
    tile = ``tile_ow`` columns (unrolled) x ``tile_oc`` channels (vectorized). The weights
    are packed to ``[O/tile_oc, C/groups, KH, KW, tile_oc]`` so the channel lanes of one tap
    are contiguous (in a network, once: the packing is a constant prologue, see
    ``schedules.prologue``; a kernel built alone packs on every call); each input value is
    a broadcast scalar (the input stays NCHW).
    A 1x1 stride-1 conv over wide rows also has ``lanes="ow"``: ``tile_oc`` channels
    (unrolled) x ``tile_ow`` columns (vectorized), like the depthwise tile plus a channel
    sum: input rows are contiguous vectors, each weight a broadcast scalar, and neither the
    weight packing nor the tile transpose is needed. Few input channels leave too little
    work per tile to pay for those two, so wide rows over few channels default to it
    (numbers at ``ROW_LANES_DEFAULT_OW``); rows narrower than a vector have no such choice.
``depthwise_conv2d_nchw``
    there is no channel sum to vectorize: tile = ``tile_oc`` channels (unrolled) x
    ``tile_ow`` columns (vectorized, contiguous input rows at stride 1).
``conv2d_nchwc`` / ``group_conv2d_nchwc``
    the layouts already block the channels: tile = ``tile_ow`` columns (unrolled) x the
    whole output channel block (vectorized); the weights need no packing.

The output loops are (batch, row blocks of ``tile_oh`` rows, rows, channel blocks, column
tiles) with ``order="rows_outer"`` (a padded input window serves every channel block: small
weights) or (batch, channel blocks, row blocks, ...) with ``"channels_outer"`` (a block of
weights stays in cache over all rows: large weights); the loops down to the row block are
fused and run in parallel.

Other knobs: ``reduce_order`` (input channels outside or inside the kernel window),
``unroll_kw`` (unroll the kernel's width taps) and, with padding, ``pad``: ``"row"`` computes
the padded input window of each parallel row block, ``"tile"`` of each tile, ``"root"`` makes
a full padded copy first and ``"inline"`` reads the input through a bounds check.
"""

from __future__ import annotations

from te import expr as E
from te.tensor import ComputeOp

from .. import library  # noqa: F401 - registers the tuning templates of these anchors
from ..auto import schedule_generic
from ..registry import register_schedule
from ._fusion import compute_stages, constant_shape, epilogue_output, extent, inline_injective

OC_TILE, OW_TILE = 32, 7  # numba_codegen.md's best NCHWc tile: 7 columns x 32 channels
DW_OW_TILE, DW_OC_TILE = 32, 4  # depthwise: 4 channels x up to 32 columns
ROW_OC_TILE, ROW_OW_TILE = 8, 32  # lanes="ow": 8 channels x up to 32 columns
ROW_LANES_MIN_OW = 16  # narrower rows do not fill a vector: no lanes="ow" choice
# lanes="ow" is the default for rows at least this wide over at most this many input
# channels (MobileNetV2's 1x1 convs, 2 threads, against the shipped log's lanes="oc"
# configs: 16 and 32 channels at 112 columns 1.32x and 1.21x faster, 24 at 56 1.13x; 96
# and 144 channels at 56 columns 0.93x and 0.86x, any at 28 columns 0.63-0.89x)
ROW_LANES_DEFAULT_OW = 56
ROW_LANES_DEFAULT_C = 32
MAX_ROWS = 8  # rows of a parallel row block
ROWS_OUTER_WEIGHTS = 512 * 1024  # bytes of weights up to which every row reads them all
PARALLEL_BLOCKS = 8  # parallel iterations wanted at least, when the row blocks are split


def _loads(anchor):
    """(data load, weight load) of the anchor's product."""
    body = anchor.body[0]
    loads = [n for n in E.walk(body.source[0]) if isinstance(n, E.TensorLoad)]
    return loads[0], loads[1]


def _divisor_near(n: int, lo: int, hi: int, fallback: int) -> int:
    """The largest divisor of ``n`` in [lo, hi]; ``fallback`` when there is none."""
    found = [d for d in range(lo, hi + 1) if n % d == 0]
    return max(found) if found else fallback


def _padded(anchor) -> bool:
    return any(anchor.attrs.get("padding", (0, 0, 0, 0)))


def _weight_bytes(anchor) -> int:
    _, weight = _loads(anchor)
    count = 1
    for d in weight.tensor.shape:
        count *= int(d.value)
    return 4 * count


# -- knobs ------------------------------------------------------------------------------------


def _row_lanes_possible(anchor, ow: int) -> bool:
    """Whether the ``lanes="ow"`` tile applies: a 1x1, stride-1, ungrouped conv (input rows
    are then contiguous along the output columns) over rows that fill a vector."""
    _, weight = _loads(anchor)
    kh, kw = (int(d.value) for d in weight.tensor.shape[2:])
    return ((kh, kw) == (1, 1) and tuple(anchor.attrs.get("stride", (1, 1))) == (1, 1)
            and anchor.attrs.get("groups", 1) == 1 and ow >= ROW_LANES_MIN_OW)


def _row_lanes_default(anchor, ow: int) -> bool:
    """Whether ``lanes="ow"`` is the default: wide rows and few input channels."""
    _, weight = _loads(anchor)
    channels = int(weight.tensor.shape[1].value)
    return (_row_lanes_possible(anchor, ow) and ow >= ROW_LANES_DEFAULT_OW
            and channels <= ROW_LANES_DEFAULT_C)


def _declare_lanes(cfg, anchor, ow: int) -> str:
    """``tile_oc``, ``tile_ow`` and, where both tiles apply, ``lanes``: the output axis the
    register tile vectorizes ("oc": channels, "ow": columns). Returns the lanes."""
    if not _row_lanes_possible(anchor, ow):
        cfg.define_split("tile_ow", ow, num_outputs=2, policy="verbose", max_factor=16,
                         default=[-1, _divisor_near(ow, 4, 8, OW_TILE)])
        return "oc"
    rows = _row_lanes_default(anchor, ow)
    cfg.define_knob("lanes", ["oc", "ow"], default="ow" if rows else "oc", legacy="oc")
    # one candidate list serves both tiles; its default is the default lanes' tile
    width = _divisor_near(ow, 16, ROW_OW_TILE, 16) if rows else _divisor_near(ow, 4, 8, OW_TILE)
    cfg.define_split("tile_ow", ow, num_outputs=2, policy="verbose", max_factor=ROW_OW_TILE,
                     default=[-1, width])
    return cfg["lanes"].val


def _declare_rows(cfg, anchor, y_ax, order_knob: bool):
    """``tile_oh`` and ``order`` (when the variant has a choice); returns the order."""
    n, oh = extent(anchor.axis[0]), extent(y_ax)
    small = _weight_bytes(anchor) <= ROWS_OUTER_WEIGHTS
    rows_outer = order_knob and small
    if rows_outer:  # the row blocks are all the parallelism there is: keep enough of them
        fit = [d for d in range(1, MAX_ROWS + 1) if oh % d == 0 and n * oh // d >= PARALLEL_BLOCKS]
        rows = max(fit) if fit else 1
    else:
        rows = _divisor_near(oh, 1, MAX_ROWS, 1)
    cfg.define_split("tile_oh", oh, num_outputs=2, policy="factors", max_factor=16,
                     default=[-1, rows])
    if order_knob:
        cfg.define_knob("order", ["rows_outer", "channels_outer"],
                        default="rows_outer" if small else "channels_outer")
        return cfg["order"].val
    return "channels_outer"


def _declare_common(cfg, anchor, order: str, channel_sum: bool):
    kw = extent(anchor.reduce_axis[-1])
    cfg.define_knob("unroll_kw", [False, True] if kw > 1 else [False], default=False)
    if channel_sum:
        cfg.define_knob("reduce_order", ["channels_outer", "channels_inner"],
                        default="channels_outer")
    if _padded(anchor):
        # With channel blocks outside, a row window would be padded again for every block;
        # a depthwise window of a tiny image costs more to copy than its bounds checks
        # (1024 x 7 x 7, 1 thread: inline 27 us, row windows 51 us).
        if channel_sum:
            default = "row" if order == "rows_outer" else "root"
        else:
            small = extent(anchor.axis[2]) * extent(anchor.axis[3]) <= 64
            default = "inline" if small else "row"
        cfg.define_knob("pad", ["row", "tile", "root", "inline"], default=default)


# -- stages -----------------------------------------------------------------------------------


def _tile_stages(s, outs, anchor):
    """(accumulator stage, output stage): the anchor computed into a local tile of the
    epilogue's output, or into a ``cache_write`` of itself when it is the output."""
    out = epilogue_output(s, outs, anchor)
    if out is None:
        acc = s[s.cache_write(anchor.output(0), "local")]
        return acc, s[anchor]
    acc = s[anchor]
    acc.set_scope("local")
    return acc, s[out]


def _output_loops(cfg, s, out, on, channels, oy, xo, tile, order: str):
    """Order the output's loops, fuse and parallelize the outer ones; returns the parallel
    loop (where a row window is computed)."""
    yo, yi = cfg["tile_oh"].apply(s, out, oy)
    if order == "rows_outer":
        out.reorder(on, yo, yi, channels, xo, *tile)
        par = out.fuse(on, yo)
    else:
        out.reorder(on, channels, yo, yi, xo, *tile)
        par = out.fuse(on, channels, yo)
    out.parallel(par)
    return par


def _place_pad(cfg, s, anchor, data_load, out, row, tile):
    """Where the padded input is computed (the ``pad`` knob)."""
    if not _padded(anchor):
        return
    st = s[data_load.tensor]
    if not isinstance(st.op, ComputeOp) or st.is_output:
        return
    where = cfg["pad"].val
    if where in ("row", "tile"):
        st.compute_at(out, row if where == "row" else tile)
    elif where == "root":
        axes = st.op.axis
        st.parallel(st.fuse(axes[0], axes[1]))
        st.vectorize(axes[-1])
    else:
        st.compute_inline()


def _reduce_loops(cfg, channels, window, lanes=None):
    """The reduction loops of the accumulator: the channel blocks outside or inside the
    kernel window (the ``reduce_order`` knob); NCHWc's channel lanes stay innermost."""
    inner = cfg["reduce_order"].val == "channels_inner"
    order = list(window) + list(channels) if inner else list(channels) + list(window)
    return order + ([lanes] if lanes is not None else [])


def _transpose_tile(s, acc, out, at):
    """Copy the tile (lanes: output channels) out through a small ``[columns, channels]``
    buffer. Storing it straight into NCHW rows would give LLVM's SLP vectorizer chains of
    contiguous stores along the columns; it then packs the accumulators along the columns
    too, against the FMAs' channel lanes, and shuffles every tile value on every reduction
    step (7-column tiles ran 20x slower)."""
    acc_ops = (acc.op, acc.origin_op)
    readers = [st for st in compute_stages(s) if st is not acc and any(
        t.op in acc_ops for t in st.op.input_tensors)]
    tensor = next(t for t in readers[0].op.input_tensors if t.op in acc_ops)
    buf = s[s.cache_read(tensor, "global", readers, layout=("NCHW", "NHWC"))]
    buf.compute_at(out, at)
    _, _, bx, boc = buf.op.axis
    buf.unroll(bx)
    buf.vectorize(boc)


def _pack_weights(s, weight, acc, toc: int):
    """Weights ``[O, C, KH, KW]`` -> ``[O/t, C, KH, KW, t]``, one block per parallel task.
    The source is read along (C, KH, KW) in runs of 8 channels: contiguous reads, and the
    writes stay inside an 8 x KH x KW x t block."""
    st = s[s.cache_read(weight, "global", [acc], layout=("ABCD", f"ABCD{toc}a"))]
    ob, c, ky, kx, lanes = st.op.axis
    co, ci = st.split(c, factor=8)
    st.reorder(ob, co, lanes, ci, ky, kx)
    st.parallel(ob)


# -- schedules ---------------------------------------------------------------------------------


@register_schedule("conv2d_nchw", "cpu")
@register_schedule("group_conv2d_nchw", "cpu")
def schedule_conv2d_nchw(cfg, s, outs, anchor):
    """NCHW conv with packed weights and a ``tile_ow x tile_oc`` register tile."""
    if not constant_shape(anchor):
        return schedule_generic(s, outs, "cpu")
    _, oc_ax, y_ax, x_ax = anchor.axis
    oc, ow = extent(oc_ax), extent(x_ax)
    groups = anchor.attrs.get("groups", 1)
    row_default = _row_lanes_default(anchor, ow)
    if groups == 1:  # any split works (the packed weights are zero-padded)
        cfg.define_split("tile_oc", oc, num_outputs=2, policy="verbose", max_factor=64,
                         default=[-1, ROW_OC_TILE if row_default else OC_TILE])
    else:  # a tile inside one group reads one run of input channels
        cfg.define_split("tile_oc", oc // groups, num_outputs=2, policy="factors",
                         max_factor=64, default=[-1, OC_TILE])
    lanes = _declare_lanes(cfg, anchor, ow)
    order = _declare_rows(cfg, anchor, y_ax, order_knob=True)
    _declare_common(cfg, anchor, order, channel_sum=True)
    if lanes == "ow":
        return _schedule_row_tile(cfg, s, outs, anchor, order)
    toc = cfg["tile_oc"].size[-1]

    data_load, weight_load = _loads(anchor)
    acc, out = _tile_stages(s, outs, anchor)
    inline_injective(s, outs, keep=[s[data_load.tensor]] if _padded(anchor) else ())
    if toc > 1:
        _pack_weights(s, weight_load.tensor, acc, toc)

    on, ooc, oy, ox = out.op.axis
    oco, oci = cfg["tile_oc"].apply(s, out, ooc)
    xo, xi = cfg["tile_ow"].apply(s, out, ox)
    par = _output_loops(cfg, s, out, on, oco, oy, xo, [oci, xi], order)
    acc.compute_at(out, xo)
    _transpose_tile(s, acc, out, xo)
    out.vectorize(xi)
    _place_pad(cfg, s, anchor, data_load, out, row=par, tile=xo)

    _, aoc, _, ax = acc.op.axis
    *channels, ry, rx = acc.op.reduce_axis
    acc.reorder(*_reduce_loops(cfg, channels, [ry, rx]), ax, aoc)
    if cfg["unroll_kw"].val:
        acc.unroll(rx)
    acc.unroll(ax)
    acc.vectorize(aoc)
    return s


def _schedule_row_tile(cfg, s, outs, anchor, order: str):
    """A ``tile_oc x tile_ow`` register tile vectorized along the output row: channels
    unrolled, columns vectorized, weights read in place (a broadcast scalar per channel and
    tap). Depthwise convs use it, and 1x1 convs with ``lanes="ow"`` (their channel sum, if
    any, goes outside the window)."""
    data_load, _ = _loads(anchor)
    acc, out = _tile_stages(s, outs, anchor)
    inline_injective(s, outs, keep=[s[data_load.tensor]] if _padded(anchor) else ())

    on, ooc, oy, ox = out.op.axis
    oco, oci = cfg["tile_oc"].apply(s, out, ooc)
    xo, xi = cfg["tile_ow"].apply(s, out, ox)
    par = _output_loops(cfg, s, out, on, oco, oy, xo, [oci, xi], order)
    acc.compute_at(out, xo)
    _place_pad(cfg, s, anchor, data_load, out, row=par, tile=xo)
    out.unroll(oci)
    out.vectorize(xi)

    _, aoc, _, ax = acc.op.axis
    *channels, ry, rx = acc.op.reduce_axis
    reduce_loops = _reduce_loops(cfg, channels, [ry, rx]) if channels else [ry, rx]
    acc.reorder(*reduce_loops, aoc, ax)
    if cfg["unroll_kw"].val:
        acc.unroll(rx)
    acc.unroll(aoc)
    acc.vectorize(ax)
    return s


@register_schedule("depthwise_conv2d_nchw", "cpu")
def schedule_depthwise_nchw(cfg, s, outs, anchor):
    """Depthwise conv: a ``tile_oc x tile_ow`` tile vectorized along the output row."""
    if not constant_shape(anchor):
        return schedule_generic(s, outs, "cpu")
    _, oc_ax, y_ax, x_ax = anchor.axis
    oc, ow = extent(oc_ax), extent(x_ax)
    cfg.define_split("tile_oc", oc, num_outputs=2, policy="verbose", max_factor=8,
                     default=[-1, DW_OC_TILE])
    cfg.define_split("tile_ow", ow, num_outputs=2, policy="verbose", max_factor=64,
                     default=[-1, _divisor_near(ow, 8, DW_OW_TILE, DW_OW_TILE)])
    order = _declare_rows(cfg, anchor, y_ax, order_knob=False)
    _declare_common(cfg, anchor, order, channel_sum=False)
    return _schedule_row_tile(cfg, s, outs, anchor, order)


@register_schedule("conv2d_nchwc", "cpu")
@register_schedule("group_conv2d_nchwc", "cpu")
def schedule_conv2d_nchwc(cfg, s, outs, anchor):
    """NCHW{c}c conv: ``tile_ow`` columns x the output channel block in registers."""
    if not constant_shape(anchor):
        return schedule_generic(s, outs, "cpu")
    _, _, y_ax, x_ax, _ = anchor.axis
    cfg.define_split("tile_ow", extent(x_ax), num_outputs=2, policy="verbose", max_factor=16,
                     default=[-1, _divisor_near(extent(x_ax), 4, 8, OW_TILE)])
    order = _declare_rows(cfg, anchor, y_ax, order_knob=True)
    _declare_common(cfg, anchor, order, channel_sum=True)

    data_load, _ = _loads(anchor)
    acc, out = _tile_stages(s, outs, anchor)
    inline_injective(s, outs, keep=[s[data_load.tensor]] if _padded(anchor) else ())

    on, ocb, oy, ox, oci = out.op.axis
    xo, xi = cfg["tile_ow"].apply(s, out, ox)
    par = _output_loops(cfg, s, out, on, ocb, oy, xo, [xi, oci], order)
    acc.compute_at(out, xo)
    _place_pad(cfg, s, anchor, data_load, out, row=par, tile=xo)
    out.unroll(xi)
    out.vectorize(oci)

    _, _, _, ax, aoc = acc.op.axis
    reduce_axes = acc.op.reduce_axis
    if len(reduce_axes) == 4:  # direct: (rco, rci, ry, rx)
        rco, rci, ry, rx = reduce_axes
        loops = _reduce_loops(cfg, [rco], [ry, rx], lanes=rci)
    else:  # grouped: (rc, ry, rx)
        rc, ry, rx = reduce_axes
        loops = _reduce_loops(cfg, [rc], [ry, rx])
    acc.reorder(*loops, ax, aoc)
    if cfg["unroll_kw"].val:
        acc.unroll(rx)
    acc.unroll(ax)
    acc.vectorize(aoc)
    return s

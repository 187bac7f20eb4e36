"""CPU schedules of ``matmul``, ``dense`` and ``batch_matmul``: a register-tiled GEMM.

The shape of the kernel is the one shared/research/numba_codegen.md (section 2) measured at
1.7x numpy: the operand indexed by the output column (B, or W for dense) is packed into
panels ``[..., N/nr, K, nr]`` so that the nr columns a tile needs are contiguous for every k;
each ``mr x nr`` block of the output accumulates over all of K in a ``"local"`` tile (rows
unrolled, columns vectorized: the code generator keeps it in scalars, LLVM's SLP vectorizer
turns each k step into ``mr * nr / 16`` zmm FMAs); the outer loops run in parallel.

An epilogue (bias, activation, residual add, cast) is applied while the tile is written
out, so ``dense + bias + gelu`` writes its output once and stores nothing of the anchor's
size.

Knobs (defaults for float32 on AVX-512):

``tile_y``   rows of the register tile (split of M; default 8, at most 16)
``tile_x``   columns of the register tile (split of N; default 32 = two zmm, at most 64);
             non-dividing sizes leave a guarded edge tile
``unroll_k`` k steps unrolled in the tile's loop (divisors of K among 1, 2, 4, 8; default 1:
             the 8x32 tile body is 256 FMA statements already)
``order``    which tile loop is outer: ``"x_outer"`` (a packed B panel stays in L2 while the
             row blocks stream past it) or ``"y_outer"`` (for few column blocks); the outer
             loop, fused with the batch axes, runs in parallel
``pack_b``   pack the column operand: ``"panel"`` (each nr-column panel by the thread that
             uses it, right before its tiles), ``"all"`` (a full copy first) or ``"none"``;
             packing is the default when B is read along k (transposed), or when M is
             large enough to amortise the copy
"""

from __future__ import annotations

import math
import string

from te import expr as E

from .. import library  # noqa: F401 - registers the tuning templates of these anchors
from ..auto import schedule_generic
from ..registry import register_schedule
from ._fusion import constant_shape, epilogue_output, extent, inline_injective, packable_dims

MR, NR = 8, 32  # the register tile of numba_codegen.md: 16 zmm accumulators
MAX_MR, MAX_NR = 16, 64
# Rows from which packing a row-major B pays (K = N = 768, 1 thread: M = 16 0.58x, 64 0.96x,
# 128 1.05x; 1024^3: 1.4x).
PACK_MIN_ROWS = 128


def _operand_loads(anchor):
    """The loads of the anchor's product: the one not reading the row index is B."""
    body = anchor.body[0]
    return [n for n in E.walk(body.source[0]) if isinstance(n, E.TensorLoad)]


def _uses(load, iv) -> bool:
    return any(v.uid == iv.var.uid for idx in load.indices for v in E.free_vars(idx))


def _pack_layout(ndim: int, j_pos: int, k_pos: int, nr: int):
    """``(src, dst)``: the tensor's axes named A, B, C...; in ``dst`` the other axes keep
    their order, then the column panels, then k, then the ``nr`` columns of a panel."""
    names = string.ascii_uppercase[:ndim]
    rest = "".join(n for p, n in enumerate(names) if p not in (j_pos, k_pos))
    jn, kn = names[j_pos], names[k_pos]
    return names, f"{rest}{jn}{kn}{nr}{jn.lower()}"


def _nearest(options, want):
    return min(options, key=lambda d: abs(math.log2(d / want)))


def _default_rows(m: int) -> int:
    """MR, or a divisor of ``m`` near it (no edge tile), or all rows when there are few."""
    divisors = [d for d in range(4, 13) if m % d == 0]
    return _nearest(divisors, MR) if divisors else (m if m < 4 else MR)


def _default_cols(n: int) -> int:
    """NR, or a multiple of 16 (whole zmm registers) dividing ``n``, or the whole row when
    it is short."""
    divisors = [d for d in range(16, MAX_NR + 1, 16) if n % d == 0]
    return _nearest(divisors, NR) if divisors else (n if n <= MAX_NR else NR)


def _default_order(batch: int, m: int, n: int, mr: int, nr: int) -> str:
    col_blocks, row_blocks = batch * -(-n // nr), batch * -(-m // mr)
    return "x_outer" if col_blocks >= 4 or col_blocks >= row_blocks else "y_outer"


@register_schedule("matmul", "cpu")
@register_schedule("dense", "cpu")
@register_schedule("batch_matmul", "cpu")
def schedule_gemm(cfg, s, outs, anchor):
    """The register-tiled GEMM above; works for any anchor ``C[*b, i, j] = sum_k ...``."""
    if not constant_shape(anchor):  # symbolic sizes: no tiles, no knobs
        return schedule_generic(s, outs, "cpu")
    *batch_axes, i_ax, j_ax = anchor.axis
    (k_ax,) = anchor.reduce_axis
    m, n, kk = extent(i_ax), extent(j_ax), extent(k_ax)
    batch = math.prod(extent(b) for b in batch_axes)

    cfg.define_split("tile_y", m, num_outputs=2, policy="verbose", max_factor=MAX_MR,
                     default=[-1, _default_rows(m)])
    cfg.define_split("tile_x", n, num_outputs=2, policy="verbose", max_factor=MAX_NR,
                     default=[-1, _default_cols(n)])
    cfg.define_knob("unroll_k", [f for f in (1, 2, 4, 8) if kk % f == 0], default=1)
    mr, nr = cfg["tile_y"].size[-1], cfg["tile_x"].size[-1]
    cfg.define_knob("order", ["x_outer", "y_outer"],
                    default=_default_order(batch, m, n, mr, nr))

    b_load = next((ld for ld in _operand_loads(anchor)
                   if not _uses(ld, i_ax) and _uses(ld, j_ax)), None)
    dims = packable_dims(b_load, j_ax, k_ax) if b_load is not None else None
    along_k = dims is not None and dims[1] == len(b_load.indices) - 1  # B[.., j, k]
    if dims is None:
        cfg.define_knob("pack_b", ["none"])
    else:
        pays = along_k or m >= PACK_MIN_ROWS
        default = ("panel" if cfg["order"].val == "x_outer" else "all") if pays else "none"
        cfg.define_knob("pack_b", ["panel", "all", "none"], default=default)

    out = epilogue_output(s, outs, anchor)
    inline_injective(s, outs)
    pack = cfg["pack_b"].val
    if pack != "none":
        src, dst = _pack_layout(len(b_load.indices), *dims, nr)
        packed = s[s.cache_read(b_load.tensor, "global", [anchor], layout=(src, dst))]
    if out is None:  # no epilogue: the anchor is the output, a local cache accumulates
        acc = s[s.cache_write(anchor.output(0), "local")]
        out_stage = s[anchor]
    else:
        acc = s[anchor]
        acc.set_scope("local")
        out_stage = s[out]

    *ob, oi, oj = out_stage.op.axis
    yo, yi = cfg["tile_y"].apply(s, out_stage, oi)
    xo, xi = cfg["tile_x"].apply(s, out_stage, oj)
    outer = [xo, yo] if cfg["order"].val == "x_outer" else [yo, xo]
    out_stage.reorder(*ob, *outer, yi, xi)
    acc.compute_at(out_stage, outer[1])
    out_stage.unroll(yi)
    out_stage.vectorize(xi)
    par = out_stage.fuse(*ob, outer[0]) if ob else outer[0]
    out_stage.parallel(par)
    if pack == "panel":  # each column panel is packed by the thread that uses it, just before
        packed.compute_at(out_stage, par if outer[0] is xo else xo)
    if pack != "none":
        _schedule_pack(packed, along_k, parallel=pack == "all")

    *ab, ai, aj = acc.op.axis
    (ak,) = acc.op.reduce_axis
    unroll_k = cfg["unroll_k"].val
    if unroll_k > 1:
        ko, ki = acc.split(ak, factor=unroll_k)
        acc.reorder(*ab, ko, ki, ai, aj)
        acc.unroll(ki)
    else:
        acc.reorder(*ab, ak, ai, aj)
    acc.unroll(ai)
    acc.vectorize(aj)
    return s


def _schedule_pack(st, along_k: bool, parallel: bool):
    """The packing copy ``[..., N/nr, K, nr]`` (all of it, panels in parallel, or one panel
    inside the tile loops). Reading B[k, j] the nr columns are contiguous: vectorize them;
    reading B[j, k] (transposed) k is contiguous, so walk k in short blocks across the nr
    rows (a blocked transpose)."""
    *rest, x, y, z = st.op.axis
    if parallel:
        st.parallel(st.fuse(*rest, x) if rest else x)
    if along_k:  # 8 k per row: ~1.2x faster than 16 or a vectorized gather (noisy runs)
        yo, yi = st.split(y, factor=8)
        st.reorder(yo, z, yi)
    else:
        st.vectorize(z)

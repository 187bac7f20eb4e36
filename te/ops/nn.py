"""Matrix products and convolutions: ``matmul``, ``dense``, ``batch_matmul``, ``conv2d``.

``out_dtype`` (default: the input dtype) is the dtype products are accumulated in; inputs
are cast to it, so int8 data can accumulate in int32.
"""

from __future__ import annotations

import re

from .. import dtypes
from ..errors import TETypeError
from ..expr import cast
from ..operation import reduce_axis
from ..reduction import sum as sum_reducer
from . import tags
from ._util import (
    broadcast_shape,
    const_shape,
    dim,
    fail,
    int_arg,
    int_tuple,
    ndim_arg,
    same_dim,
    same_dtype,
    shape_str,
    stage,
    tensor_arg,
    workload,
)
from .transform import pad_stage


def _out_dtype(out_dtype, dtype: str) -> str:
    return dtype if out_dtype is None else dtypes.canonical(out_dtype)


def matmul(A, B, transpose_a: bool = False, transpose_b: bool = False, out_dtype=None):
    """``A @ B`` for 2-D tensors; ``transpose_a``/``transpose_b`` read ``A`` as [K, M] and
    ``B`` as [N, K]."""
    op = "matmul"
    ndim_arg(A, op, "A", 2)
    ndim_arg(B, op, "B", 2)
    dtype = _out_dtype(out_dtype, same_dtype(op, A=A, B=B))
    (k_a, m) = (A.shape[0], A.shape[1]) if transpose_a else (A.shape[1], A.shape[0])
    (k_b, n) = (B.shape[1], B.shape[0]) if transpose_b else (B.shape[0], B.shape[1])
    if not same_dim(k_a, k_b):
        fail(op, f"A {shape_str(A.shape)} has a reduction dimension of {dim(k_a)} but B "
                 f"{shape_str(B.shape)} has {dim(k_b)}")
    k = reduce_axis((0, k_a), name="k")

    def body(i, j):
        a = A[k, i] if transpose_a else A[i, k]
        b = B[j, k] if transpose_b else B[k, j]
        return sum_reducer(cast(a, dtype) * cast(b, dtype), axis=k)

    return stage((m, n), body, op, tags.anchor(op),
                 attrs={"transpose_a": bool(transpose_a), "transpose_b": bool(transpose_b),
                        "workload": workload(op, A, B, bool(transpose_a), bool(transpose_b),
                                             dtype)})


def dense(X, W, bias=None, out_dtype=None):
    """``X @ W.T (+ bias)`` with ``X`` [batch, in] and ``W`` [out, in] (ONNX Gemm with transB,
    TVM's dense). The bias is added by a "broadcast" stage after the "anchor:dense" one."""
    op = "dense"
    ndim_arg(X, op, "X", 2)
    ndim_arg(W, op, "W", 2)
    dtype = _out_dtype(out_dtype, same_dtype(op, X=X, W=W))
    if not same_dim(X.shape[1], W.shape[1]):
        fail(op, f"X has {dim(X.shape[1])} input features but W {shape_str(W.shape)} "
                 f"expects {dim(W.shape[1])}")
    k = reduce_axis((0, X.shape[1]), name="k")
    out = stage(
        (X.shape[0], W.shape[0]),
        lambda i, j: sum_reducer(cast(X[i, k], dtype) * cast(W[j, k], dtype), axis=k),
        op, tags.anchor(op),
        attrs={"workload": workload(op, X, W, dtype)},  # the bias is an epilogue, not in it
    )
    if bias is None:
        return out
    ndim_arg(bias, op, "bias", 1)
    if bias.dtype != dtype:
        raise TETypeError(f"{op}: bias is {bias.dtype} but the output is {dtype}")
    if not same_dim(bias.shape[0], W.shape[0]):
        fail(op, f"bias has {dim(bias.shape[0])} entries but W has {dim(W.shape[0])} outputs")
    return stage(out.shape, lambda i, j: out[i, j] + bias[j], op, tags.BROADCAST,
                 name="dense_bias")


def batch_matmul(A, B, transpose_a: bool = False, transpose_b: bool = False, out_dtype=None):
    """``A @ B`` over the last two axes, the leading (batch) axes broadcast as numpy's matmul:
    A [..., M, K] and B [..., K, N] give [..., M, N]."""
    op = "batch_matmul"
    tensor_arg(A, op, "A")
    tensor_arg(B, op, "B")
    for name, t in (("A", A), ("B", B)):
        if t.ndim < 2:
            fail(op, f"{name} must have at least 2 dimensions, got shape {shape_str(t.shape)}")
    dtype = _out_dtype(out_dtype, same_dtype(op, A=A, B=B))
    batch = broadcast_shape([A.shape[:-2], B.shape[:-2]], op, ["A", "B"])
    m, k_a = (A.shape[-1], A.shape[-2]) if transpose_a else (A.shape[-2], A.shape[-1])
    k_b, n = (B.shape[-1], B.shape[-2]) if transpose_b else (B.shape[-2], B.shape[-1])
    if not same_dim(k_a, k_b):
        fail(op, f"A {shape_str(A.shape)} has a reduction dimension of {dim(k_a)} but B "
                 f"{shape_str(B.shape)} has {dim(k_b)}")
    k = reduce_axis((0, k_a), name="k")

    def batch_index(t, b):
        lead = t.shape[:-2]
        off = len(b) - len(lead)
        return tuple(0 if dim(d) == 1 else b[off + n] for n, d in enumerate(lead))

    def body(*idx):
        b, i, j = idx[:-2], idx[-2], idx[-1]
        a = A[batch_index(A, b) + ((k, i) if transpose_a else (i, k))]
        w = B[batch_index(B, b) + ((j, k) if transpose_b else (k, j))]
        return sum_reducer(cast(a, dtype) * cast(w, dtype), axis=k)

    return stage(tuple(batch) + (m, n), body, op, tags.anchor(op),
                 attrs={"workload": workload(op, A, B, bool(transpose_a), bool(transpose_b),
                                             dtype)})


def pad2d(padding, op: str) -> tuple:
    """``padding`` as (top, left, bottom, right): one int, (height, width) or four ints."""
    if isinstance(padding, int):
        padding = (padding,) * 4
    items = tuple(padding)
    if len(items) == 2:
        items = items * 2
    if len(items) != 4:
        fail(op, f"padding must be an int, (pad_h, pad_w) or (top, left, bottom, right), "
                 f"got {padding!r}")
    return int_tuple(items, 4, op, "padding", 0)


def window_out(n, k: int, lo: int, hi: int, stride: int, dilation: int, op: str, what: str,
               ceil_mode: bool = False):
    """Output extent of a sliding window over ``n`` (+ ``lo``/``hi`` padding)."""
    span = (k - 1) * dilation + 1
    n = dim(n)
    if not isinstance(n, int):
        fail(op, f"the {what} of the input must be constant")
    if n + lo + hi < span:
        fail(op, f"the window (size {k}, dilation {dilation}: {span}) is larger than the "
                 f"padded input {what} ({n} + {lo} + {hi})")
    if not ceil_mode:
        return (n + lo + hi - span) // stride + 1
    out = -(-(n + lo + hi - span) // stride) + 1
    if (out - 1) * stride >= n + lo:  # the last window must start inside the input or padding
        out -= 1
    return out


def conv2d(data, weight, stride=1, padding=0, dilation=1, groups: int = 1,
           layout: str = "NCHW", out_dtype=None):
    """2-D convolution (cross-correlation, as ONNX Conv and TVM).

    ``layout="NCHW"``: data [N, C, H, W], weight [O, C / groups, KH, KW]; ``groups`` covers
    grouped and depthwise convolution. ``layout="NCHW{c}c"`` (e.g. ``"NCHW16c"``): data
    [N, C / c, H, W, c], weight ``"OIHW{i}i{o}o"`` [O / o, C / groups / i, KH, KW, i, o],
    output ``"NCHW{o}c"``; with ``groups > 1`` the blocks must divide the channels of a group
    (a zero-padded block would shift the groups).

    ``padding`` is one int, (pad_h, pad_w) or (top, left, bottom, right); padding happens in
    a separate "injective" stage that a schedule can inline.
    """
    op = "conv2d"
    tensor_arg(data, op, "data")
    tensor_arg(weight, op, "weight")
    dtype = _out_dtype(out_dtype, same_dtype(op, data=data, weight=weight))
    strides = int_tuple(stride, 2, op, "stride", 1)
    dilations = int_tuple(dilation, 2, op, "dilation", 1)
    pads = pad2d(padding, op)
    groups = int_arg(groups, op, "groups", 1)
    args = (data, weight, strides, pads, dilations, groups, dtype)
    if layout == "NCHW":
        return _conv2d_nchw(*args)
    m = re.fullmatch(r"NCHW(\d+)c", layout) if isinstance(layout, str) else None
    if not m or int(m.group(1)) == 0:
        fail(op, f"layout must be 'NCHW' or 'NCHW<c>c' such as 'NCHW16c', got {layout!r}")
    return _conv2d_nchwc(*args, int(m.group(1)))


def _conv_attrs(kind, data, weight, strides, pads, dilations, groups, layout, dtype):
    """The conv attributes, and the workload ``(kind, data, weight, stride, padding,
    dilation, groups, layout, out_dtype)``: ``conv2d`` of those arguments rebuilds the op."""
    return {"stride": strides, "padding": pads, "dilation": dilations, "groups": groups,
            "layout": layout, "workload": workload(kind, data, weight, strides, pads,
                                                   dilations, groups, layout, dtype)}


def _conv_geometry(op, c, cg, o, groups, hw, khw, strides, pads, dilations):
    """Check that the ``c`` input channels are ``groups`` groups of the weight's ``cg`` and that
    ``groups`` divides the ``o`` output channels; return (output channels per group, output
    height, output width)."""
    if c != cg * groups:
        fail(op, f"data has {c} channels but weight expects {cg * groups} (groups={groups})")
    if o % groups:
        fail(op, f"weight has {o} output channels, which groups={groups} does not divide")
    oh = window_out(hw[0], khw[0], pads[0], pads[2], strides[0], dilations[0], op, "height")
    ow = window_out(hw[1], khw[1], pads[1], pads[3], strides[1], dilations[1], op, "width")
    return o // groups, oh, ow


def _padded(data, pads, h_axis: int):
    top, left, bottom, right = pads
    if not any(pads):
        return data
    pairs = [(0, 0)] * data.ndim
    pairs[h_axis], pairs[h_axis + 1] = (top, bottom), (left, right)
    return pad_stage(data, pairs, "constant", 0, "conv2d", name="conv2d_pad")


def _conv2d_nchw(data, weight, strides, pads, dilations, groups, dtype):
    op = "conv2d"
    ndim_arg(data, op, "data", 4)
    ndim_arg(weight, op, "weight", 4)
    n, c, h, w = const_shape(data, op, "data")
    o, cg, kh, kw = const_shape(weight, op, "weight")
    og, oh, ow = _conv_geometry(op, c, cg, o, groups, (h, w), (kh, kw), strides, pads,
                                dilations)
    padded = _padded(data, pads, 2)
    rc = reduce_axis((0, cg), name="rc") if cg > 1 else None
    ry, rx = reduce_axis((0, kh), name="ry"), reduce_axis((0, kw), name="rx")
    axes = [a for a in (rc, ry, rx) if a is not None]
    (sh, sw), (dh, dw) = strides, dilations

    def body(nn, oc, y, x):
        r = rc.var if rc is not None else 0
        ic = r if groups == 1 else oc // og * cg + r
        a = padded[nn, ic, y * sh + ry * dh, x * sw + rx * dw]
        return sum_reducer(cast(a, dtype) * cast(weight[oc, r, ry, rx], dtype), axis=axes)

    kind = "conv2d_nchw" if groups == 1 else (
        "depthwise_conv2d_nchw" if cg == 1 else "group_conv2d_nchw")
    return stage((n, o, oh, ow), body, op, tags.anchor(kind), name=kind,
                 attrs=_conv_attrs(kind, data, weight, strides, pads, dilations, groups,
                                   "NCHW", dtype))


def _conv2d_nchwc(data, weight, strides, pads, dilations, groups, dtype, block):
    op = "conv2d"
    ndim_arg(data, op, "data", 5)
    ndim_arg(weight, op, "weight", 6)
    n, cb, h, w, c_in = const_shape(data, op, "data")
    ob, ib, kh, kw, i_blk, o_blk = const_shape(weight, op, "weight")
    if c_in != block:
        fail(op, f"data's last axis has {c_in} channels but layout 'NCHW{block}c' says {block}")
    c, cg, o = cb * block, ib * i_blk, ob * o_blk
    og, oh, ow = _conv_geometry(op, c, cg, o, groups, (h, w), (kh, kw), strides, pads,
                                dilations)
    padded = _padded(data, pads, 2)
    ry, rx = reduce_axis((0, kh), name="ry"), reduce_axis((0, kw), name="rx")
    (sh, sw), (dh, dw) = strides, dilations
    direct = groups == 1 and i_blk == block
    if direct:  # the common case: reduce over (block, lane) of the input channels directly
        rco, rci = reduce_axis((0, cb), name="rco"), reduce_axis((0, block), name="rci")
        axes = [rco, rci, ry, rx]
    else:  # grouped, or weight blocks that differ from data blocks: flat channel arithmetic
        rc = reduce_axis((0, cg), name="rc")
        axes = [rc, ry, rx]

    def body(nn, ocb, y, x, oci):
        hy, wx = y * sh + ry * dh, x * sw + rx * dw
        if direct:
            a = padded[nn, rco, hy, wx, rci]
            k = weight[ocb, rco, ry, rx, rci, oci]
        else:
            ic = (ocb * o_blk + oci) // og * cg + rc if groups > 1 else rc.var
            a = padded[nn, ic // block, hy, wx, ic % block]
            k = weight[ocb, rc // i_blk, ry, rx, rc % i_blk, oci]
        return sum_reducer(cast(a, dtype) * cast(k, dtype), axis=axes)

    kind = "conv2d_nchwc" if groups == 1 else "group_conv2d_nchwc"
    attrs = _conv_attrs(kind, data, weight, strides, pads, dilations, groups,
                        f"NCHW{block}c", dtype)
    attrs["out_layout"] = f"NCHW{o_blk}c"
    return stage((n, ob, oh, ow, o_blk), body, op, tags.anchor(kind), name=kind, attrs=attrs)


__all__ = ["matmul", "dense", "batch_matmul", "conv2d"]

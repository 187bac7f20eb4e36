"""What the register-tile schedules of ``gemm`` and ``conv2d`` share: finding the epilogue
of an anchor (the elementwise chain after it) and inlining everything injective.

A fused kernel computes the anchor into a small ``"local"`` tile at each tile of the
*output* and applies the epilogue (bias, activation, residual add, cast) while it copies
the tile out, so the output is written once and nothing of the anchor's size is stored.
"""

from __future__ import annotations

from te import expr as E
from te.ops import tags
from te.tensor import ComputeOp

from ..schedule import ScheduleError

__all__ = [
    "compute_stages", "constant_shape", "epilogue_output", "extent", "inline_injective",
    "packable_dims",
]


def constant_shape(anchor) -> bool:
    """Whether every axis of the anchor has a constant extent (else it is not tiled)."""
    return all(isinstance(iv.dom.extent, E.Const) for iv in anchor.axis + anchor.reduce_axis)


def extent(iv) -> int:
    """The constant extent of an axis (the op library's anchors have constant shapes)."""
    ext = iv.dom.extent
    if not isinstance(ext, E.Const):
        raise ScheduleError(f"axis {iv.name} has the symbolic extent {ext}")
    return int(ext.value)


def compute_stages(s) -> list:
    return [st for st in s.stages if isinstance(st.op, ComputeOp)]


def _consumers(s) -> dict:
    """``{id(stage): [stages reading it]}`` over the compute stages of ``s``."""
    out: dict = {id(st): [] for st in s.stages}
    for st in compute_stages(s):
        for t in st.op.input_tensors:
            prod = s[t]
            if st not in out[id(prod)]:
                out[id(prod)].append(st)
    return out


def _pointwise(op: ComputeOp, tensors: set) -> bool:
    """Whether every load of one of ``tensors`` in ``op`` reads the element at ``op``'s own
    index (a size-1 dimension may be read at 0, as a broadcast does)."""
    for b in op.body:
        for node in E.walk(b):
            if not isinstance(node, E.TensorLoad) or id(node.tensor.op) not in tensors:
                continue
            if len(node.indices) != len(op.axis):
                return False
            for idx, iv in zip(node.indices, op.axis):
                if isinstance(idx, E.Var) and idx.uid == iv.var.uid:
                    continue
                if isinstance(idx, E.Const) and idx.value == 0 and extent(iv) == 1:
                    continue
                return False
    return True


def epilogue_output(s, outs, anchor: ComputeOp):
    """The output tensor that the anchor's epilogue ends in, when the anchor can be computed
    at that output's tiles: every stage after the anchor is elementwise or broadcast, reads
    the anchor's chain pointwise, and leads to exactly one output of the anchor's shape.
    The stages between the anchor and that output are inlined. None when the anchor is an
    output itself or its consumers do not form such a chain."""
    consumers = _consumers(s)
    anchor_stage = s[anchor]
    if anchor_stage.is_output:
        return None
    chain, todo = [], [anchor_stage]
    while todo:
        st = todo.pop()
        for c in consumers[id(st)]:
            if c not in chain:
                chain.append(c)
                todo.append(c)
    if not chain or any(c.op.tag not in (tags.ELEMWISE, tags.BROADCAST) for c in chain):
        return None
    finals = [c for c in chain if c.is_output]
    if len(finals) != 1 or any(consumers[id(c)] for c in finals):
        return None
    out = finals[0]
    if [extent(iv) for iv in out.op.axis] != [extent(iv) for iv in anchor.axis]:
        return None
    inside = {id(anchor)} | {id(c.op) for c in chain} | {id(c.origin_op) for c in chain}
    if not all(_pointwise(c.op, inside) for c in chain):
        return None
    for c in chain:
        if c is not out:
            c.compute_inline()
    return next(t for t in outs if s[t] is out)


def inline_injective(s, outs, keep=()) -> None:
    """Inline every injective stage that ``outs`` depend on, except outputs, ``keep`` and
    stages another op schedule already placed: transposes, casts, layout transforms and
    the like are read at their source."""
    closure = {id(st) for t in outs for st in s._producers_closure(s[t])}
    for st in compute_stages(s):
        if id(st) not in closure or st.is_output or st in keep:
            continue
        if st.attach_type != "root" or st.relations or st.iter_attrs:
            continue
        if tags.is_injective(st.op.tag):
            st.compute_inline()


def packable_dims(load: E.TensorLoad, j: E.IterVar, k: E.IterVar):
    """``(position of j, position of k)`` in the indices of ``load`` when both are read
    directly (``B[k, j]`` or ``B[j, k]``); None otherwise (then it cannot be repacked)."""
    pos = {}
    for n, idx in enumerate(load.indices):
        for name, iv in (("j", j), ("k", k)):
            if isinstance(idx, E.Var) and idx.uid == iv.var.uid:
                pos[name] = n
    if set(pos) != {"j", "k"}:
        return None
    return pos["j"], pos["k"]

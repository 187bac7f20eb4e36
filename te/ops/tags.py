"""The tags the operator library puts on its stages: the vocabulary a fusion pass reads.

Every ``ComputeOp`` an op builds has ``op.attrs["op"]`` set to the op's name and one of these
tags, from the most to the least fusable:

``"elemwise"``
    ``out[i] = f(a[i], b[i], ...)`` over inputs of the output's shape (relu, cast, add of
    equal shapes).
``"broadcast"``
    elementwise, but some input is read at fewer or size-1 dimensions (add with numpy
    broadcasting, batch_norm_inference, the bias add of ``dense``).
``"injective"``
    each output element is one input element at a computed index, or a constant (transpose,
    reshape, pad, slice, concat, gather, layout_transform), or a fixed few of them (resize):
    no reduction, so the stage can always be inlined into its consumers.
``"reduce"``
    a reduction over some axes, or a stage that combines reductions elementwise
    (reduce_sum, argmax, the sum inside softmax).
``"anchor:<op>"``
    the stage a schedule template starts from for an op with its own schedule, e.g.
    ``"anchor:conv2d_nchw"``, ``"anchor:dense"``, ``"anchor:softmax"``. It is the last stage
    of the op's own definition: the reduction of matmul/conv2d/max_pool2d, the normalizing
    stage of softmax/layer_norm/avg_pool2d. An optional epilogue that the graph could have
    expressed as a separate node (the bias of ``dense``) is a stage of its own after it.

A stage inside a multi-stage op carries its own pattern (the padding of conv2d is
``"injective"``, the maximum inside softmax ``"reduce"``), so a schedule can inline the
injective and elementwise ones. The pattern of a whole op is the highest of its stages'
(``pattern_rank``).
"""

from __future__ import annotations

ELEMWISE = "elemwise"
BROADCAST = "broadcast"
INJECTIVE = "injective"
REDUCE = "reduce"
ANCHOR_PREFIX = "anchor:"

_RANK = {ELEMWISE: 0, BROADCAST: 1, INJECTIVE: 2, REDUCE: 3}


def anchor(name: str) -> str:
    """The tag of the anchor stage of op ``name``: ``anchor("dense") == "anchor:dense"``."""
    return ANCHOR_PREFIX + name


def is_anchor(tag: str) -> bool:
    return tag.startswith(ANCHOR_PREFIX)


def anchor_name(tag: str) -> str | None:
    """``"conv2d_nchw"`` for ``"anchor:conv2d_nchw"``; None for any other tag."""
    return tag[len(ANCHOR_PREFIX):] if is_anchor(tag) else None


def is_injective(tag: str) -> bool:
    """Whether a stage with this tag can be inlined into its consumers (no reduction)."""
    return tag in (ELEMWISE, BROADCAST, INJECTIVE)


def pattern_rank(tag: str) -> int:
    """0 elemwise, 1 broadcast, 2 injective, 3 reduce, 4 anchor; -1 for a foreign tag."""
    if is_anchor(tag):
        return 4
    return _RANK.get(tag, -1)

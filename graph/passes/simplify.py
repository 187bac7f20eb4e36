"""Algebraic simplification: a table of rewrite rules per op type, applied over the graph
until nothing changes (Relay's SimplifyExpr and SimplifyInference, and the strength
reductions a TVM user expects).

A rule is ``fn(rw, node) -> bool``: it sees the node with its inputs already renamed, and
either emits replacement nodes / forwards the node's outputs through ``rw`` and returns
True, or returns False and the next rule (or the node as it is) is tried. Each rule keeps
the values' types: an output is forwarded only to a value of the same shape and dtype.

Floating-point note: ``x / c -> x * (1 / c)`` and the merging of constant chains
(``(x * a) * b -> x * (a * b)``) may change results in the last bit, as the same rewrites
do in every compiler that makes them.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from .rewrite import Rewriter

MAX_ROUNDS = 8  # each round can only shrink or canonicalize; more means a rule ping-pongs

RULES: dict = {}


def rule(*op_types: str):
    """Register ``fn(rw, node) -> bool`` as a simplification of ``op_types``."""

    def register(fn):
        for op in op_types:
            RULES.setdefault(op, []).append(fn)
        return fn

    return register


def simplify(graph: Graph, rules: dict | None = None) -> Graph:
    """Apply ``rules`` (default: ``RULES``) to every node, round after round, until a round
    changes nothing."""
    rules = RULES if rules is None else rules
    for _ in range(MAX_ROUNDS):
        rw = Rewriter(graph)
        for node in graph.nodes:
            rw.release(node.name)
            node = rw.renamed(node)
            if not any(fn(rw, node) for fn in rules.get(node.op_type, ())):
                rw.emit(node)
        if not rw.changed:
            return graph
        graph = rw.finish()
    return graph


# -- helpers -------------------------------------------------------------------------------


def _scalar(arr):
    """The single value of a one-element constant, else None."""
    if arr is None or arr.size != 1:
        return None
    return arr.reshape(()).item()


def _same_type(rw: Rewriter, a: str, b: str) -> bool:
    return rw.type(a) == rw.type(b)


def _is_float(rw: Rewriter, value: str) -> bool:
    return np.dtype(rw.type(value).dtype).kind == "f"


def _producer(rw: Rewriter, value: str, *op_types: str) -> Node | None:
    p = rw.produced_by(value)
    return p if p is not None and p.op_type in op_types else None


def _forward(rw: Rewriter, node: Node, value: str) -> bool:
    """Forward the node's only output to ``value`` when their types agree."""
    if len([o for o in node.outputs if o]) != 1 or not _same_type(rw, node.outputs[0], value):
        return False
    rw.forward(node.outputs[0], value)
    return True


def _binary(rw: Rewriter, node: Node, op_type: str, x: str, c_array, base: str) -> bool:
    """Emit ``op_type(x, constant)`` for ``node``'s output."""
    c = rw.add_const(np.asarray(c_array), f"{base}_const")
    rw.new_node(op_type, (x, c), node.outputs, name=node.name)
    return True


# -- pass-through ops ----------------------------------------------------------------------


@rule("Identity")
def identity(rw, node):
    return _forward(rw, node, node.inputs[0])


@rule("Dropout")
def dropout(rw, node):
    """Inference Dropout passes its input through (the mask must be unused)."""
    if len(node.outputs) > 1 and rw.uses.get(node.outputs[1], 0):
        return False
    training = rw.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if len(node.inputs) > 2 and node.inputs[2] and (training is None or bool(training.any())):
        return False  # a run-time or true training flag: leave it to the converter's check
    if not _same_type(rw, node.outputs[0], node.inputs[0]):
        return False
    rw.forward(node.outputs[0], node.inputs[0])  # the unused mask is simply not computed
    return True


@rule("Cast", "CastLike")
def cast_to_same(rw, node):
    return _forward(rw, node, node.inputs[0])  # forwards only when the dtype is unchanged


@rule("Neg")
def double_neg(rw, node):
    inner = _producer(rw, node.inputs[0], "Neg")
    return inner is not None and _forward(rw, node, inner.inputs[0])


# -- arithmetic with constants ---------------------------------------------------------------


@rule("Add", "Mul")
def constant_second(rw, node):
    """Commutative ops keep the constant second (later rules and CSE look only there)."""
    a, b = node.inputs
    if rw.const(a) is not None and rw.const(b) is None:
        rw.new_node(node.op_type, (b, a), node.outputs, node.attrs, node.name)
        return True
    return False


_NEUTRAL = {"Add": 0, "Sub": 0, "Mul": 1, "Div": 1, "Pow": 1}


@rule("Add", "Sub", "Mul", "Div", "Pow")
def neutral_constant(rw, node):
    """x + 0, x - 0, x * 1, x / 1, x ** 1 -> x (when broadcasting changes nothing)."""
    c = rw.const(node.inputs[1])
    if c is None or c.size == 0 or not np.all(c == _NEUTRAL[node.op_type]):
        return False
    return _forward(rw, node, node.inputs[0])


@rule("Sub")
def sub_constant(rw, node):
    """x - c -> x + (-c): Add is commutative, so it meets the folding and fusion rules."""
    x, c_name = node.inputs
    c = rw.const(c_name)
    if c is None or rw.const(x) is not None or not _is_float(rw, x):
        return False
    return _binary(rw, node, "Add", x, -c, "neg")


@rule("Div")
def div_constant(rw, node):
    """x / c -> x * (1 / c) for a float constant without zeros (strength reduction)."""
    x, c_name = node.inputs
    c = rw.const(c_name)
    if c is None or rw.const(x) is not None or not _is_float(rw, x) or not np.all(c != 0):
        return False
    recip = (1.0 / c.astype(np.float64)).astype(c.dtype)
    return _binary(rw, node, "Mul", x, recip, "recip")


@rule("Pow")
def pow_constant(rw, node):
    """x ** 2 -> x * x, x ** 0.5 -> sqrt(x), x ** -1 -> 1 / x (float x)."""
    x, e = node.inputs
    exponent = _scalar(rw.const(e))
    if exponent is None or not _is_float(rw, x) or not _same_type(rw, node.outputs[0], x):
        return False
    if exponent == 2:
        rw.new_node("Mul", (x, x), node.outputs, name=node.name)
    elif exponent == 0.5:
        rw.new_node("Sqrt", (x,), node.outputs, name=node.name)
    elif exponent == -1:
        rw.new_node("Reciprocal", (x,), node.outputs, name=node.name)
    else:
        return False
    return True


@rule("Add", "Mul")
def merge_constant_chain(rw, node):
    """(x + a) + b -> x + (a + b); (x * a) * b -> x * (a * b)."""
    inner = _producer(rw, node.inputs[0], node.op_type)
    b = rw.const(node.inputs[1])
    if inner is None or b is None:
        return False
    x, a_name = inner.inputs
    a = rw.const(a_name)
    if a is None or rw.const(x) is not None or a.dtype != b.dtype:
        return False
    merged = a + b if node.op_type == "Add" else a * b
    out = rw.types[node.outputs[0]]
    if np.broadcast_shapes(rw.type(x).shape, merged.shape) != out.shape:
        return False
    return _binary(rw, node, node.op_type, x, merged.astype(a.dtype), "merged")


# -- data movement ---------------------------------------------------------------------------


def _perm(rw: Rewriter, node: Node) -> list:
    perm = node.attrs.get("perm")
    rank = len(rw.type(node.inputs[0]).shape)
    return list(range(rank))[::-1] if perm is None else [int(p) for p in perm]


@rule("Transpose")
def transpose(rw, node):
    """The identity permutation goes; two transposes become one; a transpose that moves
    only size-1 axes is a reshape."""
    x = node.inputs[0]
    perm = _perm(rw, node)
    inner = _producer(rw, x, "Transpose")
    if inner is not None:
        first = _perm(rw, inner)
        perm = [first[p] for p in perm]
        x = inner.inputs[0]
    if perm == sorted(perm):
        return _forward(rw, node, x)
    shape = rw.type(x).shape
    moved = [p for p in perm if shape[p] != 1]
    if moved == sorted(moved):
        return _reshape_to(rw, node, x)
    if inner is None:
        return False
    rw.new_node("Transpose", (x,), node.outputs, {"perm": tuple(perm)}, node.name)
    return True


_RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


def _reshape_to(rw: Rewriter, node: Node, x: str) -> bool:
    """Emit ``Reshape(x, <node's output shape>)`` for the node's output."""
    shape = rw.types[node.outputs[0]].shape
    if 0 in shape:
        return False  # a 0 in Reshape's target copies the input's dimension
    target = rw.add_const(np.array(shape, np.int64), "shape")
    rw.new_node("Reshape", (x, target), node.outputs, name=node.name)
    return True


@rule(*_RESHAPES)
def reshape_chain(rw, node):
    """A reshape to the same shape goes; a chain of reshapes (Flatten, Squeeze and
    Unsqueeze included) becomes one Reshape to the final shape."""
    x = node.inputs[0]
    if _forward(rw, node, x):
        return True
    inner = _producer(rw, x, *_RESHAPES)
    if inner is None:
        return False
    if _forward(rw, node, inner.inputs[0]):
        return True
    return _reshape_to(rw, node, inner.inputs[0])


@rule("Concat")
def single_concat(rw, node):
    inputs = [v for v in node.inputs if v]
    return len(inputs) == 1 and _forward(rw, node, inputs[0])


@rule("Expand")
def expand_to_same(rw, node):
    return _forward(rw, node, node.inputs[0])  # only when Expand keeps the shape


@rule("Slice")
def full_slice(rw, node):
    """A slice keeping every element in order (steps of 1, same shape) is the input."""
    steps = rw.const(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] else None
    if len(node.inputs) > 4 and node.inputs[4] and (steps is None or not np.all(steps == 1)):
        return False
    return _forward(rw, node, node.inputs[0])


def _pad_amounts(rw: Rewriter, node: Node):
    """(pads, constant value) of a constant-mode Pad over all axes, else None."""
    if node.attrs.get("mode", "constant") != "constant":
        return None
    if "pads" in node.attrs:  # opset < 11
        pads, value = [int(p) for p in node.attrs["pads"]], float(node.attrs.get("value", 0.0))
    else:
        if len(node.inputs) < 2 or rw.const(node.inputs[1]) is None:
            return None
        if len(node.inputs) > 3 and node.inputs[3]:
            return None  # explicit axes: rare, left to the converter
        pads = [int(p) for p in rw.const(node.inputs[1]).reshape(-1)]
        value = 0.0
        if len(node.inputs) > 2 and node.inputs[2]:
            v = _scalar(rw.const(node.inputs[2]))
            if v is None:
                return None
            value = float(v)
    return pads, value


@rule("Pad")
def zero_pad(rw, node):
    found = _pad_amounts(rw, node)
    return found is not None and not any(found[0]) and _forward(rw, node, node.inputs[0])


@rule("Conv")
def pad_into_conv(rw, node):
    """Pad(x, zeros around H, W) -> Conv: the conv's own padding does it, in its kernel."""
    pad = _producer(rw, node.inputs[0], "Pad")
    if pad is None or node.attrs.get("auto_pad", "NOTSET") != "NOTSET":
        return False
    found = _pad_amounts(rw, pad)
    if found is None:
        return False
    pads, value = found
    rank = len(rw.type(node.inputs[0]).shape)
    lo, hi = pads[:rank], pads[rank:]
    if value != 0.0 or any(lo[:2]) or any(hi[:2]) or any(p < 0 for p in pads):
        return False
    own = [int(p) for p in node.attrs.get("pads", [0] * (2 * (rank - 2)))]
    n = rank - 2
    merged = [own[a] + lo[2 + a] for a in range(n)] + [own[n + a] + hi[2 + a] for a in range(n)]
    attrs = dict(node.attrs, pads=tuple(merged))
    rw.new_node("Conv", (pad.inputs[0], *node.inputs[1:]), node.outputs, attrs, node.name)
    return True


__all__ = ["MAX_ROUNDS", "RULES", "rule", "simplify"]

"""Horizontal fusion: sibling MatMuls or Convs that read the same input with constant
weights become one op over the concatenated weights, whose output is sliced back into the
siblings' values (Q/K/V projections, Inception's 1x1 branches).

One wide product reads the input once and gives the schedule a larger tile space; the
slices cost nothing when they are views (a channel range of a batch-1 NCHW tensor, see
``memory``) and otherwise fuse into the injective ops that follow them (BERT's
Reshape + Transpose into heads), so the kernel count never grows. What the siblings all do
next is pulled in front of the slices as well: a bias Add per sibling becomes one Add of the
concatenated biases; the same elementwise activation (Relu, ...) on every sibling becomes
one activation on the wide output.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, TensorType
from .rewrite import Rewriter, attrs_key, consumer_counts

# Unary elementwise ops that commute with slicing (applied once to the wide output).
_ACTIVATIONS = frozenset({"Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "HardSigmoid",
                          "HardSwish", "Softplus", "Gelu", "Erf", "Exp", "Neg", "Abs"})


def fuse_siblings(graph: Graph, min_siblings: int = 2) -> Graph:
    """Merge every set of at least ``min_siblings`` compatible MatMuls (same input, constant
    2-D weights with the same rows) or Convs (same input and attributes, constant weights,
    one group) into one op plus slices (see the module docstring)."""
    groups = _sibling_groups(graph, min_siblings)
    if not groups:
        return graph
    uses = consumer_counts(graph)
    readers = graph.consumers()
    rw = Rewriter(graph)
    plan: dict = {}  # id(first member) -> group; other members and absorbed nodes: skipped
    skip: set = set()
    for members in groups:
        members, chains = _cheap_members(rw, members, uses, readers, min_siblings)
        if not members:
            continue
        plan[id(members[0])] = (members, chains)
        skip |= {id(n) for n in members[1:]} | {id(n) for c in chains for n in c}
    if not plan:
        return graph
    for node in graph.nodes:
        if id(node) in plan:
            _emit_wide(rw, *plan[id(node)])
        elif id(node) not in skip:
            rw.emit(node)
    return rw.finish()


# Readers that take a slice for free: data movement that fuses with the slice into one
# copy kernel (or is a view of it), and, when the slice itself is a view, ops that read
# their input in place.
_MOVERS = frozenset({"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze"})
_IN_PLACE_READERS = frozenset({"Conv", "MatMul", "Gemm", "MaxPool", "AveragePool",
                               "GlobalAveragePool", "ConvTranspose"})


def _cheap_members(rw, members, uses, readers, min_siblings) -> tuple:
    """The members (and their absorbed chains) whose slice adds no kernel: its readers
    fuse with it or read it in place (a channel range of a batch-1 conv output is a view,
    see ``memory``). Members are dropped until the rest agree; ([], []) if too few stay."""
    graph = rw.graph
    while len(members) >= min_siblings:
        chains = _absorbed(rw, members, uses, readers)
        finals = [c[-1].outputs[0] if c else m.outputs[0] for m, c in zip(members, chains)]
        view = members[0].op_type == "Conv" and graph.values[finals[0]].shape[0] == 1
        allowed = _MOVERS | (_IN_PLACE_READERS if view else frozenset())
        keep = [m for m, v in zip(members, finals) if v not in graph.outputs
                and all(r.op_type in allowed for r in readers.get(v, ()))]
        if len(keep) == len(members):
            return members, chains
        members = keep
    return [], []


def _sibling_groups(graph: Graph, min_siblings: int) -> list:
    found: dict = {}
    for n in graph.nodes:
        key = _sibling_key(graph, n)
        if key is not None:
            found.setdefault(key, []).append(n)
    return [g for g in found.values() if len(g) >= min_siblings]


def _sibling_key(graph: Graph, n: Node):
    consts = graph.initializers
    if n.op_type == "MatMul" and len(n.inputs) == 2:
        w = consts.get(n.inputs[1])
        x = graph.values[n.inputs[0]]
        if w is None or w.ndim != 2 or len(x.shape) < 2 or n.inputs[0] in consts:
            return None
        return ("MatMul", n.inputs[0], w.shape[0], w.dtype.str)
    if n.op_type == "Conv":
        w = consts.get(n.inputs[1])
        bias_ok = len(n.inputs) < 3 or not n.inputs[2] or n.inputs[2] in consts
        if w is None or not bias_ok or int(n.attrs.get("group", 1)) != 1 \
                or n.attrs.get("auto_pad", "NOTSET") != "NOTSET" or n.inputs[0] in consts:
            return None
        return ("Conv", n.inputs[0], w.shape[1:], w.dtype.str, attrs_key(n.attrs))
    return None


def _only_reader(value: str, uses: dict, readers: dict, graph: Graph):
    if uses.get(value, 0) != 1 or value in graph.outputs:
        return None
    return readers[value][0]


def _absorbed(rw: Rewriter, members: list, uses: dict, readers: dict) -> list:
    """Per member, the nodes after it that move in front of the slices: a bias Add (a
    per-channel constant), then a shared activation; the same shape of chain for all."""
    chains = [[] for _ in members]
    axis = 1 if members[0].op_type == "Conv" else -1
    heads = [m.outputs[0] for m in members]
    # a per-channel bias on every member
    adds = [_only_reader(v, uses, readers, rw.graph) for v in heads]
    if all(a is not None and a.op_type == "Add" and _bias(rw, a, v, axis) is not None
           for a, v in zip(adds, heads)):
        for c, a in zip(chains, adds):
            c.append(a)
        heads = [a.outputs[0] for a in adds]
    # then the same activation on every member
    acts = [_only_reader(v, uses, readers, rw.graph) for v in heads]
    if all(a is not None and a.op_type in _ACTIVATIONS and len(a.inputs) == 1 for a in acts) \
            and len({(a.op_type, attrs_key(a.attrs)) for a in acts}) == 1:
        for c, a in zip(chains, acts):
            c.append(a)
    return chains


def _bias(rw: Rewriter, add: Node, value: str, axis: int):
    """The bias vector of ``add`` (which reads ``value``) along ``axis``, else None."""
    other = add.inputs[1] if add.inputs[0] == value else add.inputs[0]
    c = rw.const(other)
    out = rw.type(value).shape
    if c is None or rw.types[add.outputs[0]].shape != out or c.ndim > len(out):
        return None
    ax = axis % len(out)
    full = c.reshape((1,) * (len(out) - c.ndim) + c.shape)
    if any(d != 1 for k, d in enumerate(full.shape) if k != ax):
        return None
    return np.broadcast_to(full.reshape(-1), (out[ax],))


def _emit_wide(rw: Rewriter, members: list, chains: list):
    first = members[0]
    x = first.inputs[0]
    weights = [rw.const(m.inputs[1]) for m in members]
    conv = first.op_type == "Conv"
    sizes = [w.shape[0] if conv else w.shape[1] for w in weights]
    out_ty = rw.type(first.outputs[0])
    out_axis = 1 if conv else len(out_ty.shape) - 1
    wide_shape = list(out_ty.shape)
    wide_shape[out_axis] = sum(sizes)
    ty = TensorType(wide_shape, out_ty.dtype)
    # conv weights are [O, C, KH, KW], matmul weights [K, N]: stack the output channels
    w_name = rw.add_const(np.concatenate(weights, axis=0 if conv else 1),
                          f"{first.name}_wide_w")
    wide = rw.fresh_value(f"{first.outputs[0]}_wide", ty)
    inputs = [x, w_name]
    if conv:
        biases = [rw.const(m.inputs[2]) if len(m.inputs) > 2 and m.inputs[2]
                  else np.zeros(s, w.dtype) for m, s, w in zip(members, sizes, weights)]
        if any(len(m.inputs) > 2 and m.inputs[2] for m in members):
            inputs.append(rw.add_const(np.concatenate(biases), f"{first.name}_wide_b"))
    rw.new_node(first.op_type, inputs, (wide,), first.attrs, f"{first.name}_wide")
    finals = [m.outputs[0] for m in members]
    for step in range(len(chains[0])):
        nodes = [c[step] for c in chains]
        if nodes[0].op_type == "Add":
            bias = np.concatenate([_bias(rw, a, v, out_axis) for a, v in zip(nodes, finals)])
            shape = (-1,) + (1,) * (len(wide_shape) - 2) if conv else (-1,)
            b = rw.add_const(bias.reshape(shape).astype(out_ty.dtype), f"{first.name}_wide_bias")
            inputs = (wide, b)
        else:
            inputs = (wide,)
        nxt = rw.fresh_value(f"{nodes[0].outputs[0]}_wide", ty)
        rw.new_node(nodes[0].op_type, inputs, (nxt,), nodes[0].attrs, f"{nodes[0].name}_wide")
        wide = nxt
        finals = [n.outputs[0] for n in nodes]
    at = 0
    for value, size in zip(finals, sizes):
        starts = rw.add_const(np.array([at], np.int64), "starts")
        ends = rw.add_const(np.array([at + size], np.int64), "ends")
        axes = rw.add_const(np.array([out_axis], np.int64), "axes")
        rw.new_node("Slice", (wide, starts, ends, axes), (value,), name=f"{value}_slice")
        at += size

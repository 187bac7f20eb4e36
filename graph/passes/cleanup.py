"""The clean-up passes: constant folding, dead-node elimination and common-subexpression
elimination (Relay's FoldConstant, DeadCodeElimination and EliminateCommonSubexpr)."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from .rewrite import NONDETERMINISTIC, Rewriter, array_key, attrs_key, prune

# A folded result may be this many elements even when its inputs are smaller (a shape
# computation, a small table); beyond that it must not outgrow its inputs, so folding never
# turns a cheap Expand or Tile into megabytes of weights.
FOLD_LIMIT = 1 << 16


def fold_constants(graph: Graph, limit: int = FOLD_LIMIT) -> Graph:
    """Evaluate every node whose inputs are all constants (with onnx's reference evaluator,
    the semantics' oracle) and make its outputs constants. A result larger than ``limit``
    elements and than its inputs together stays a node; so do fused groups, foreign-domain
    ops and random ops."""
    rw = Rewriter(graph)
    for node in graph.nodes:
        values = _fold(rw, node, limit)
        if values is None:
            rw.emit(node)
            continue
        for name, arr in zip(node.outputs, values):
            if name:
                rw.consts[name] = arr
        rw.changed = True
    return rw.finish() if rw.changed else graph


def _fold(rw: Rewriter, node: Node, limit: int):
    """The node's output arrays (typed as the graph says), or None to keep it."""
    if node.is_fused or "." in node.op_type or node.op_type in NONDETERMINISTIC:
        return None
    inputs = [v for v in node.inputs if v]
    arrays = [rw.const(v) for v in inputs]
    if any(a is None for a in arrays):
        return None
    budget = max(limit, sum(int(a.size) for a in arrays))
    outs = [rw.types[v] for v in node.outputs if v]
    if any(t.size > budget for t in outs):
        return None
    results = evaluate(node, {rw.resolve(v): a for v, a in zip(inputs, arrays)}, rw.graph.opset,
                       [rw.resolve(v) if v else v for v in node.inputs])
    if results is None:
        return None
    typed = []
    for name, arr in zip(node.outputs, results):
        if not name:
            typed.append(None)
            continue
        ty = rw.types[name]
        arr = np.asarray(arr)
        if tuple(arr.shape) != ty.shape:
            return None  # the evaluator disagrees with the graph's types: leave it be
        typed.append(arr.astype(ty.dtype, copy=False))
    return typed


def evaluate(node: Node, feeds: dict, opset: int, inputs=None):
    """Run one node with onnx's ReferenceEvaluator; None if it cannot be expressed or run
    (the node is then simply not folded)."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    attrs = {}
    for key, value in node.attrs.items():
        if isinstance(value, np.ndarray):
            from onnx import numpy_helper

            value = numpy_helper.from_array(value)
        elif isinstance(value, tuple):
            if not value:
                return None  # an empty list has no attribute type to rebuild it with
            value = list(value)
        elif value == "<subgraph>":
            return None
        attrs[key] = value
    inputs = list(node.inputs if inputs is None else inputs)
    try:
        proto = helper.make_node(node.op_type, inputs, list(node.outputs), **attrs)
        evaluator = ReferenceEvaluator(proto, opsets={"": opset or 17})
        return evaluator.run(None, {v: feeds[v] for v in inputs if v})
    except Exception:  # noqa: BLE001 - the reference lacks the op or rejects it: keep the node
        return None


def eliminate_dead_nodes(graph: Graph) -> Graph:
    """Drop nodes no graph output depends on, unused constants and stale types, and blank
    the optional outputs nothing reads (a Dropout mask, a MaxPool's indices, batch-norm
    running statistics), so converters skip computing them."""
    from onnx import defs

    used = {v for n in graph.nodes for v in n.inputs if v} | set(graph.outputs)
    nodes = []
    for n in graph.nodes:
        outs = list(n.outputs)
        for k in range(1, len(outs)):
            if outs[k] and outs[k] not in used and _optional_output(defs, n, k, graph.opset):
                outs[k] = ""
        while len(outs) > 1 and not outs[-1]:
            outs.pop()
        nodes.append(n if tuple(outs) == n.outputs else n.replace(outputs=tuple(outs)))
    return prune(graph.replace(nodes=nodes))


def _optional_output(defs, node: Node, k: int, opset: int) -> bool:
    if node.is_fused or "." in node.op_type:
        return False
    try:
        schema = defs.get_schema(node.op_type, opset or 17)
    except defs.SchemaError:
        return False
    params = schema.outputs
    if k >= len(params):
        return False
    return params[k].option == defs.OpSchema.FormalParameterOption.Optional


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    """Merge constants with equal contents, then nodes with the same op, attributes and
    inputs (after those merges): the later one's outputs are read from the first."""
    rw = Rewriter(graph)
    by_type: dict = {}  # only constants of one dtype and shape are hashed and compared
    for name, arr in graph.initializers.items():
        by_type.setdefault((arr.dtype.str, arr.shape), []).append(name)
    for names in by_type.values():
        first: dict = {}
        for name in names if len(names) > 1 else ():
            key = array_key(graph.initializers[name])
            if key in first:
                rw.forward(name, first[key])
            else:
                first[key] = name
    seen: dict = {}
    for node in graph.nodes:
        if node.is_fused or node.op_type in NONDETERMINISTIC:
            rw.emit(node)
            continue
        inputs = tuple(rw.resolve(v) if v else v for v in node.inputs)
        key = (node.op_type, inputs, attrs_key(node.attrs),
               tuple(bool(v) for v in node.outputs))
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = rw.emit(node)
            continue
        for old, new in zip(node.outputs, earlier.outputs):
            if old:
                rw.forward(old, new)
    return rw.finish() if rw.changed else graph


__all__ = ["FOLD_LIMIT", "eliminate_common_subexpressions", "eliminate_dead_nodes", "evaluate",
           "fold_constants"]

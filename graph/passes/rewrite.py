"""What every pass uses to build a new graph from an old one: a ``Rewriter`` that collects
the new nodes in order, redirects the uses of replaced values, mints fresh names for new
values, constants and nodes, and finishes with dead nodes, unused constants and stale
types removed.

A pass walks ``graph.nodes`` in topological order and, for each node, either ``emit``s it
(its inputs renamed through the replacements made so far), emits other nodes in its place,
or ``forward``s its outputs to values that already exist. The input graph is never changed.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping

import numpy as np

from ..ir import Graph, Node, TensorType

# Ops whose results change from run to run: never folded, never merged by CSE.
NONDETERMINISTIC = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform",
                              "RandomUniformLike", "Multinomial", "Bernoulli"})


def attr_key(value) -> object:
    """A hashable, exact stand-in for an attribute value (arrays by dtype, shape, bytes)."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(attr_key(v) for v in value)
    if isinstance(value, float) and np.isnan(value):  # nan != nan, yet equal attributes
        return ("nan",)
    return value


def attrs_key(attrs: Mapping) -> tuple:
    return tuple(sorted((k, attr_key(v)) for k, v in attrs.items()))


def array_key(arr: np.ndarray) -> tuple:
    """Equal for constants with the same dtype, shape and bytes."""
    arr = np.asarray(arr)
    return arr.dtype.str, arr.shape, hashlib.sha1(np.ascontiguousarray(arr).tobytes()).digest()


def consumer_counts(graph: Graph) -> dict:
    """value -> how many node inputs read it, plus one per graph output naming it."""
    count: dict = {}
    for n in graph.nodes:
        for v in n.inputs:
            if v:
                count[v] = count.get(v, 0) + 1
    for v in graph.outputs:
        count[v] = count.get(v, 0) + 1
    return count


class Rewriter:
    """Builds the graph that replaces ``graph`` (see the module docstring)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes: list = []
        self.consts: dict = dict(graph.initializers)
        self.types: dict = dict(graph.values)
        self.alias: dict = {}  # replaced value -> the value that stands for it now
        self.producer: dict = {}  # value -> the emitted node that computes it
        self.changed = False
        self._node_names = {n.name for n in graph.nodes}
        self._retired: set = set()  # ids of emitted nodes taken back (see ``retract``)

    # -- queries ----------------------------------------------------------------------------
    @functools.cached_property
    def uses(self) -> dict:
        """value -> how often the *input* graph reads it (see ``consumer_counts``)."""
        return consumer_counts(self.graph)

    def resolve(self, value: str) -> str:
        while value in self.alias:
            value = self.alias[value]
        return value

    def const(self, value: str):
        """The array of a constant value (after renames), else None."""
        return self.consts.get(self.resolve(value)) if value else None

    def type(self, value: str) -> TensorType:
        return self.types[self.resolve(value)]

    def produced_by(self, value: str) -> Node | None:
        """The emitted node computing ``value`` (after renames), if any."""
        node = self.producer.get(self.resolve(value))
        return None if node is None or id(node) in self._retired else node

    # -- names ------------------------------------------------------------------------------
    def fresh_value(self, base: str, ty: TensorType) -> str:
        name, k = base, 1
        while name in self.types or name in self.consts:
            name, k = f"{base}_{k}", k + 1
        self.types[name] = ty
        return name

    def fresh_node_name(self, base: str) -> str:
        name, k = base, 1
        while name in self._node_names:
            name, k = f"{base}_{k}", k + 1
        self._node_names.add(name)
        return name

    def add_const(self, array, base: str) -> str:
        """A new constant (an initializer) holding ``array``; returns its value name."""
        array = np.asarray(array)
        name = self.fresh_value(base, TensorType(array.shape, array.dtype))
        self.consts[name] = array
        self.changed = True
        return name

    # -- building ---------------------------------------------------------------------------
    def renamed(self, node: Node) -> Node:
        """``node`` reading the values that replace its inputs (a fused group's subgraph is
        renamed with it, so the two keep the same inputs)."""
        mapping = {v: self.resolve(v) for v in node.inputs if v and self.resolve(v) != v}
        return rename_inputs(node, mapping) if mapping else node

    def emit(self, node: Node) -> Node:
        """Append ``node`` with its inputs renamed through the replacements made so far."""
        node = self.renamed(node)
        self.nodes.append(node)
        self._node_names.add(node.name)
        for v in node.outputs:
            if v:
                self.producer[v] = node
        return node

    def release(self, name: str):
        """The original node called ``name`` is being rewritten: a replacement may reuse its
        name (it is taken again if the node is emitted as it is)."""
        self._node_names.discard(name)

    def new_node(self, op_type: str, inputs, outputs, attrs=None, name: str = "") -> Node:
        """Emit a node this pass creates (a fresh name derived from ``name``)."""
        self.changed = True
        return self.emit(Node(op_type, self.fresh_node_name(name or op_type), tuple(inputs),
                              tuple(outputs), attrs or {}))

    def forward(self, old: str, new: str):
        """Every later use of ``old`` reads ``new`` instead (they hold equal data)."""
        new = self.resolve(new)
        if old != new:
            self.alias[old] = new
            self.changed = True

    def retract(self, node: Node):
        """Take back an emitted node (a later node replaces it, e.g. a conv whose weights a
        batch norm folds into)."""
        self._retired.add(id(node))
        self._node_names.discard(node.name)  # its replacement may take the name over
        self.changed = True

    def finish(self, **changes) -> Graph:
        """The new graph: graph outputs bound to their replacements, dead nodes dropped,
        constants and types pruned to what is still used."""
        nodes = [n for n in self.nodes if id(n) not in self._retired]
        nodes, outputs = self._bind_outputs(nodes)
        graph = self.graph.replace(nodes=nodes, outputs=outputs,
                                   initializers=self.consts, values=self.types, **changes)
        return prune(graph)

    def _bind_outputs(self, nodes: list) -> tuple:
        """Graph outputs keep their names: a replaced output ``y`` now standing for ``x``
        renames ``x`` to ``y`` when a node computes ``x`` and nothing else pins the name;
        otherwise an Identity copies ``x`` into ``y``."""
        outputs = list(self.graph.outputs)
        pinned = set(self.graph.inputs) | set(self.consts) | set(outputs)
        for y in outputs:
            x = self.resolve(y)
            if x == y:
                continue
            makers = [n for n in nodes if x in n.outputs]
            if makers and x not in pinned:
                nodes = [_rename(n, x, y) for n in nodes]
                self.types[y] = self.types[x]
                pinned.add(y)
                continue
            nodes.append(Node("Identity", self.fresh_node_name(f"{y}_identity"), (x,), (y,)))
            self.changed = True
        return nodes, outputs


def rename_inputs(node: Node, mapping: dict) -> Node:
    """``node`` with its inputs renamed by ``mapping``; a fused group's subgraph too (inputs
    that become equal are merged)."""
    def ren(v):
        return mapping.get(v, v) if v else v

    if not node.is_fused:
        return node.replace(inputs=tuple(ren(v) for v in node.inputs))
    sub = node.subgraph
    inputs = tuple(dict.fromkeys(ren(v) for v in sub.inputs))
    sub = sub.replace(nodes=[m.replace(inputs=tuple(ren(v) for v in m.inputs))
                             for m in sub.nodes],
                      inputs=inputs, values={ren(k): t for k, t in sub.values.items()})
    return node.replace(inputs=inputs, subgraph=sub)


def _rename(node: Node, old: str, new: str) -> Node:
    """``node`` with the value ``old`` called ``new`` wherever it reads or writes it (inside
    a fused group's subgraph too)."""
    inputs = tuple(new if v == old else v for v in node.inputs)
    outputs = tuple(new if v == old else v for v in node.outputs)
    if inputs == node.inputs and outputs == node.outputs:
        return node
    sub = node.subgraph
    if sub is not None:
        sub = sub.replace(nodes=[_rename(m, old, new) for m in sub.nodes], inputs=inputs,
                          outputs=outputs,
                          values={new if k == old else k: t for k, t in sub.values.items()})
    return node.replace(inputs=inputs, outputs=outputs, subgraph=sub)


def live_nodes(graph: Graph) -> list:
    """The nodes some graph output depends on, in graph order."""
    needed = set(graph.outputs)
    keep = []
    for n in reversed(graph.nodes):
        if any(v in needed for v in n.outputs if v):
            keep.append(n)
            needed.update(v for v in n.inputs if v)
    return keep[::-1]


def prune(graph: Graph) -> Graph:
    """``graph`` without dead nodes, unused constants and types of values nothing touches
    (a fused group's inner values live in its subgraph's ``values``)."""
    nodes = live_nodes(graph)
    used = {v for n in nodes for v in n.inputs if v} | set(graph.outputs)
    touched = used | set(graph.inputs) | {v for n in nodes for v in n.outputs if v}
    return graph.replace(nodes=nodes,
                         initializers={k: a for k, a in graph.initializers.items() if k in used},
                         values={k: t for k, t in graph.values.items() if k in touched})

"""The network IR: a ``Graph`` of ``Node``s over named values, in topological order.

Values are named by strings (the ONNX tensor names, kept as they are: they are data, never
code). Every value has a ``TensorType`` (static shape + numpy dtype name) in
``graph.values``; constants (weights, folded shape tensors) are numpy arrays in
``graph.initializers``. Graph and Node are treated as immutable: passes are plain functions
``Graph -> Graph`` that build new ones with ``replace``.

A fused group is a Node of op_type ``"Fused"`` whose ``subgraph`` holds the group's nodes.
The subgraph uses the outer graph's value names: ``node.inputs == subgraph.inputs`` and
``node.outputs == subgraph.outputs``; its ``values`` cover every value it touches, and its
``initializers`` may hold constants private to the group. The executor builds ONE kernel for
a fused node from the te graph of all its inner nodes (``fuse_nodes`` makes such a node).
"""

from __future__ import annotations

import dataclasses
import heapq
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import GraphError

FUSED = "Fused"


@dataclass(frozen=True)
class TensorType:
    """The static type of a value: a shape of Python ints and a numpy dtype name."""

    shape: tuple
    dtype: str

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __str__(self):
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"


def _frozen_attrs(attrs) -> Mapping:
    return types.MappingProxyType(dict(attrs or {}))


@dataclass(frozen=True, eq=False)
class Node:
    """One operation: ``outputs = op_type[attrs](inputs)``. An omitted optional input is
    ``""``, as in ONNX. ``subgraph`` is set only for ``"Fused"`` nodes."""

    op_type: str
    name: str
    inputs: tuple
    outputs: tuple
    attrs: Mapping = field(default_factory=dict)
    subgraph: Graph | None = None

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "attrs", _frozen_attrs(self.attrs))

    def replace(self, **changes) -> Node:
        return dataclasses.replace(self, **changes)

    @property
    def is_fused(self) -> bool:
        return self.op_type == FUSED

    def __str__(self):
        return "\n".join(_node_lines(self, None, ""))


@dataclass(frozen=True, eq=False)
class Graph:
    """``nodes`` in topological order; ``inputs`` are the values fed at run time (never
    initializers), ``outputs`` the values returned; ``values`` types every value (inputs,
    initializers, node outputs). Node semantics are those of ONNX at ``opset``."""

    nodes: tuple
    inputs: tuple
    outputs: tuple
    values: Mapping
    initializers: Mapping = field(default_factory=dict)
    name: str = "graph"
    opset: int = 0  # the model's ai.onnx opset: converters read opset-dependent defaults

    def __post_init__(self):
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "values", types.MappingProxyType(dict(self.values)))
        object.__setattr__(self, "initializers",
                           types.MappingProxyType(dict(self.initializers)))

    # -- queries ---------------------------------------------------------------------------
    def type_of(self, value: str) -> TensorType:
        try:
            return self.values[value]
        except KeyError:
            raise GraphError(f"graph {self.name!r} has no value named {value!r}") from None

    def producers(self) -> dict:
        """value name -> the node that computes it."""
        return {out: n for n in self.nodes for out in n.outputs if out}

    def consumers(self) -> dict:
        """value name -> the nodes that read it (in graph order; a node reading a value twice
        is listed once)."""
        out: dict = {}
        for n in self.nodes:
            for v in dict.fromkeys(i for i in n.inputs if i):
                out.setdefault(v, []).append(n)
        return out

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise GraphError(f"graph {self.name!r} has no node named {name!r}")

    def is_constant(self, value: str) -> bool:
        return value in self.initializers

    # -- building new graphs ---------------------------------------------------------------
    def copy(self) -> Graph:
        """A graph with fresh containers (arrays are shared: they are never written)."""
        return dataclasses.replace(self)

    def replace(self, **changes) -> Graph:
        """A new graph with fields replaced; new ``nodes`` are put in topological order
        (ties keep the given order) and a cycle raises ``GraphError``."""
        if "nodes" in changes:
            avail = set(changes.get("inputs", self.inputs))
            avail |= set(changes.get("initializers", self.initializers))
            changes["nodes"] = toposort(changes["nodes"], avail)
        return dataclasses.replace(self, **changes)

    def validate(self) -> Graph:
        """Check the invariants (types known, every input defined before use, one producer
        per value, outputs defined); returns the graph, raises ``GraphError`` naming the
        node or value at fault."""
        defined = set(self.inputs) | set(self.initializers)
        for v in self.inputs:
            if v in self.initializers:
                raise GraphError(f"graph {self.name!r}: {v!r} is both an input and an "
                                 "initializer")
        for n in self.nodes:
            for v in n.inputs:
                if v and v not in defined:
                    raise GraphError(f"node {n.name!r} ({n.op_type}) reads {v!r}, which no "
                                     "earlier node, input or initializer defines")
            for v in n.outputs:
                if v and v in defined:
                    raise GraphError(f"node {n.name!r} ({n.op_type}) writes {v!r}, which is "
                                     "already defined")
                if v:
                    defined.add(v)
            if n.is_fused:
                _check_fused(n)
        for v in self.outputs:
            if v not in defined:
                raise GraphError(f"graph {self.name!r}: output {v!r} is never computed")
        for v in defined:
            if v not in self.values:
                raise GraphError(f"graph {self.name!r}: value {v!r} has no type")
        return self

    def __str__(self):
        return "\n".join(_graph_lines(self, ""))


def _check_fused(node: Node):
    sub = node.subgraph
    if sub is None:
        raise GraphError(f"fused node {node.name!r} has no subgraph")
    if sub.inputs != node.inputs or sub.outputs != node.outputs:
        raise GraphError(f"fused node {node.name!r}: its inputs/outputs must equal its "
                         "subgraph's")
    sub.validate()


def toposort(nodes: Iterable[Node], available: Iterable[str] = ()) -> tuple:
    """``nodes`` ordered so every node comes after the producers of its inputs; among ready
    nodes the given order is kept. Values in ``available`` (and values nobody produces) are
    ready from the start. A cycle raises ``GraphError`` naming the nodes on it."""
    nodes = list(nodes)
    producer = {}
    for n in nodes:
        for v in n.outputs:
            if v:
                if v in producer:
                    raise GraphError(f"value {v!r} is written by both node "
                                     f"{producer[v].name!r} and node {n.name!r}")
                producer[v] = n
    ready_values = set(available)
    waiting = {id(n): {v for v in n.inputs if v and v in producer and v not in ready_values}
               for n in nodes}
    readers: dict = {}
    for n in nodes:
        for v in waiting[id(n)]:
            readers.setdefault(v, []).append(n)
    position = {id(n): k for k, n in enumerate(nodes)}
    heap = [(position[id(n)], id(n), n) for n in nodes if not waiting[id(n)]]
    heapq.heapify(heap)
    order = []
    while heap:
        _, _, n = heapq.heappop(heap)
        order.append(n)
        for v in n.outputs:
            for r in readers.get(v, ()):
                waiting[id(r)].discard(v)
                if not waiting[id(r)]:
                    heapq.heappush(heap, (position[id(r)], id(r), r))
    if len(order) != len(nodes):
        stuck = [n for n in nodes if waiting[id(n)]]
        raise GraphError("the graph has a cycle through node(s) "
                         + ", ".join(f"{n.name!r} ({n.op_type})" for n in _cycle(stuck, producer)))
    return tuple(order)


def _cycle(stuck: list, producer: dict) -> list:
    """One cycle among the stuck nodes (walking producers from any of them)."""
    seen: dict = {}
    n = stuck[0]
    stuck_ids = {id(s) for s in stuck}
    while id(n) not in seen:
        seen[id(n)] = len(seen)
        n = next(producer[v] for v in n.inputs if v in producer and id(producer[v]) in stuck_ids)
    path = list(seen)
    start = seen[id(n)]
    by_id = {id(s): s for s in stuck}
    return [by_id[i] for i in path[start:]]


def fuse_nodes(graph: Graph, names: Iterable[str], name: str | None = None,
               attrs: Mapping | None = None) -> Graph:
    """``graph`` with the nodes called ``names`` replaced by one ``"Fused"`` node (at the
    position of the last of them). Its inputs are the values the group reads but does not
    compute (weights included: they become kernel arguments); its outputs are the values it
    computes that are read outside it or are graph outputs."""
    names = list(dict.fromkeys(names))
    members = [n for n in graph.nodes if n.name in set(names)]
    if len(members) != len(names):
        missing = set(names) - {n.name for n in members}
        raise GraphError(f"fuse_nodes: no node(s) named {sorted(missing)}")
    inside = {id(n) for n in members}
    made = {v for n in members for v in n.outputs if v}
    reads = [v for n in members for v in n.inputs if v and v not in made]
    inputs = tuple(dict.fromkeys(reads))
    used_outside = {v for n in graph.nodes if id(n) not in inside for v in n.inputs}
    outputs = tuple(v for n in members for v in n.outputs
                    if v and (v in used_outside or v in graph.outputs))
    touched = set(inputs) | made
    sub = Graph(nodes=members, inputs=inputs, outputs=outputs,
                values={v: graph.values[v] for v in touched if v in graph.values},
                name=name or "fused", opset=graph.opset)
    fused = Node(FUSED, name or "fused_" + "_".join(names), inputs, outputs, attrs or {},
                 subgraph=sub)
    last = max(k for k, n in enumerate(graph.nodes) if id(n) in inside)
    nodes = [fused if k == last else n for k, n in enumerate(graph.nodes)
             if id(n) not in inside or k == last]
    return graph.replace(nodes=nodes)


# -- printing ------------------------------------------------------------------------------

_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/-]*\Z")


def _v(name: str) -> str:
    """A value name as printed: %name, quoted when it has odd characters."""
    if not name:
        return "_"
    return "%" + name if _SIMPLE.match(name) else "%" + repr(name)


def _attr(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= 4:
            return f"{value.dtype}{value.tolist()}"
        return f"<{value.dtype}{list(value.shape)}>"
    if isinstance(value, float):
        return repr(round(value, 6))
    return repr(value)


def _node_lines(n: Node, g: Graph | None, indent: str) -> list:
    outs = ", ".join(_v(o) + (f": {g.values[o]}" if g and o in g.values else "")
                     for o in n.outputs)
    attrs = ", ".join(f"{k}={_attr(v)}" for k, v in n.attrs.items())
    line = f"{indent}{outs} = {n.op_type}{'[' + attrs + ']' if attrs else ''}(" \
           f"{', '.join(_v(i) for i in n.inputs)})  # {n.name!r}"
    lines = [line]
    if n.subgraph is not None:
        lines += _graph_lines(n.subgraph, indent + "    ")
    return lines


def _graph_lines(g: Graph, indent: str) -> list:
    ins = ", ".join(f"{_v(i)}: {g.values.get(i, '?')}" for i in g.inputs)
    lines = [f"{indent}graph {g.name!r} ({ins}) -> ({', '.join(_v(o) for o in g.outputs)})"]
    for k, arr in g.initializers.items():
        lines.append(f"{indent}  const {_v(k)}: {TensorType(arr.shape, arr.dtype)}")
    for n in g.nodes:
        lines += _node_lines(n, g, indent + "  ")
    return lines

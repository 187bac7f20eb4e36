"""Operator fusion in the manner of Relay's FuseOps: groups of nodes that become one kernel
each (``"Fused"`` nodes, see ``graph.ir``).

Every node gets a kind from the tags of the te stages its converter builds (``te.ops.tags``):
elemwise < broadcast < injective < reduce < anchor (conv, dense, matmul, pools, softmax,
layer_norm: an op with its own schedule), and opaque for anything else (never fused).

Groups grow along post-dominators. For a node P, D is the first node every path from P to a
graph output goes through; the nodes between them can only be read inside P..D, so P's
group, D and everything in between can become one kernel without materializing anything
but D's outputs. The merge happens when the union is a valid group:

* at most one anchor, and then every other member is elementwise or broadcast and computed
  from the anchor (an epilogue: bias, activation, residual add, GELU). An anchor never takes
  a prologue: its input would be recomputed for every tap of its window or row.
* without an anchor, reductions may be chained with elementwise ops between them and before
  them (softmax or layer norm written as separate nodes, a residual add before it), and
  injective ops may feed them (a transpose before a reduction) but not follow them.
* without reductions: any chain of injective, broadcast and elementwise ops.
* no path leaves the group and comes back (a cycle between kernels), and at most
  ``MAX_GROUP`` nodes (one kernel must stay quick to compile).

A value read outside its group is one of the group's outputs and stays materialized;
merging along post-dominators only ever exposes the last node's outputs.
"""

from __future__ import annotations

import enum
from functools import reduce

from te.ops import tags
from te.tensor import ComputeOp, PlaceholderOp

from ..convert import lower
from ..errors import GraphError
from ..ir import FUSED, Graph, Node, fuse_nodes
from .rewrite import prune

MAX_GROUP = 40


class Kind(enum.IntEnum):
    """How a node combines with others, from the most to the least fusable."""

    ELEMWISE = 0
    BROADCAST = 1
    INJECTIVE = 2
    REDUCE = 3
    ANCHOR = 4
    OPAQUE = 5


def node_kind(graph: Graph, node: Node) -> Kind:
    """The kind of ``node`` from the tags of the stages it lowers to."""
    if node.is_fused:
        return Kind.OPAQUE
    try:
        lowered = lower(graph, node)
    except GraphError:
        return Kind.OPAQUE
    ranks, anchors = [], 0
    seen: set = set()
    stack = [t.op for _, t in lowered.results]
    while stack:
        op = stack.pop()
        if id(op) in seen:
            continue
        seen.add(id(op))
        if isinstance(op, PlaceholderOp):
            continue
        if not isinstance(op, ComputeOp):
            return Kind.OPAQUE
        rank = tags.pattern_rank(op.tag)
        if rank < 0:
            return Kind.OPAQUE
        anchors += rank == 4
        ranks.append(rank)
        stack.extend(t.op for t in op.input_tensors)
    if anchors > 1:
        return Kind.OPAQUE
    return Kind(max(ranks, default=0))


def fuse_ops(graph: Graph, max_group: int = MAX_GROUP) -> Graph:
    """``graph`` with every group of two or more nodes replaced by one ``"Fused"`` node (see
    the module docstring for which nodes group together)."""
    nodes = list(graph.nodes)
    kinds = [node_kind(graph, n) for n in nodes]
    groups = _Groups(nodes, kinds, graph.outputs, max_group)
    for p in range(len(nodes)):
        if kinds[p] != Kind.OPAQUE:
            groups.grow(p)
    fused = graph
    for members in groups.collect():
        names = [nodes[i].name for i in members]
        master = min(members, key=lambda i: (-kinds[i], i))
        pattern = "+".join(nodes[i].op_type for i in members)
        name = _unique(f"fused_{nodes[master].name}", {n.name for n in fused.nodes})
        fused = fuse_nodes(fused, names, name=name, attrs={"pattern": pattern})
    return prune(fused) if fused is not graph else graph


def _unique(name: str, taken: set) -> str:
    base, k = name, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


class _Groups:
    """Union-find over node indices with the validity rules of the module docstring."""

    def __init__(self, nodes, kinds, graph_outputs, max_group):
        self.nodes, self.kinds, self.max_group = nodes, kinds, max_group
        n = len(nodes)
        producer = {v: i for i, nd in enumerate(nodes) for v in nd.outputs if v}
        self.succ = [set() for _ in range(n)]
        self.pred = [set() for _ in range(n)]
        for i, nd in enumerate(nodes):
            for v in nd.inputs:
                if v in producer:
                    self.succ[producer[v]].add(i)
                    self.pred[i].add(producer[v])
        exits = set(graph_outputs)
        self.sink = n
        self.ipdom, self.depth = _post_dominators(self.succ, [
            any(v in exits for v in nd.outputs) for nd in nodes])
        self.group = list(range(n))  # every node leads its own group at first
        self.members = {i: {i} for i in range(n)}

    def find(self, i: int) -> int:
        while self.group[i] != i:
            self.group[i] = self.group[self.group[i]]
            i = self.group[i]
        return i

    def grow(self, p: int):
        """Merge p's group with everything up to p's immediate post-dominator, if valid."""
        d = self.ipdom[p]
        if d == self.sink or self.find(d) == self.find(p):
            return
        region = self._between(p, d) | {d}
        union = set(self.members[self.find(p)])
        for x in region:
            union |= self.members[self.find(x)]
        if len(union) > self.max_group or not self._valid(union):
            return
        root = self.find(p)
        for x in union:
            r = self.find(x)
            if r != root:
                self.group[r] = root
                self.members[root] |= self.members.pop(r)

    def _between(self, p: int, d: int) -> set:
        """Nodes on the paths from p to d (both excluded): p's descendants before d."""
        found, stack = set(), [p]
        while stack:
            for c in self.succ[stack.pop()]:
                if c < d and c not in found:
                    found.add(c)
                    stack.append(c)
        return found

    def _reach(self, start: int, within: set) -> set:
        found, stack = set(), [start]
        while stack:
            for c in self.succ[stack.pop()]:
                if c in within and c not in found:
                    found.add(c)
                    stack.append(c)
        return found

    def _valid(self, union: set) -> bool:
        kinds = {i: self.kinds[i] for i in union}
        if any(k == Kind.OPAQUE for k in kinds.values()):
            return False
        anchors = [i for i, k in kinds.items() if k == Kind.ANCHOR]
        if len(anchors) > 1:
            return False
        if anchors:
            a = anchors[0]
            after = self._reach(a, union)
            if any(i != a and (i not in after or k > Kind.BROADCAST)
                   for i, k in kinds.items()):
                return False
        else:
            after_reduce: set = set()
            for i, k in kinds.items():
                if k == Kind.REDUCE:
                    after_reduce |= self._reach(i, union)
            if any(kinds[i] == Kind.INJECTIVE for i in after_reduce):
                return False
        return self._convex(union)

    def _convex(self, union: set) -> bool:
        """No path leaves ``union`` and re-enters it (that would be a cycle of kernels)."""
        last = max(union)
        outside, stack = set(), [c for i in union for c in self.succ[i] if c not in union]
        while stack:
            x = stack.pop()
            if x in outside or x > last:
                continue
            outside.add(x)
            for c in self.succ[x]:
                if c in union:
                    return False
                stack.append(c)
        return True

    def collect(self) -> list:
        """The groups of two or more nodes, each as sorted node indices."""
        return [sorted(m) for m in self.members.values() if len(m) > 1]


def _post_dominators(succ: list, is_output: list) -> tuple:
    """(immediate post-dominator, depth in the post-dominator tree) of every node of a DAG
    in topological order; the virtual sink (index n) post-dominates the graph outputs."""
    n = len(succ)
    ipdom = [n] * (n + 1)
    depth = [0] * (n + 1)

    def lca(a: int, b: int) -> int:
        while a != b:
            if depth[a] < depth[b]:
                b = ipdom[b]
            else:
                a = ipdom[a]
        return a

    for i in reversed(range(n)):
        targets = list(succ[i])
        if is_output[i] or not targets:
            ipdom[i] = n
        else:
            ipdom[i] = reduce(lca, targets)
        depth[i] = depth[ipdom[i]] + 1
    return ipdom, depth


__all__ = ["FUSED", "MAX_GROUP", "Kind", "fuse_ops", "node_kind"]

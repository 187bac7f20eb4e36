"""Memory planning for the graph executor: which storage block, at which byte offset, holds
each value the kernels write (Relay's GraphPlanMemory, with concat and view elimination).

Values computed by nodes (graph outputs included) share storage blocks by liveness over
the executor's order (``graph.nodes``): a value lives from the step that writes it to the
last step that reads it (graph outputs to the end); a block is reused once its value is
dead, never by the step that last reads it (a kernel's inputs and outputs never overlap).
A value takes the smallest free block that fits; else the largest free one grows; else a
new block is made. Graph inputs and constants keep their own buffers.

Some nodes need no kernel at all, because their output is a view of memory that already
holds the data (``MemoryPlan.elided``):

* Reshape, Flatten, Squeeze, Unsqueeze, Identity: the output is the input's bytes;
* Slice (steps of 1) and Split along an axis with only size-1 axes before it: each output
  is a contiguous range of the input;
* Concat along such an axis: its producers write straight into their range of the output
  (the concat is eliminated), when every input is computed by a kernel of its own, appears
  once, and is not already placed in another concat.

A kernel reads and writes plain C-contiguous arrays, so every view is an ordinary array
over the block's bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph, Node

ALIGN = 64  # bytes: a cache line, and a whole zmm register of floats
_RESHAPES = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})


@dataclass(frozen=True)
class MemoryPlan:
    """Where each planned value lives: ``placement[value] = (block, byte offset)`` in blocks
    of ``block_bytes``; ``elided`` names the nodes whose outputs are views (no kernel)."""

    block_bytes: tuple
    placement: Mapping
    elided: frozenset = field(default_factory=frozenset)
    naive_bytes: int = 0  # one (aligned) buffer per planned value, as without a plan

    @property
    def planned_bytes(self) -> int:
        return sum(self.block_bytes)

    def allocate(self, graph: Graph, empty_bytes=None) -> dict:
        """value -> array for every planned value (views into freshly allocated blocks).
        ``empty_bytes(n)`` makes a block of ``n`` bytes (a 1-d uint8 array, aligned); the
        default is host memory, the cuda target passes a device allocator."""
        blocks = [(empty_bytes or _aligned_host_bytes)(size) for size in self.block_bytes]
        out = {}
        for value, (block, offset) in self.placement.items():
            ty = graph.values[value]
            nbytes = ty.size * np.dtype(ty.dtype).itemsize
            flat = blocks[block][offset:offset + nbytes].view(ty.dtype)
            out[value] = flat.reshape(ty.shape)
        return out

    def __str__(self):
        saved = 1.0 - self.planned_bytes / self.naive_bytes if self.naive_bytes else 0.0
        return (f"memory plan: {len(self.placement)} values in {len(self.block_bytes)} blocks, "
                f"{_mib(self.planned_bytes)} planned vs {_mib(self.naive_bytes)} naive "
                f"({saved:.0%} saved), {len(self.elided)} copy node(s) elided")


def _aligned_host_bytes(size: int) -> np.ndarray:
    raw = np.empty(size + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + size]


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def _nbytes(graph: Graph, value: str) -> int:
    ty = graph.values[value]
    return ty.size * np.dtype(ty.dtype).itemsize


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def plan_memory(graph: Graph, views: bool = True) -> MemoryPlan:
    """The memory plan of ``graph`` (see the module docstring); ``views=False`` plans
    without eliding any node."""
    nodes = graph.nodes
    producer = {v: k for k, n in enumerate(nodes) for v in n.outputs if v}
    planned = [v for n in nodes for v in n.outputs if v]
    # parent[v] = (value whose memory v lives in, byte offset there)
    parent: dict = {}
    elided: set = set()
    if views:
        _find_views(graph, producer, parent, elided)

    def root(v):
        offset = 0
        while v in parent:
            v, off = parent[v]
            offset += off
        return v, offset

    last_use = {v: producer[v] for v in planned}
    for k, n in enumerate(nodes):
        if n.name in elided:
            continue
        for v in n.inputs:
            if v in last_use:
                last_use[v] = max(last_use[v], k)
    for v in graph.outputs:
        if v in last_use:
            last_use[v] = len(nodes)
    # a block owner lives from its first write to the last read of anything inside it
    span: dict = {}
    for v in planned:
        owner, _ = root(v)
        first = producer[v] if nodes[producer[v]].name not in elided else math.inf
        lo, hi = span.get(owner, (math.inf, -1))
        span[owner] = (min(lo, first), max(hi, last_use[v]))
    owners = sorted(span, key=lambda o: (span[o][0], producer[o]))
    size = {o: _aligned(_nbytes(graph, o)) for o in owners}
    block_of, block_bytes = _assign(owners, span, size)
    placement = {}
    for v in planned:
        owner, offset = root(v)
        placement[v] = (block_of[owner], offset)
    naive = sum(_aligned(_nbytes(graph, v)) for v in planned)
    return MemoryPlan(tuple(block_bytes), placement, frozenset(elided), naive)


def _assign(owners: list, span: dict, size: dict) -> tuple:
    """Greedy block assignment over the owners' live ranges (sorted by first write)."""
    block_bytes: list = []
    block_of: dict = {}
    free: list = []  # block ids
    ending: dict = {}  # step -> blocks whose owner's last read is that step
    released_until = -1
    for owner in owners:
        start, end = span[owner]
        start = 0 if start == math.inf else start
        # blocks whose owner was last read before this step are free now
        for step in range(released_until + 1, start):
            free.extend(ending.pop(step, ()))
        released_until = max(released_until, start - 1)
        need = size[owner]
        fits = [b for b in free if block_bytes[b] >= need]
        if fits:
            b = min(fits, key=lambda b: block_bytes[b])
        elif free:
            b = max(free, key=lambda b: block_bytes[b])
            block_bytes[b] = need  # grows: it was smaller than every fitting candidate
        else:
            b = len(block_bytes)
            block_bytes.append(need)
        if b in free:
            free.remove(b)
        block_of[owner] = b
        ending.setdefault(max(end, start), []).append(b)
    return block_of, block_bytes


# -- views -------------------------------------------------------------------------------------


def _leading_ones(shape, axis: int) -> bool:
    return all(d == 1 for d in shape[:axis])


def _find_views(graph: Graph, producer: dict, parent: dict, elided: set):
    """Fill ``parent`` (value -> (value it lives in, byte offset)) and ``elided``."""
    in_concat: set = set()
    for n in graph.nodes:
        if n.is_fused:
            continue
        if n.op_type in _RESHAPES:
            x = n.inputs[0]
            if x in producer and graph.values[x].size == graph.values[n.outputs[0]].size \
                    and graph.values[x].dtype == graph.values[n.outputs[0]].dtype:
                parent[n.outputs[0]] = (x, 0)
                elided.add(n.name)
        elif n.op_type in ("Slice", "Split"):
            offsets = _range_views(graph, n)
            if offsets is not None and n.inputs[0] in producer:
                for v, off in zip(n.outputs, offsets):
                    if v:
                        parent[v] = (n.inputs[0], off)
                elided.add(n.name)
        elif n.op_type == "Concat":
            offsets = _concat_slots(graph, n, producer, parent, in_concat, elided)
            if offsets is not None:
                for v, off in zip(n.inputs, offsets):
                    parent[v] = (n.outputs[0], off)
                    in_concat.add(v)
                elided.add(n.name)


def _axis(node: Node, rank: int, default: int = 0) -> int:
    a = int(node.attrs.get("axis", default))
    return a + rank if a < 0 else a


def _concat_slots(graph, node, producer, parent, in_concat, elided):
    """Byte offsets of the inputs in the concat's output, if they can be written in place."""
    out = graph.values[node.outputs[0]]
    axis = _axis(node, len(out.shape))
    inputs = list(node.inputs)
    if not _leading_ones(out.shape, axis) or len(set(inputs)) != len(inputs):
        return None
    inner = math.prod(out.shape[axis + 1:]) * np.dtype(out.dtype).itemsize
    offsets, at = [], 0
    for v in inputs:
        if not v or v not in producer or v in in_concat or v in parent:
            return None
        if graph.nodes[producer[v]].name in elided or graph.values[v].dtype != out.dtype:
            return None
        offsets.append(at * inner)
        at += graph.values[v].shape[axis]
    return offsets


def _range_views(graph: Graph, node: Node):
    """Byte offsets of a Slice/Split's outputs in its input when each is one contiguous
    range of it, else None."""
    x = graph.values[node.inputs[0]]
    itemsize = np.dtype(x.dtype).itemsize
    rank = len(x.shape)
    if node.op_type == "Split":
        axis = _axis(node, rank)
        if not _leading_ones(x.shape, axis):
            return None
        inner = math.prod(x.shape[axis + 1:]) * itemsize
        offsets, at = [], 0
        for v in node.outputs:
            offsets.append(at * inner)
            at += graph.values[v].shape[axis] if v else 0
        return offsets if at == x.shape[axis] else None
    out = graph.values[node.outputs[0]]
    changed = [a for a in range(rank) if out.shape[a] != x.shape[a]]
    if len(changed) > 1 or out.size == 0:
        return None
    if not changed:
        return [0] if _unit_steps(graph, node) else None
    axis = changed[0]
    start = _slice_start(graph, node, axis, x.shape[axis])
    if start is None or not _leading_ones(x.shape, axis):
        return None
    return [start * math.prod(x.shape[axis + 1:]) * itemsize]


def _const(graph: Graph, node: Node, i: int):
    if i < len(node.inputs) and node.inputs[i]:
        return graph.initializers.get(node.inputs[i])
    return None


def _unit_steps(graph: Graph, node: Node) -> bool:
    if len(node.inputs) > 4 and node.inputs[4]:
        steps = _const(graph, node, 4)
        return steps is not None and bool(np.all(steps == 1))
    return "starts" in node.attrs or len(node.inputs) > 2  # opset < 10 has no steps


def _slice_start(graph: Graph, node: Node, axis: int, dim: int):
    """The first index a steps-of-1 Slice keeps along ``axis`` (ONNX clamping rules)."""
    if not _unit_steps(graph, node):
        return None
    if "starts" in node.attrs:  # opset < 10: attributes
        starts, axes = node.attrs["starts"], node.attrs.get("axes")
    else:
        starts, axes = _const(graph, node, 1), _const(graph, node, 3)
        if starts is None or (len(node.inputs) > 3 and node.inputs[3] and axes is None):
            return None
    starts = [int(s) for s in np.ravel(starts)]
    rank = len(graph.values[node.inputs[0]].shape)
    axes = list(range(len(starts))) if axes is None else [int(a) for a in np.ravel(axes)]
    axes = [a + rank if a < 0 else a for a in axes]
    if axis not in axes:
        return 0
    s = starts[axes.index(axis)]
    s = s + dim if s < 0 else s
    return min(max(s, 0), dim)


__all__ = ["ALIGN", "MemoryPlan", "plan_memory"]

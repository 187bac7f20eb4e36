"""The pass manager: the default pipeline per optimization level, and a report of what each
pass did (node counts, op types added and removed, time; the memory plan at the end).

    g = graph.optimize(graph.from_onnx("resnet50.onnx"), level=2)
    module = graph.compile("resnet50.onnx", verbose=True)   # prints module.pass_report
"""

from __future__ import annotations

import inspect
import time
from collections import Counter
from dataclasses import dataclass, field

from schedules.registry import normalize_target

from ..errors import GraphError
from ..ir import Graph
from .cleanup import eliminate_common_subexpressions, eliminate_dead_nodes, fold_constants
from .fold_scale import fold_batch_norm
from .fuse import fuse_ops
from .horizontal import fuse_siblings
from .layout import convert_layout
from .simplify import simplify

DEFAULT_LEVEL = 2


def default_passes(target: str = "cpu", level: int = DEFAULT_LEVEL) -> list:
    """The pipeline of ``level``: 0 none; 1 the rewrites that keep one kernel per node
    (folding, simplification, batch-norm folding, CSE, DCE); 2 also horizontal and
    operator fusion (``graph.compile``'s default); 3 also the NCHW{c}c layout for
    convolutions on cpu targets (not yet a win everywhere, see ``graph.passes.layout``)."""
    if level <= 0:
        return []
    passes = [fold_constants, simplify, fold_batch_norm, fold_constants,
              eliminate_common_subexpressions, eliminate_dead_nodes]
    if level >= 2:
        passes.append(fuse_siblings)
        if level >= 3 and normalize_target(target) == "cpu":
            passes.append(convert_layout)
        passes.append(fuse_ops)
    return passes


def optimize(graph: Graph, level: int = DEFAULT_LEVEL, target: str = "cpu",
             report: PassReport | None = None) -> Graph:
    """``graph`` after the default pipeline of ``level`` (see ``default_passes``); what each
    pass did is appended to ``report`` when one is given."""
    return run_passes(graph, default_passes(target, level), target, report)


def pass_name(fn) -> str:
    inner = getattr(fn, "func", fn)  # functools.partial
    return getattr(inner, "__name__", type(inner).__name__)


def _takes_target(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "target" in params or sum(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        for p in params.values()) >= 2


def run_passes(graph: Graph, passes, target: str = "cpu",
               report: PassReport | None = None) -> Graph:
    """Apply ``passes`` in order: functions ``graph -> graph``, or ``(graph, target) ->
    graph`` when they take a ``target``. Each result is validated; an invalid graph raises
    ``GraphError`` naming the pass."""
    for fn in passes or ():
        name = pass_name(fn)
        before = graph
        start = time.perf_counter()
        graph = fn(graph, target=target) if _takes_target(fn) else fn(graph)
        seconds = time.perf_counter() - start
        if not isinstance(graph, Graph):
            raise GraphError(f"pass {name!r} returned {type(graph).__name__}, not a Graph")
        try:
            graph.validate()
        except GraphError as err:
            raise GraphError(f"pass {name!r} produced an invalid graph: {err}") from None
        if report is not None:
            report.add(name, before, graph, seconds)
    return graph


@dataclass
class PassRecord:
    """What one pass did: node counts, op types added/removed (``changes``), seconds."""

    name: str
    nodes_before: int
    nodes_after: int
    seconds: float
    changes: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes) or self.nodes_before != self.nodes_after


def _ops(graph: Graph) -> Counter:
    """Op types of the graph, counting the members of fused groups as themselves."""
    found: Counter = Counter()
    for n in graph.nodes:
        found[n.op_type] += 1
        if n.is_fused:
            found.update(m.op_type + "*" for m in n.subgraph.nodes)  # * = inside a group
    return found


@dataclass
class PassReport:
    """The passes ``graph.compile`` ran and the memory plan it used (``module.pass_report``;
    ``print`` it, or ``compile(..., verbose=True)``)."""

    records: list = field(default_factory=list)
    memory: object = None  # the executor's MemoryPlan, when compile planned one

    def add(self, name: str, before: Graph, after: Graph, seconds: float):
        delta = _ops(after)
        delta.subtract(_ops(before))
        changes = {op: n for op, n in sorted(delta.items()) if n}
        self.records.append(PassRecord(name, len(before.nodes), len(after.nodes), seconds,
                                       changes))

    @property
    def fused_groups(self) -> int:
        return sum(r.changes.get("Fused", 0) for r in self.records)

    def __str__(self):
        width = max([len(r.name) for r in self.records] + [4])
        lines = [f"{'pass':<{width}}  {'nodes':>13}  {'ms':>8}  changes"]
        for r in self.records:
            shown = ", ".join(f"{op} {n:+d}" for op, n in r.changes.items()
                              if not op.endswith("*"))
            lines.append(f"{r.name:<{width}}  {r.nodes_before:>5} -> {r.nodes_after:<5}  "
                         f"{r.seconds * 1e3:8.1f}  {shown or '-'}")
        if self.fused_groups:
            lines.append(f"{self.fused_groups} fused group(s)")
        if self.memory is not None:
            lines.append(str(self.memory))
        return "\n".join(lines)


__all__ = ["DEFAULT_LEVEL", "PassRecord", "PassReport", "default_passes", "optimize",
           "pass_name", "run_passes"]

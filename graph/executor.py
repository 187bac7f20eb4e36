"""The graph executor: one kernel per node (or fused group), run in topological order over
preallocated buffers.

``build_kernels`` lowers each node to a te graph (``convert.lower``), schedules it with
``schedule_for`` and builds it with ``runtime.build``; nodes with the same signature (op,
attributes, input types, baked constants; for a fused group its whole subgraph) share one
compiled kernel. ``GraphModule`` holds the kernels and a buffer per value, and runs them.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass

import numpy as np

import runtime  # noqa: F401 - first, so numba starts with the runtime's environment
from schedules.prologue import hoists_on
from schedules.registry import DispatchContext

from .convert import lower, sanitize
from .errors import GraphError
from .ir import Graph, Node


@dataclass
class KernelCode:
    """A compiled kernel: its source, entry function and how to call it."""

    name: str
    source: str
    target: str
    entry: str
    fn: object  # the Python function (python target) or numba dispatcher (cpu)
    workload: tuple | None = None  # the anchor stage's tuning workload, if any
    build_seconds: float = 0.0
    # what the kernel derives from constants once, at load (see schedules.prologue):
    prologue: "KernelCode | None" = None
    prologue_inputs: tuple = ()  # positions in a step's args of the constants it reads
    prepared: tuple = ()  # (shape, dtype) of each derived array, the last args of a step


@dataclass
class Step:
    """One node (or fused group) of the graph: kernel ``code`` on the buffers ``args``
    (value names, in the kernel's parameter order)."""

    node: str
    op_type: str
    code: int
    args: tuple


@dataclass
class ProfileRow:
    node: str
    op_type: str
    kernel: str
    mean_ms: float
    percent: float


class ProfileTable(list):
    """Per-node times of ``GraphModule.profile``, the slowest first."""

    def __init__(self, rows, total_ms: float, runs: int):
        super().__init__(sorted(rows, key=lambda r: -r.mean_ms))
        self.total_ms = total_ms
        self.runs = runs

    def __str__(self):
        width = max([len(r.node) for r in self] + [4])
        width = min(width, 40)
        lines = [f"{'node':<{width}}  {'op':<18} {'ms':>9} {'%':>6}"]
        for r in self:
            lines.append(f"{r.node[:width]:<{width}}  {r.op_type[:18]:<18} {r.mean_ms:9.4f} "
                         f"{r.percent:6.1f}")
        lines.append(f"{'total':<{width}}  {'':<18} {self.total_ms:9.4f} {100.0:6.1f}"
                     f"   (mean of {self.runs} runs)")
        return "\n".join(lines)

    def by_op_type(self) -> dict:
        """Total milliseconds per op type, the largest first."""
        out: dict = {}
        for r in self:
            out[r.op_type] = out.get(r.op_type, 0.0) + r.mean_ms
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def plot(self, top: int = 20, ax=None):
        """A horizontal bar chart of the ``top`` slowest nodes (needs matplotlib)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("ProfileTable.plot needs matplotlib: pip install matplotlib") \
                from None
        rows = list(self)[:top][::-1]
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1))
        ax.barh([f"{r.node} ({r.op_type})" for r in rows], [r.mean_ms for r in rows])
        ax.set_xlabel("ms per run")
        ax.set_title(f"per-node time, total {self.total_ms:.3f} ms")
        return ax


class GraphModule:
    """A compiled network: ``run({input_name: array})`` returns the outputs as a list."""

    def __init__(self, graph: Graph, codes: list, steps: list, target: str,
                 untuned: tuple = (), memory_plan=None):
        self.graph = graph
        self.codes = list(codes)
        self.steps = list(steps)
        self.target = target
        self.untuned = tuple(untuned)  # workloads the tuning log had no record for
        if memory_plan is None and len(self.steps) < len(graph.nodes):
            # nodes without a step are views that a plan elided (a module loaded from an
            # artifact): the plan is a function of the graph, so it is made again
            from .passes.memory import plan_memory

            memory_plan = plan_memory(graph)
        self.memory_plan = memory_plan  # graph.passes.MemoryPlan: shared storage, views
        # on the cuda target every buffer, weights included, lives on the device: a run
        # copies the inputs in and the outputs out, nothing else crosses the bus
        self.on_device = str(target).split()[0] == "cuda"
        device = None
        if self.on_device:
            from runtime import cuda_env

            device = cuda_env.require_gpu()
        self.buffers = _allocate(graph, memory_plan, device)
        self._run_prologues(device)
        self._calls = [(self.codes[s.code].fn, [self.buffers[v] for v in s.args])
                       for s in self.steps]

    def _run_prologues(self, device):
        """Compute the arrays the kernels derive from constants (packed weights), once;
        steps of one kernel on the same constants share them."""
        for step in self.steps:
            code = self.codes[step.code]
            if code.prologue is None:
                continue
            names = step.args[len(step.args) - len(code.prepared):]
            if names[0] in self.buffers:
                continue
            for name, (shape, dtype) in zip(names, code.prepared):
                self.buffers[name] = (np.empty(shape, dtype) if device is None
                                      else device.device_array(shape, dtype))
            code.prologue.fn(*[self.buffers[step.args[k]] for k in code.prologue_inputs],
                             *[self.buffers[n] for n in names])

    @property
    def input_names(self) -> list:
        return list(self.graph.inputs)

    @property
    def output_names(self) -> list:
        return list(self.graph.outputs)

    def __repr__(self):
        return (f"GraphModule({self.graph.name!r}, target={self.target!r}, "
                f"{len(self.steps)} steps, {len(self.codes)} kernels)")

    def set_inputs(self, inputs: dict | None = None, **kwargs):
        """Copy the inputs (by name) into the module's buffers, checking shape and dtype."""
        feeds = dict(inputs or {}, **kwargs)
        missing = [n for n in self.graph.inputs if n not in feeds]
        if missing:
            raise GraphError(f"missing input(s) {', '.join(map(repr, missing))}; the model "
                             f"takes {', '.join(map(repr, self.graph.inputs))}")
        for name, value in feeds.items():
            if name not in self.graph.inputs:
                raise GraphError(f"{name!r} is not an input of the model (inputs: "
                                 f"{', '.join(map(repr, self.graph.inputs))})")
            ty = self.graph.values[name]
            arr = np.asarray(value)
            if tuple(arr.shape) != ty.shape:
                raise GraphError(f"input {name!r} must have shape {ty.shape}, got "
                                 f"{tuple(arr.shape)}")
            if not np.can_cast(arr.dtype, ty.dtype, casting="same_kind"):
                raise GraphError(f"input {name!r} must have dtype {ty.dtype}, got {arr.dtype}")
            if self.on_device:
                self.buffers[name].copy_to_device(np.ascontiguousarray(arr, dtype=ty.dtype))
            else:
                np.copyto(self.buffers[name], arr, casting="same_kind")

    def execute(self):
        """Run every kernel once on the current buffers (on the cuda target the launches
        are queued: ``outputs()`` waits for them)."""
        for fn, args in self._calls:
            fn(*args)

    def outputs(self) -> list:
        if self.on_device:
            return [self.buffers[v].copy_to_host() for v in self.graph.outputs]
        return [np.array(self.buffers[v], copy=True) for v in self.graph.outputs]

    def run(self, inputs: dict | None = None, **kwargs) -> list:
        """Run the network on ``inputs`` (name -> array); returns fresh output arrays."""
        self.set_inputs(inputs, **kwargs)
        self.execute()
        return self.outputs()

    __call__ = run

    def profile(self, inputs: dict | None = None, runs: int = 10, warmup: int = 1
                ) -> ProfileTable:
        """Per-node wall time (mean over ``runs`` after ``warmup`` runs), slowest first."""
        self.set_inputs(inputs)
        for _ in range(warmup):
            self.execute()
        sync = _device_sync() if self.on_device else (lambda: None)
        sync()
        totals = [0.0] * len(self._calls)
        clock = time.perf_counter
        start = clock()
        for _ in range(runs):
            for k, (fn, args) in enumerate(self._calls):
                t0 = clock()
                fn(*args)
                sync()  # a launch returns at once: wait for it, or the next node pays
                totals[k] += clock() - t0
        total_ms = (clock() - start) * 1e3 / runs
        step_ms = sum(totals) * 1e3 / runs or 1.0
        rows = [ProfileRow(s.node, s.op_type, self.codes[s.code].name, t * 1e3 / runs,
                           100.0 * t * 1e3 / runs / step_ms)
                for s, t in zip(self.steps, totals)]
        return ProfileTable(rows, total_ms, runs)

    def kernel_source(self, node_name: str) -> str:
        """The generated source of the kernel that runs ``node_name``."""
        for s in self.steps:
            if s.node == node_name:
                return self.codes[s.code].source
        raise GraphError(f"no step runs a node named {node_name!r}")

    def save(self, path):
        """Write the compiled artifact (see ``graph.artifact``) to the directory ``path``."""
        from .artifact import save

        save(self, path)


def _allocate(graph: Graph, plan=None, device=None) -> dict:
    """A buffer per value: the planned ones views into shared blocks, constants filled with
    their data. With ``device`` (numba's cuda module) every buffer is a device array: the
    weights are copied over once, here."""
    if device is None:
        upload, empty, empty_bytes = (lambda a: a), np.zeros, None
    else:
        upload, empty = device.to_device, device.device_array
        empty_bytes = lambda n: device.device_array(n, np.uint8)  # noqa: E731
    buffers = plan.allocate(graph, empty_bytes) if plan is not None else {}
    for name, ty in graph.values.items():
        if name in buffers:
            continue
        if name in graph.initializers:
            # np.array, not ascontiguousarray: that one turns 0-d arrays into 1-d ones
            buffers[name] = upload(np.array(graph.initializers[name], dtype=ty.dtype,
                                            order="C"))
        else:
            buffers[name] = empty(ty.shape, dtype=ty.dtype)
    for node in graph.nodes:  # a fused group's private constants are kernel arguments too
        if node.is_fused:
            for name, arr in node.subgraph.initializers.items():
                buffers[name] = upload(np.array(arr, order="C"))
    return buffers


def _device_sync():
    from runtime import cuda_env

    return cuda_env.cuda_module().synchronize


# -- building --------------------------------------------------------------------------------


def _attr_key(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{value.shape}:{hashlib.sha1(value.tobytes()).hexdigest()}"
    return repr(value)


def node_signature(graph: Graph, node: Node, consts_read: dict) -> str:
    """What determines a node's kernel: the structure of its (sub)graph with values renamed
    by first use, attributes, input types and the constants baked into it."""
    ids: dict = {}

    def vid(v):
        if not v:
            return "_"
        if v not in ids:
            ids[v] = f"%{len(ids)}"
        return ids[v]

    types = dict(graph.values)
    nodes = node.subgraph.nodes if node.is_fused else (node,)
    if node.is_fused:
        types.update(node.subgraph.values)
    consts = _constant_names(graph, node)
    # a constant input is part of the signature: its kernel may read a copy made once
    parts = [f"in {vid(v)}:{types[v]}{' const' if v in consts else ''}"
             for v in node.inputs if v]
    for n in nodes:
        attrs = ",".join(f"{k}={_attr_key(v)}" for k, v in sorted(n.attrs.items()))
        parts.append(f"{n.op_type}[{attrs}]({','.join(map(vid, n.inputs))})->"
                     f"{','.join(map(vid, n.outputs))}")
    parts += [f"out {vid(v)}" for v in node.outputs]
    parts += [f"const {vid(v)}={_attr_key(np.asarray(a))}" for v, a in sorted(consts_read.items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def build_kernels(graph: Graph, target: str = "cpu"):
    """(codes, steps, untuned workloads) for every node of ``graph``; builds happen in the
    caller's dispatch context (a tuning log, see ``graph.compile``)."""
    from runtime import build
    from schedules import registry, schedule_for
    from schedules.auto import anchor_op
    from schedules.prologue import split_prologue
    from te.arith import const_int

    codes, steps, by_signature, untuned = [], [], {}, []
    names_used: set = set()
    for node in graph.nodes:
        consts_read: dict = {}
        lowered = lower(graph, node, graph.opset, consts_read)
        key = node_signature(graph, node, consts_read)
        if key not in by_signature:
            outs = [t for _, t in lowered.results]
            name = _unique(f"k_{sanitize(node.name, 'n', 24)}", names_used)
            t0 = time.perf_counter()
            s = _schedule(schedule_for, outs, target, node)
            anchor = anchor_op(outs, target)
            workload = anchor.attrs.get("workload") if anchor is not None else None
            if workload is not None and registry.current_dispatch() is not None \
                    and registry.query_config(target, workload) is None:
                untuned.append(workload)
            split = split_prologue(s, lowered.tensors, _constants(graph, node, lowered, target),
                                   name)
            module = build(split.main, target=target)
            if module.func.scalar_params:
                raise GraphError(f"node {node.name!r}: its kernel has symbolic extents "
                                 f"({module.func.scalar_params})")
            perm = [next(k for k, a in enumerate(module.func.args) if a is p)
                    for p in module.func.params]
            code = _kernel_code(name, module, target, workload)
            if split.prologue is not None:
                code.prologue = _kernel_code(f"{name}_prologue", build(split.prologue,
                                                                         target=target), target)
                code.prologue_inputs = tuple(perm.index(k) for k in split.prologue_inputs)
                code.prepared = tuple((tuple(const_int(d) for d in t.shape), t.dtype)
                                      for t in split.prepared)
            code.build_seconds = time.perf_counter() - t0
            codes.append(code)
            by_signature[key] = (len(codes) - 1, perm)
        index, perm = by_signature[key]
        code = codes[index]
        values = [v for v, _ in lowered.params] + [v for v, _ in lowered.results]
        args = tuple(values[k] for k in perm[:len(perm) - len(code.prepared)])
        if code.prologue is not None:  # named after the kernel and the constants read
            reads = ",".join(args[k] for k in code.prologue_inputs)
            args += tuple(f"{code.name}.prepared{k}({reads})" for k in range(len(code.prepared)))
        steps.append(Step(node.name, node.op_type, index, args))
    return codes, steps, untuned


def _constants(graph: Graph, node: Node, lowered, target: str) -> list:
    """The placeholders of ``node``'s kernel bound to constants (on the cpu targets; a GPU
    kernel's copies of its weights are per block)."""
    if not hoists_on(target):
        return []
    consts = _constant_names(graph, node)
    return [t for v, t in lowered.params if v in consts]


def _constant_names(graph: Graph, node: Node) -> set:
    return set(graph.initializers) | (set(node.subgraph.initializers) if node.is_fused
                                      else set())


def _kernel_code(name: str, module, target: str, workload=None) -> KernelCode:
    fn = module.kernel
    entry = getattr(fn, "__name__", None) or fn.py_func.__name__
    return KernelCode(name, module.source, target, entry, fn, workload)


class _Defaults(DispatchContext):
    """A dispatch context that knows no config: templates use their defaults."""

    def query(self, target, workload):
        return None


def _schedule(schedule_for, outs, target, node):
    """``schedule_for``; a tuning record that no longer fits its template (a log from an
    older tetune) is reported and the template's default config used instead."""
    from schedules.space import ConfigError

    try:
        return schedule_for(outs, target)
    except ConfigError as err:
        warnings.warn(f"node {node.name!r}: the tuning record of its workload does not fit "
                      f"the current template ({err}); using the default config",
                      RuntimeWarning, stacklevel=3)
        with _Defaults():
            return schedule_for(outs, target)


def _unique(name: str, used: set) -> str:
    base, n = name, 1
    while name in used:
        name, n = f"{base}_{n}", n + 1
    used.add(name)
    return name

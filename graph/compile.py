"""``compile``: ONNX model -> ``GraphModule``; ``extract_tasks``: the tuning tasks of a
model.

    module = graph.compile("resnet18.onnx", target="cpu", tuning_log="resnet18.jsonl")
    out, = module.run({"input": x})
    print(module.profile({"input": x}))
    module.save("resnet18.tetune")          # graph.load("resnet18.tetune") runs it again
"""

from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict

from .convert import lower
from .executor import GraphModule, build_kernels
from .ir import Graph
from .onnx_import import from_onnx


def _as_graph(model, input_shapes=None, constants=None) -> Graph:
    if isinstance(model, Graph):
        return model
    return from_onnx(model, input_shapes=input_shapes, constants=constants)


def default_passes(target: str = "cpu", level: int = 2) -> list:
    """The graph pass pipeline ``compile`` runs by default (``graph.passes.default_passes``:
    folding, simplification, batch-norm folding, CSE, DCE, fusion)."""
    from .passes import default_passes as pipeline

    return pipeline(target, level)


def optimize_graph(graph: Graph, target: str, passes="default", report=None) -> Graph:
    """Apply ``passes`` ("default", None for none, or functions ``(graph, target) -> graph``
    or ``graph -> graph``) in order; what each did goes to ``report`` (a
    ``graph.passes.PassReport``) when one is given."""
    from .passes import run_passes

    if passes == "default":
        passes = default_passes(target)
    return run_passes(graph, passes, target, report)


def compile(model, target: str = "cpu", tuning_log=None, input_shapes: dict | None = None,
            constants: dict | None = None, passes="default", memory_plan: bool = True,
            verbose: bool = False, default_logs: bool = True) -> GraphModule:
    """Compile an ONNX model (ModelProto, bytes, path) or a ``Graph`` for ``target``
    ("cpu", "python", or a target string with flags).

    With ``tuning_log`` (a path or list of paths) every kernel build uses the best config the
    log holds for its anchor's workload (``autotune.apply_history_best``); workloads without
    a record use their default config and are listed in ``module.untuned`` and a warning.
    ``default_logs``: the logs shipped with tetune (``tuning_logs/``, tuned on the machine
    class tetune is developed on, like TVM's TopHub) serve the workloads ``tuning_log`` has
    no record of, or every workload when no log is given; ``False`` builds every kernel
    without a log with its template's default config.
    ``input_shapes`` / ``constants`` are passed to ``from_onnx``; ``passes`` to
    ``optimize_graph``. ``memory_plan`` shares buffers between values whose lifetimes do
    not overlap and turns reshapes, contiguous slices and concats into views
    (``graph.passes.plan_memory``). ``module.pass_report`` tells what each pass did and
    the memory plan; ``verbose=True`` prints it.
    """
    from .passes import PassReport, plan_memory

    report = PassReport()
    graph = optimize_graph(_as_graph(model, input_shapes, constants), target, passes, report)
    plan = report.memory = plan_memory(graph) if memory_plan else None
    # the nodes a plan elides are views: they get no kernel
    kernel_graph = graph if plan is None or not plan.elided else graph.replace(
        nodes=[n for n in graph.nodes if n.name not in plan.elided])
    context = contextlib.nullcontext()
    if tuning_log is not None or default_logs:
        from autotune import apply_history_best  # autotune sits above graph's core

        context = apply_history_best(tuning_log, use_default_logs=default_logs)
    with context:
        codes, steps, untuned = build_kernels(kernel_graph, target)
    # without a log of the user's, nothing was asked for that could be missing
    untuned = list(OrderedDict.fromkeys(untuned)) if tuning_log is not None else []
    if untuned:
        from schedules.registry import workload_key

        warnings.warn(f"{len(untuned)} workload(s) have no record in the tuning log and use "
                      "their default config: " + "; ".join(workload_key(w) for w in untuned),
                      stacklevel=2)
    module = GraphModule(graph, codes, steps, target, tuple(untuned), memory_plan=plan)
    module.pass_report = report
    if verbose:
        print(report)
    return module


def extract_tasks(model, target: str = "cpu", input_shapes: dict | None = None,
                  constants: dict | None = None, passes="default") -> list:
    """The tuning tasks of a model: one ``autotune.Task`` per distinct anchor workload, in
    order of first appearance. Each task gets ``task.weight`` (how many nodes of the
    network run it) and ``task.nodes`` (their names). Anchors whose template is not
    registered are skipped with a warning."""
    from autotune import Task
    from schedules.auto import anchor_op
    from schedules.registry import workload_key
    from schedules.space import ConfigError

    graph = optimize_graph(_as_graph(model, input_shapes, constants), target, passes)
    found: OrderedDict = OrderedDict()
    for node in graph.nodes:
        lowered = lower(graph, node)
        anchor = anchor_op([t for _, t in lowered.results], target)
        workload = anchor.attrs.get("workload") if anchor is not None else None
        if workload is None:
            continue
        entry = found.setdefault(workload_key(workload), [workload, []])
        entry[1].append(node.name)
    tasks, skipped = [], []
    for workload, nodes in found.values():
        try:
            task = Task(workload[0], workload[1:], target)
        except ConfigError:
            skipped.append(workload[0])
            continue
        task.weight = len(nodes)
        task.nodes = list(nodes)
        tasks.append(task)
    if skipped:
        warnings.warn(f"no tuning template registered for {sorted(set(skipped))}; those ops "
                      "are not tunable", stacklevel=2)
    return tasks

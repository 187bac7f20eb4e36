"""``tetune tune`` (tune one template on this machine) and ``tetune log`` (show, distil and
plot tuning logs).

``--shape`` is read per template by a rule in ``SHAPE_RULES``: the rule builds the op with
``te.ops`` on placeholders of those sizes, and the task's args are the workload its anchor
stage carries, so a task tuned from the command line is exactly the one a network build
looks up. To make another operator tunable with ``--shape``, add one ``ShapeRule``. Any
template (a user's, loaded with ``--import``) can also take its args as JSON (``--args``).
"""

from __future__ import annotations

import importlib
import json
import runpy
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SHAPE_RULES", "ShapeRule", "add_log_parser", "add_tune_parser", "task_args"]

TUNERS = {"xgb": "XGBTuner", "ga": "GATuner", "random": "RandomTuner",
          "grid": "GridSearchTuner"}


class UsageError(Exception):
    """A command-line argument that cannot be used; the message says which and why."""


# ----------------------------------------------------------------------------- --shape


@dataclass(frozen=True)
class ShapeRule:
    """``usage``: the sizes ``--shape`` takes (``"M,K,N"``; optional ones in brackets);
    ``build(sizes, dtype)``: the op's output built with ``te.ops`` on placeholders."""

    usage: str
    build: Callable

    @property
    def counts(self) -> tuple[int, int]:
        required = self.usage.split("[")[0].strip(",").count(",") + 1
        return required, self.usage.replace("[", "").replace("]", "").count(",") + 1


def _ph(shape, dtype, name):
    import te

    return te.placeholder(tuple(shape), dtype=dtype, name=name)


def _matmul(d, dtype):
    import te

    m, k, n = d
    return te.ops.matmul(_ph((m, k), dtype, "A"), _ph((k, n), dtype, "B"))


def _dense(d, dtype):
    import te

    m, k, n = d
    return te.ops.dense(_ph((m, k), dtype, "X"), _ph((n, k), dtype, "W"))


def _batch_matmul(d, dtype):
    import te

    b, m, k, n = d
    return te.ops.batch_matmul(_ph((b, m, k), dtype, "A"), _ph((b, k, n), dtype, "B"))


def _stride_pad(d, n):
    """The optional stride and padding after the ``n`` sizes of a convolution's --shape."""
    return (d[n] if len(d) > n else 1), (d[n + 1] if len(d) > n + 1 else 0)


def _conv2d(d, dtype):
    import te

    n, c, h, w, o, kh, kw = d[:7]
    stride, pad = _stride_pad(d, 7)
    return te.ops.conv2d(_ph((n, c, h, w), dtype, "data"), _ph((o, c, kh, kw), dtype, "weight"),
                         stride=stride, padding=pad)


def _depthwise_conv2d(d, dtype):
    import te

    n, c, h, w, kh, kw = d[:6]
    stride, pad = _stride_pad(d, 6)
    return te.ops.conv2d(_ph((n, c, h, w), dtype, "data"), _ph((c, 1, kh, kw), dtype, "weight"),
                         stride=stride, padding=pad, groups=c)


def _softmax(d, dtype):
    import te

    m, n = d
    return te.ops.softmax(_ph((m, n), dtype, "x"), axis=-1)


SHAPE_RULES: dict[str, ShapeRule] = {
    "matmul": ShapeRule("M,K,N", _matmul),
    "dense": ShapeRule("M,K,N", _dense),  # X [M, K], W [N, K]
    "batch_matmul": ShapeRule("B,M,K,N", _batch_matmul),
    "conv2d_nchw": ShapeRule("N,C,H,W,O,KH,KW[,stride[,pad]]", _conv2d),
    "depthwise_conv2d_nchw": ShapeRule("N,C,H,W,KH,KW[,stride[,pad]]", _depthwise_conv2d),
    "softmax": ShapeRule("M,N", _softmax),
}


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.replace("x", ",").split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--shape {text!r}: expected comma-separated integers") from None
    if not sizes or any(s < 0 for s in sizes):
        raise UsageError(f"--shape {text!r}: expected positive integers")
    return sizes


def task_args(template: str, shape: str | None, args_json: str | None,
              dtype: str = "float32") -> tuple:
    """The args of a task of ``template``, from ``--shape`` (through its rule) or
    ``--args`` (a JSON list)."""
    if args_json is not None:
        try:
            args = json.loads(args_json)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--args is not JSON: {exc}") from None
        if not isinstance(args, list):
            raise UsageError("--args must be a JSON list of the template's arguments")
        return tuple(args)
    rule = SHAPE_RULES.get(template)
    if rule is None:
        known = ", ".join(sorted(SHAPE_RULES))
        raise UsageError(f"template {template!r} has no --shape rule (rules exist for {known}); "
                         "give its arguments as --args '[...]' (JSON)")
    if shape is None:
        raise UsageError(f"tuning {template} needs --shape {rule.usage}")
    sizes = _parse_sizes(shape)
    low, high = rule.counts
    if not low <= len(sizes) <= high:
        raise UsageError(f"--shape for {template} is {rule.usage} ({low}"
                         f"{'' if low == high else f' to {high}'} numbers), got {len(sizes)}")
    return _workload_args(template, rule.build(sizes, dtype))


def _workload_args(template: str, outputs) -> tuple:
    from schedules import create_schedule
    from te.ops import tags

    outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    for stage in create_schedule([t.op for t in outs]).stages:
        if tags.anchor_name(stage.op.tag) == template:
            workload = stage.op.attrs.get("workload")
            if workload is None:
                raise UsageError(f"the {template} op carries no workload: it is not tunable "
                                 "yet")
            return tuple(workload[1:])
    raise UsageError(f"these sizes do not build a {template} op (its anchor is missing)")


# ----------------------------------------------------------------------------- tune


def add_tune_parser(sub) -> None:
    p = sub.add_parser("tune", help="tune one operator's schedule template on this machine",
                       description="Tune one schedule template on this machine; every "
                       "measurement is appended to a JSON-lines log, and running the same "
                       "command again resumes from it.")
    p.add_argument("template", nargs="?", help="template name (see --list)")
    p.add_argument("--list", action="store_true", help="list the tunable templates")
    p.add_argument("--shape", help="sizes, e.g. M,K,N for matmul (see --list)")
    p.add_argument("--args", dest="args_json", metavar="JSON",
                   help="the template's arguments as a JSON list (instead of --shape)")
    p.add_argument("--dtype", default="float32", help="element type for --shape (float32)")
    p.add_argument("--tuner", choices=sorted(TUNERS), default="xgb")
    p.add_argument("--trials", type=int, default=200, help="configs to measure (200)")
    p.add_argument("--early-stopping", type=int, metavar="N",
                   help="stop after N trials without a better config")
    p.add_argument("--log", help="JSON-lines log to append to (default: <template>.jsonl)")
    p.add_argument("--target", default="cpu", help='"cpu" (default), "python", or with flags')
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module (or run a .py file) that registers templates first")
    m = p.add_argument_group("measurement")
    m.add_argument("--n-parallel", type=int, help="parallel builds (default: one per core)")
    m.add_argument("--number", type=int, default=1, help="calls per repeat (1)")
    m.add_argument("--repeat", type=int, default=3, help="timed repeats (3)")
    m.add_argument("--min-repeat-ms", type=float, default=20.0, help="(20)")
    m.add_argument("--timeout", type=float, default=10.0, help="seconds per run (10)")
    m.add_argument("--seed", type=int, help="random seed of the tuner")
    p.set_defaults(func=_guarded(cmd_tune, "tune"))


def _guarded(func, name):
    """``func(args)``, with the errors a user causes printed as one line, not a traceback."""

    def run(args) -> int:
        try:
            return func(args)
        except UsageError as exc:
            print(f"tetune {name}: error: {exc}", file=sys.stderr)
            return 2
        except FileNotFoundError as exc:
            print(f"tetune {name}: error: {exc.filename}: no such file", file=sys.stderr)
            return 1

    return run


def _load_imports(imports) -> None:
    for item in imports:
        try:
            if item.endswith(".py"):
                runpy.run_path(item, run_name="__tetune_templates__")
            else:
                importlib.import_module(item)
        except (ImportError, OSError) as exc:
            raise UsageError(f"--import {item}: {exc}") from None


def cmd_tune(args) -> int:
    import autotune
    from autotune.record import task_label
    from schedules import list_templates

    _load_imports(args.imports)
    if args.list:
        for name in list_templates():
            rule = SHAPE_RULES.get(name)
            how = f"--shape {rule.usage}" if rule else "--args JSON"
            print(f"{name:<24s} {how}")
        return 0
    if not args.template:
        raise UsageError("name a template to tune (or --list)")
    if args.template not in list_templates():
        raise UsageError(f"no template named {args.template!r} (see tetune tune --list)")
    try:
        tuner_module = importlib.import_module("autotune.tuner")
    except ImportError as exc:
        print(f"tetune tune: the tuners are not available ({exc})", file=sys.stderr)
        return 1
    task = autotune.create_task(args.template,
                                task_args(args.template, args.shape, args.args_json,
                                          args.dtype), target=args.target)
    log = args.log or f"{args.template}.jsonl"
    option = autotune.measure_option(
        autotune.LocalBuilder(n_parallel=args.n_parallel),
        autotune.LocalRunner(number=args.number, repeat=args.repeat,
                             min_repeat_ms=args.min_repeat_ms, timeout=args.timeout))
    tuner_cls = getattr(tuner_module, TUNERS[args.tuner])
    tuner = tuner_cls(task, seed=args.seed) if args.seed is not None else tuner_cls(task)
    label = task_label({"name": task.name, "args": task.args})
    print(f"tuning {label} on {task.target}: "
          f"{len(task.config_space)} configs, {args.trials} trials with {args.tuner}; "
          f"log {log}", file=sys.stderr)
    tuner.tune(args.trials, option, early_stopping=args.early_stopping,
               callbacks=[autotune.progress_bar(), autotune.log_to_file(log)])
    if tuner.best_config is None:
        print(f"no valid config found; see the errors with: tetune log show {log}")
        return 1
    print(f"best: {tuner.best_flops / 1e9:.3f} GFLOP/s with {_knobs(tuner.best_config)}")
    print(f"log: {log}")
    return 0


def _knobs(config) -> str:
    return json.dumps(config.to_json(), separators=(", ", ": "))


# ----------------------------------------------------------------------------- log


def add_log_parser(sub) -> None:
    p = sub.add_parser("log", help="inspect, distil and plot JSON-lines tuning logs",
                       description="Inspect, distil and plot JSON-lines tuning logs.")
    logs = p.add_subparsers(dest="log_command", metavar="<subcommand>", required=True)
    s = logs.add_parser("show", help="best config and error counts per workload")
    s.add_argument("file")
    s.set_defaults(func=_guarded(cmd_log_show, "log show"))
    b = logs.add_parser("best", help="keep the best valid record per workload and target")
    b.add_argument("input")
    b.add_argument("output")
    b.set_defaults(func=_guarded(cmd_log_best, "log best"))
    c = logs.add_parser("plot", help="best GFLOP/s against trial number, as an image")
    c.add_argument("file")
    c.add_argument("-o", "--output", default="curve.png", help="image file (curve.png)")
    c.set_defaults(func=_guarded(cmd_log_plot, "log plot"))


def cmd_log_show(args) -> int:
    from autotune.record import load_raw, record_cost, task_label

    groups: dict = {}
    for record in load_raw(args.file):
        key = (record["workload_key"], record["task"]["target"])
        groups.setdefault(key, []).append(record)
    total = sum(len(g) for g in groups.values())
    print(f"{args.file}: {total} records, {len(groups)} workloads")
    for (_, target), records in groups.items():
        task = records[0]["task"]
        print(f"\n{task_label(task)} on {target}")
        best = min(records, key=record_cost)
        cost = record_cost(best)
        if cost == float("inf"):
            print("  no valid record")
        else:
            flop = task.get("flop") or 0
            speed = f"{flop / cost / 1e9:.3f} GFLOP/s, " if flop else ""
            print(f"  best {speed}{cost * 1e3:.4g} ms: config {best['config'].get('index')} "
                  f"{json.dumps(best['config']['knobs'], separators=(', ', ': '))}")
        counts = Counter(r["result"]["error_no"] for r in records)
        kinds = ", ".join(f"{n} {kind}" for kind, n in counts.most_common())
        print(f"  {len(records)} records: {kinds}")
    return 0


def cmd_log_best(args) -> int:
    from autotune.record import pick_best

    kept = pick_best(args.input, args.output)
    print(f"{args.output}: kept {kept} records (the best per workload and target)")
    return 0


def cmd_log_plot(args) -> int:
    try:
        import matplotlib
    except ImportError:
        print("tetune log plot: needs matplotlib (pip install 'tetune[plot]')", file=sys.stderr)
        return 1
    matplotlib.use("Agg")  # a file is written; no display is needed
    from autotune.plot import plot_curve

    ax = plot_curve(args.file)
    ax.figure.tight_layout()
    ax.figure.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")
    return 0


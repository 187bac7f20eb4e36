"""The network commands: ``tetune compile``, ``run``, ``bench`` and ``tune-net``.

    tetune compile model.onnx --log model.jsonl -o model.tetune
    tetune run model.tetune --input input=x.npy -o out.npz
    tetune bench model.onnx --log model.jsonl --profile --threads 4
    tetune tune-net model.onnx --trials-per-task 200 --log model.jsonl

Errors a user causes (a bad model, a missing input file, an unknown input name) print one
line naming the culprit and exit with status 1 (2 for bad arguments).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

__all__ = ["add_net_parsers"]


class UsageError(Exception):
    """A command-line argument that cannot be used; the message says which and why."""


def _guarded(func, name):
    def run(args) -> int:
        from te.errors import TetuneError

        try:
            return func(args)
        except UsageError as exc:
            print(f"tetune {name}: error: {exc}", file=sys.stderr)
            return 2
        except (TetuneError, OSError, ValueError) as exc:
            print(f"tetune {name}: error: {exc}", file=sys.stderr)
            return 1

    return run


def _shapes(items) -> dict:
    """``NAME=1,3,224,224`` items -> {name: shape}."""
    out = {}
    for item in items or ():
        name, sep, dims = item.rpartition("=")
        try:
            out[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            sep = ""
        if not sep or not name:
            raise UsageError(f"--input-shape {item!r}: expected NAME=D1,D2,...")
    return out


def _add_model_options(p):
    p.add_argument("--log", action="append", metavar="FILE",
                   help="tuning log(s) to take the best configs from (repeatable)")
    p.add_argument("--target", default="cpu", help='"cpu" (default), "python", or with flags')
    p.add_argument("--input-shape", action="append", metavar="NAME=D1,D2,...",
                   help="fix the shape of an input with symbolic dimensions (repeatable)")


def add_net_parsers(sub) -> None:
    """Register compile, run, bench and tune-net on the ``tetune`` sub-parsers."""
    p = sub.add_parser("compile", help="compile an ONNX model with the best configs of "
                                       "tuning logs into a .tetune artifact")
    p.add_argument("model", help="the .onnx file")
    p.add_argument("-o", "--output", help="artifact directory (default: <model>.tetune)")
    _add_model_options(p)
    p.set_defaults(func=_guarded(cmd_compile, "compile"))

    p = sub.add_parser("run", help="run a compiled artifact (or an ONNX model) on inputs")
    p.add_argument("model", help="a .tetune artifact or an .onnx file")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input array (repeatable); FILE.npz gives inputs by name")
    p.add_argument("-o", "--output", help="write the outputs to this .npz file")
    _add_model_options(p)
    p.set_defaults(func=_guarded(cmd_run, "run"))

    p = sub.add_parser("bench", help="time an ONNX model against onnxruntime on the same "
                                     "random input and threads, check the outputs agree")
    p.add_argument("model", help="the .onnx file")
    p.add_argument("--profile", action="store_true", help="also print the per-node times")
    p.add_argument("--threads", type=int, help="threads for both (default: all cores)")
    p.add_argument("--runs", type=int, default=20, help="timed runs of each (20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input (0)")
    _add_model_options(p)
    p.set_defaults(func=_guarded(cmd_bench, "bench"))

    p = sub.add_parser("tune-net", help="extract every tuning task of an ONNX model and tune "
                                        "them; resumable through the log")
    p.add_argument("model", help="the .onnx file")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--trials-per-task", type=int, help="configs per task (default 200)")
    budget.add_argument("--trials", type=int, metavar="N",
                        help="N configs in all, shared by the tasks in proportion to the work "
                             "they do in the network (nodes x FLOPs), at least --min-trials each")
    p.add_argument("--min-trials", type=int, default=8, help="floor of a task's share (8)")
    p.add_argument("--log", required=True, help="JSON-lines log to append to (and resume)")
    p.add_argument("--tuner", choices=("xgb", "ga", "random", "grid"), default="xgb")
    p.add_argument("--early-stopping", type=int, metavar="N",
                   help="stop a task after N trials without a better config")
    p.add_argument("--target", default="cpu", help='"cpu" (default) or with flags')
    p.add_argument("--input-shape", action="append", metavar="NAME=D1,D2,...")
    p.add_argument("--n-parallel", type=int, help="parallel builds (default: one per core)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per run (10)")
    p.set_defaults(func=_guarded(cmd_tune_net, "tune-net"))


# -- compile / run -----------------------------------------------------------------------------


def _compile(args):
    import graph

    for log in args.log or ():
        if not os.path.exists(log):
            raise UsageError(f"--log {log}: no such file")
    return graph.compile(args.model, target=args.target, tuning_log=args.log or None,
                         input_shapes=_shapes(args.input_shape))


def cmd_compile(args) -> int:
    t0 = time.perf_counter()
    module = _compile(args)
    out = args.output or str(Path(args.model).with_suffix(".tetune"))
    module.save(out)
    print(f"{args.model}: {len(module.steps)} nodes, {len(module.codes)} kernels, compiled "
          f"for {module.target} in {time.perf_counter() - t0:.1f} s -> {out}")
    if module.untuned:
        print(f"{len(module.untuned)} workload(s) had no record in the log(s) and use their "
              "default configs (tetune tune-net tunes them)")
    return 0


def _load_inputs(items, names) -> dict:
    import numpy as np

    feeds = {}
    for item in items:
        if "=" not in item and item.endswith(".npz"):
            with np.load(item, allow_pickle=False) as npz:
                feeds.update({k: npz[k] for k in npz.files})
            continue
        # the name may itself hold "=": take the split whose left side is an input
        cuts = [k for k, ch in enumerate(item) if ch == "="]
        cut = next((k for k in cuts if item[:k] in names), cuts[0] if cuts else None)
        if cut is None:
            raise UsageError(f"--input {item!r}: expected NAME=FILE.npy")
        name, path = item[:cut], item[cut + 1:]
        if name not in names:
            raise UsageError(f"--input {item!r}: the model has no input {name!r} (inputs: "
                             f"{', '.join(map(repr, names))})")
        feeds[name] = np.load(path, allow_pickle=False)
    return feeds


def cmd_run(args) -> int:
    import numpy as np

    import graph

    if os.path.isdir(args.model):
        module = graph.load(args.model)
    else:
        module = _compile(args)
    feeds = _load_inputs(args.input, module.input_names)
    outputs = module.run(feeds)
    if args.output:
        np.savez(args.output, **dict(zip(module.output_names, outputs)))
        print(f"wrote {len(outputs)} output(s) to {args.output}")
    else:
        for name, arr in zip(module.output_names, outputs):
            flat = arr.reshape(-1)
            head = np.array2string(flat[:6], precision=4, separator=", ")
            print(f"{name}: {arr.dtype}{list(arr.shape)} {head}{' ...' if flat.size > 6 else ''}")
    return 0


# -- bench -------------------------------------------------------------------------------------


def random_feeds(module, seed: int = 0) -> dict:
    """Random arrays for a module's inputs: normal floats, small non-negative integers."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for name in module.input_names:
        ty = module.graph.values[name]
        kind = np.dtype(ty.dtype).kind
        if kind == "f":
            feeds[name] = rng.standard_normal(ty.shape).astype(ty.dtype)
        elif kind == "b":
            feeds[name] = rng.random(ty.shape) < 0.5
        else:
            feeds[name] = rng.integers(0, 2, ty.shape).astype(ty.dtype)
    return feeds


def _median_ms(fn, runs: int) -> float:
    fn()  # warm up (first calls load kernels, ORT allocates)
    fn()
    times = []
    for _ in range(max(runs, 1)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _set_threads(threads):
    import importlib

    importlib.import_module("runtime")  # before numba: it sets numba's environment
    import numba

    if threads is None:
        return numba.get_num_threads()
    if not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
        raise UsageError(f"--threads {threads}: must be between 1 and "
                         f"{numba.config.NUMBA_NUM_THREADS} (NUMBA_NUM_THREADS)")
    numba.set_num_threads(threads)
    return threads


def cmd_bench(args) -> int:
    import numpy as np

    threads = _set_threads(args.threads)
    t0 = time.perf_counter()
    module = _compile(args)
    compile_s = time.perf_counter() - t0
    feeds = random_feeds(module, args.seed)
    ours = module.run(feeds)
    ours_ms = _median_ms(lambda: module.run(feeds), args.runs)
    shapes = ", ".join(f"{n}: {module.graph.values[n]}" for n in module.input_names)
    print(f"{args.model} ({shapes}) on {module.target}, {threads} thread(s); compiled in "
          f"{compile_s:.1f} s ({len(module.codes)} kernels)")
    print(f"  tetune       {ours_ms:10.3f} ms  (median of {args.runs})")
    status = 0
    try:
        import onnxruntime as ort
    except ImportError:
        print("  onnxruntime  not installed: no comparison")
        ort = None
    if ort is not None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(args.model), opts, providers=["CPUExecutionProvider"])
        want = sess.run(None, feeds)
        ort_ms = _median_ms(lambda: sess.run(None, feeds), args.runs)
        ratio = ours_ms / ort_ms
        print(f"  onnxruntime  {ort_ms:10.3f} ms  (median of {args.runs})")
        print(f"  tetune / onnxruntime = {ratio:.2f} ({'slower' if ratio > 1 else 'faster'})")
        for name, got, ref in zip(module.output_names, ours, want):
            err = float(np.max(np.abs(got.astype(np.float64) - ref))) if got.size else 0.0
            scale = float(np.max(np.abs(ref))) if ref.size else 0.0
            ok = got.shape == ref.shape and err <= 1e-3 * max(scale, 1e-6) + 1e-5
            status |= 0 if ok else 1
            print(f"  output {name}: max abs diff {err:.3g} (max |value| {scale:.3g}) "
                  f"{'agree' if ok else 'DISAGREE'}")
    if args.profile:
        print(module.profile(feeds, runs=max(3, args.runs // 4)))
    return status


# -- tune-net ----------------------------------------------------------------------------------


def plan_trials(tasks, total=None, per_task=None, min_trials=8) -> list:
    """Trials for each task: ``per_task`` each (200 when neither is given), or ``total`` shared
    in proportion to each task's share of the network's work (nodes running it x its FLOPs),
    since a layer that takes half the time deserves half the search; never fewer than
    ``min_trials`` nor more than the task's config space holds."""
    sizes = [len(t.config_space) for t in tasks]
    if total is None:
        return [min(per_task or 200, n) for n in sizes]
    work = [t.weight * max(t.flop, 1) for t in tasks]
    whole = sum(work) or 1
    return [min(n, max(min_trials, round(total * w / whole))) for n, w in zip(sizes, work)]


def cmd_tune_net(args) -> int:
    import importlib

    import autotune
    import graph

    try:
        tuners = importlib.import_module("autotune.tuner")
    except ImportError as exc:
        print(f"tetune tune-net: the tuners are not available ({exc})", file=sys.stderr)
        return 1
    names = {"xgb": "XGBTuner", "ga": "GATuner", "random": "RandomTuner",
             "grid": "GridSearchTuner"}
    tasks = graph.extract_tasks(args.model, target=args.target,
                                input_shapes=_shapes(args.input_shape))
    if not tasks:
        print(f"{args.model}: no tunable task (no op with a tuning template)")
        return 0
    plan = plan_trials(tasks, args.trials, args.trials_per_task, args.min_trials)
    print(f"{args.model}: {len(tasks)} task(s) for {sum(t.weight for t in tasks)} node(s); "
          f"{sum(plan)} trials in all; log {args.log}", file=sys.stderr)
    option = autotune.measure_option(autotune.LocalBuilder(n_parallel=args.n_parallel),
                                     autotune.LocalRunner(timeout=args.timeout))
    for k, (task, n_trial) in enumerate(zip(tasks, plan), 1):
        print(f"[{k}/{len(tasks)}] {task.name} x{task.weight} ({', '.join(task.nodes[:3])}"
              f"{', ...' if len(task.nodes) > 3 else ''}): {n_trial} of "
              f"{len(task.config_space)} configs", file=sys.stderr)
        tuner = getattr(tuners, names[args.tuner])(task)
        tuner.tune(n_trial, option, early_stopping=args.early_stopping,
                   callbacks=[autotune.progress_bar(), autotune.log_to_file(args.log)])
    print(f"done; compile with: tetune compile {args.model} --log {args.log}")
    return 0

"""How quickly each tuner finds a fast kernel: XGBTuner against RandomTuner and GATuner on the
operator library's ``matmul`` template (or ``--op conv2d``: ResNet-50's 3x3 layer,
1x64x56x56, 64 filters, pad 1), measured for real on this machine, then the best config
found against numpy (matmul) or onnxruntime (conv2d) in the same run.

    python benchmarks/tuning.py [--op matmul|conv2d] [--n 512 | --shape M,K,N] [--trials 200]
                                [--seeds 3]
                                [--tuners xgb,random,ga] [--plan-size 32] [--features itervar]
                                [--parallel N] [--plot tuning_curves.png] [--cache-dir DIR]
                                [--search-only] [--log FILE]

Every (tuner, seed) run tunes the same task with the real measurer (``autotune.measure``:
parallel builds in worker processes, one-at-a-time timing, answers checked) and, unless
``--cache-dir`` is given, an empty kernel cache, so no run profits from another's compiles.
Reported:

* per run: best GFLOP/s, trials until 90 % of the best GFLOP/s that *any* run found,
  candidates per minute and where the time went: build (summed over the builder processes,
  so it may exceed the wall time), run (checking and timing, one at a time) and search
  overhead (the tuner's own time: features, model fits, annealing);
* per tuner, the median over seeds of trials-to-90 %, and XGB's advantage as a ratio;
* the best config found, rebuilt here and timed against ``numpy.matmul`` (or a one-node
  onnxruntime model, 2 threads) in turns (medians; ratio = peer time / tetune time, so > 1
  means tetune is faster).

With matplotlib installed, the tuning curves (best GFLOP/s against trial) are plotted.
Full runs take hours on a small machine; ``--trials 8 --seeds 1 --n 64`` is a smoke test.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks import harness  # noqa: E402
from runtime import build  # noqa: E402  (sets NUMBA_SLP_VECTORIZE before numba loads)

TARGET_SHARE = 0.9


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--op", default="matmul", choices=["matmul", "conv2d"])
    ap.add_argument("--n", type=int, default=512, help="M = K = N (see --shape)")
    ap.add_argument("--shape", default=None, help="M,K,N (overrides --n)")
    ap.add_argument("--trials", type=int, default=200, help="trials per run")
    ap.add_argument("--seeds", type=int, default=3, help="runs per tuner (seeds 0..S-1)")
    ap.add_argument("--tuners", default="xgb,random,ga", help="comma-separated: xgb,random,ga")
    ap.add_argument("--plan-size", type=int, default=32, help="XGBTuner plan_size")
    ap.add_argument("--features", default="itervar", choices=["itervar", "knob", "curve"],
                    help="XGBTuner feature_type")
    ap.add_argument("--pop-size", type=int, default=32, help="GATuner pop_size")
    ap.add_argument("--parallel", type=int, default=None, help="builder processes")
    ap.add_argument("--plot", default="tuning_curves.png",
                    help="where to write the curves (needs matplotlib)")
    ap.add_argument("--cache-dir", default=None,
                    help="one kernel cache for all runs (default: an empty one per run)")
    ap.add_argument("--repeat", type=int, default=7, help="rounds of the numpy comparison")
    ap.add_argument("--search-only", action="store_true",
                    help="do not lead with the template's default config (tuners measure it "
                    "first otherwise): compares the searches alone, which matters where the "
                    "default already is within 90%% of the best")
    ap.add_argument("--log", default=None, help="append every run's records to this "
                    "JSON-lines log (runs do not resume from it)")
    return ap.parse_args(argv)


def make_tuner(name, task, seed, args):
    from autotune.tuner import GATuner, RandomTuner, XGBTuner

    if name == "xgb":
        return XGBTuner(task, plan_size=args.plan_size, feature_type=args.features, seed=seed)
    if name == "random":
        return RandomTuner(task, seed=seed)
    if name == "ga":
        return GATuner(task, pop_size=args.pop_size, seed=seed)
    raise SystemExit(f"unknown tuner {name!r} (xgb, random, ga)")


class Run:
    """One tuner run: its curve (best GFLOP/s after each trial) and where its time went."""

    def __init__(self, tuner_name, seed):
        self.tuner_name, self.seed = tuner_name, seed
        self.curve: list[float] = []
        self.build = self.run = self.measure_wall = self.wall = 0.0
        self.errors = 0
        self.best_config = None
        self.best_gflops = 0.0

    def __call__(self, tuner, inputs, results):
        for res in results:
            self.build += res.build_cost
            self.run += max(res.all_cost - res.build_cost, 0.0)
            self.errors += not res.ok
            self.curve.append(tuner.best_flops / 1e9)

    def trials_to(self, gflops) -> float:
        return next((i + 1 for i, g in enumerate(self.curve) if g >= gflops), math.inf)


class TimedMeasure:
    """The real measurer, with the wall time spent inside it added up."""

    def __init__(self, inner):
        self.inner = inner
        self.n_parallel = inner.n_parallel
        self.seconds = 0.0

    def __call__(self, inputs):
        t0 = time.perf_counter()
        try:
            return self.inner(inputs)
        finally:
            self.seconds += time.perf_counter() - t0


def tune_once(task, name, seed, args) -> Run:
    from autotune import LocalBuilder, create_measure_batch, measure_option
    from autotune.record import append_records

    if args.cache_dir is None:  # builder processes fork after this, and inherit it
        os.environ["TETUNE_CACHE_DIR"] = tempfile.mkdtemp(prefix="tetune_tuning_")
    option = measure_option(builder=LocalBuilder(n_parallel=args.parallel))
    run = Run(name, seed)
    tuner = make_tuner(name, task, seed, args)
    tuner.measure_default = not args.search_only
    with create_measure_batch(task, option) as inner:
        measure = TimedMeasure(inner)
        t0 = time.perf_counter()
        callbacks = [run]
        if args.log:  # plain appends: log_to_file would resume the next run from this one
            callbacks.append(lambda _, inputs, results: append_records(
                args.log, list(zip(inputs, results))))
        tuner.tune(args.trials, measure, callbacks=callbacks)
        run.wall = time.perf_counter() - t0
    run.measure_wall = measure.seconds
    run.best_config, run.best_gflops = tuner.best_config, tuner.best_flops / 1e9
    return run


def median_trials(runs, gflops) -> float:
    return statistics.median(r.trials_to(gflops) for r in runs)


def fmt_trials(x) -> str:
    return "never" if x == math.inf else f"{x:g}"


def report(runs_by_tuner, trials):
    best = max((r for runs in runs_by_tuner.values() for r in runs), key=lambda r: r.best_gflops)
    goal = TARGET_SHARE * best.best_gflops
    print(f"\nbest found: {best.best_gflops:.2f} GFLOP/s ({best.tuner_name}, seed {best.seed}); "
          f"target {TARGET_SHARE:.0%} = {goal:.2f} GFLOP/s")
    head = (f"{'tuner':7s} {'seed':>4s} {'best GF/s':>9s} {'to 90%':>7s} {'cand/min':>8s} "
            f"{'build s':>8s} {'run s':>7s} {'search s':>8s} {'errors':>6s}")
    print(head)
    print("-" * len(head))
    for name, runs in runs_by_tuner.items():
        for r in runs:
            per_min = len(r.curve) / r.wall * 60 if r.wall else 0.0
            search = r.wall - r.measure_wall
            print(f"{name:7s} {r.seed:4d} {r.best_gflops:9.2f} {fmt_trials(r.trials_to(goal)):>7s} "
                  f"{per_min:8.1f} {r.build:8.1f} {r.run:7.1f} {search:8.1f} {r.errors:6d}")
    medians = {name: median_trials(runs, goal) for name, runs in runs_by_tuner.items()}
    print("\nmedian trials to 90% (over seeds; 'never' = not within "
          f"{trials} trials): " + ", ".join(f"{n} {fmt_trials(m)}" for n, m in medians.items()))
    if "xgb" in medians:
        for other in (n for n in medians if n != "xgb"):
            a, b = medians[other], medians["xgb"]
            if b == math.inf:
                text = "xgb never reached it"
            elif a == math.inf:
                text = f"{other} never reached it within {trials} trials (> {trials / b:.1f}x)"
            else:
                text = f"{a / b:.2f}x fewer trials than {other}"
            print(f"  xgb: {text}")
    return best


def matmul_task(shape):
    from autotune import create_task

    M, K, N = shape
    return create_task("matmul", (("TENSOR", (M, K), "float32"), ("TENSOR", (K, N), "float32"),
                                  False, False, "float32"), "cpu")


def conv2d_task():
    """The task the operator library derives for ResNet-50's 3x3 layer (its own workload)."""
    import te
    from autotune import create_task
    from benchmarks.conv2d import C, H, KH, KW, OC, W
    from benchmarks.conv2d import N as BATCH

    data = te.placeholder((BATCH, C, H, W), name="data")
    weight = te.placeholder((OC, C, KH, KW), name="weight")
    workload = te.ops.conv2d(data, weight, padding=1).op.attrs["workload"]
    return create_task(workload[0], workload[1:], "cpu")


def against_onnxruntime(task, config, repeat):
    from benchmarks.conv2d import C, H, KH, KW, OC, W, ort_session
    from benchmarks.conv2d import N as BATCH

    s, tensors = task.instantiate(config)
    mod = build(s, tensors, target=task.target)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, C, H, W)).astype(np.float32)
    w = rng.standard_normal((OC, C, KH, KW)).astype(np.float32)
    y = np.empty((BATCH, OC, H, W), np.float32)
    sess = ort_session(w, threads=2)
    mod(x, w, y)
    ref = sess.run(None, {"x": x})[0]
    err = float(np.abs(y - ref).max() / np.abs(ref).max())
    if not err < 1e-4:
        print(f"best config: WRONG RESULT (relative error {err:.2e})")
        return
    med, t_k = harness.interleaved({"onnxruntime": lambda: sess.run(None, {"x": x})},
                                   lambda: mod(x, w, y), repeat, pause=0.5)
    flop = task.flop
    print(f"\nbest config vs onnxruntime ({repeat} rounds in turns): tetune "
          f"{flop / t_k / 1e9:.2f} GFLOP/s ({t_k * 1e3:.3f} ms), onnxruntime "
          f"{flop / med['onnxruntime'] / 1e9:.2f} GFLOP/s, ratio {med['onnxruntime'] / t_k:.2f}x "
          "(onnxruntime time / tetune time)")
    print(f"  config: {config}")


def against_numpy(task, config, shape, repeat):
    M, K, N = shape
    s, tensors = task.instantiate(config)
    mod = build(s, tensors, target=task.target)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    c = np.empty((M, N), np.float32)
    c_np = np.empty((M, N), np.float32)
    mod(a, b, c)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    err = float(np.abs(c - ref).max() / np.abs(ref).max())
    if not err < 1e-4:
        print(f"best config: WRONG RESULT (relative error {err:.2e})")
        return
    med, t_k = harness.interleaved({"numpy": lambda: np.matmul(a, b, out=c_np)},
                                   lambda: mod(a, b, c), repeat, pause=0.5)
    flop = 2.0 * M * N * K
    print(f"\nbest config vs numpy ({repeat} rounds in turns): tetune "
          f"{flop / t_k / 1e9:.2f} GFLOP/s, numpy {flop / med['numpy'] / 1e9:.2f} GFLOP/s, "
          f"ratio {med['numpy'] / t_k:.2f}x (numpy time / tetune time)")
    print(f"  config: {config}")


def plot(runs_by_tuner, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (name, runs) in enumerate(runs_by_tuner.items()):
        for i, r in enumerate(runs):
            ax.step(range(1, len(r.curve) + 1), r.curve, where="post", color=f"C{k}",
                    alpha=0.8, label=name if i == 0 else None)
    ax.set_xlabel("trial")
    ax.set_ylabel("best GFLOP/s so far")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"curves written to {path}")


def machine() -> str:
    model = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba
    import xgboost

    return (f"{model}, {os.cpu_count()} cores; numpy {np.__version__}, numba "
            f"{numba.__version__}, xgboost {xgboost.__version__}")


def main(argv=None):
    args = parse_args(argv)
    if args.cache_dir:
        harness.use_cache_dir(args.cache_dir)
    shape = tuple(int(x) for x in args.shape.split(",")) if args.shape else (args.n,) * 3
    if args.op == "conv2d":
        task = conv2d_task()
        what = f"{task.name} {task.args[0][1]} * {task.args[1][1]}, pad 1"
    else:
        task = matmul_task(shape)
        what = "matmul {}x{}x{}".format(*shape)
    busy = harness.busy_now()
    print(f"tuning {what} float32 on {machine()}; space of "
          f"{len(task.config_space)} configs; {args.trials} trials x {args.seeds} seeds; "
          f"busy cores before: {busy:.0%}")
    harness.warn_if_busy(busy)
    runs_by_tuner: dict[str, list[Run]] = {}
    for name in harness.selected(args.tuners):
        for seed in range(args.seeds):
            run = tune_once(task, name, seed, args)
            runs_by_tuner.setdefault(name, []).append(run)
            print(f"  {name} seed {seed}: {len(run.curve)} trials in {run.wall:.0f} s, best "
                  f"{run.best_gflops:.2f} GFLOP/s", flush=True)
    best = report(runs_by_tuner, args.trials)
    if best.best_config is not None and args.op == "conv2d":
        against_onnxruntime(task, best.best_config, args.repeat)
    elif best.best_config is not None:
        against_numpy(task, best.best_config, shape, args.repeat)
    if args.plot:
        plot(runs_by_tuner, args.plot)
    harness.report_busy_after()


if __name__ == "__main__":
    main()

"""tetune end to end on a small ONNX model: compile it, tune its biggest convolution,
compile it again with the tuning log, and check it against onnxruntime.

    python examples/main.py [--trials 16] [--tuner xgb|random] [--workdir DIR] [--threads N]
                            [--model FILE]

The model is ``graph.testing.small_cnn()`` (conv-bn-relu, max pool, conv-relu, global
pool, Gemm on a 3x32x32 image; seeded weights, 23 kB), written to ``--workdir`` as
``small_cnn.onnx`` and compiled from that file, as a model of your own would be (the
repository commits no model files: it builds them in code). ``--model FILE`` takes your
own ONNX model instead (static shapes, float32 inputs). The tuning log and the compiled
module go to ``--workdir`` too (default: a new temporary directory); run again with the
same ``--workdir`` and tuning resumes from the log instead of measuring configs twice.
Without onnxruntime (``pip install onnxruntime``) the answer is checked with onnx's
reference evaluator and no latency is compared.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import autotune
import graph
from autotune.tuner import RandomTuner, XGBTuner
from graph import testing
from runtime.timer import set_num_threads, time_evaluator


def example_model(workdir: Path) -> Path:
    """``small_cnn.onnx`` in ``workdir``, written from ``graph.testing`` (same seed, same
    bytes, so an earlier run's tuning log still matches)."""
    import onnx

    path = workdir / "small_cnn.onnx"
    onnx.save(testing.small_cnn(), path)
    return path


def biggest_conv(tasks):
    """The convolution task that costs the network the most FLOPs (FLOPs x uses)."""
    convs = [t for t in tasks if t.name.startswith(("conv2d", "depthwise"))]
    return max(convs or tasks, key=lambda t: t.flop * getattr(t, "weight", 1))


def tune(task, trials: int, tuner_name: str, log: Path):
    """Measure ``trials`` configs of ``task`` (each built and timed in worker processes),
    appending every result to ``log``; returns the tuner."""
    if tuner_name == "xgb":
        # the cost model is refitted after every plan_size results: small enough that a
        # 16-trial budget sees the model propose at least one batch
        tuner = XGBTuner(task, plan_size=8, seed=0)
    else:
        tuner = RandomTuner(task, seed=0)
    option = autotune.measure_option(runner=autotune.LocalRunner(repeat=3, min_repeat_ms=10))
    tuner.tune(trials, option, callbacks=[autotune.progress_bar(),
                                          autotune.log_to_file(log)])
    return tuner


def reference(model_path: Path, feeds: dict, threads: int):
    """(name, output, run function or None): onnxruntime if installed, else onnx's
    reference evaluator (correct but slow, so no latency is compared)."""
    try:
        import onnxruntime as ort
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        (out,) = ReferenceEvaluator(str(model_path)).run(None, feeds)
        return "onnx reference", out, None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, feeds)
    return "onnxruntime", out, lambda: sess.run(None, feeds)


def compile_model(path: Path, log: Path | None = None):
    """(module, seconds); the warning about workloads the log lacks becomes a count."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = graph.compile(path, target="cpu", tuning_log=log)
    return module, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16, help="configs to measure (16)")
    ap.add_argument("--tuner", choices=["xgb", "random"], default="xgb")
    ap.add_argument("--model", default=None, help="an ONNX model (default: small_cnn)")
    ap.add_argument("--workdir", default=None, help="where the log and the compiled module go")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="threads for tetune and onnxruntime (default: all usable cores)")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="tetune_example_"))
    workdir.mkdir(parents=True, exist_ok=True)
    set_num_threads(args.threads)
    start = time.perf_counter()

    import onnx

    path = Path(args.model) if args.model else example_model(workdir)
    feeds = testing.random_inputs(onnx.load(path))
    print(f"model: {path} ({path.stat().st_size / 1e3:.0f} kB), input "
          f"{feeds['input'].shape}; work dir: {workdir}\n")

    print("1. compile with every kernel's default schedule")
    untuned, untuned_s = compile_model(path)
    print(f"   {len(untuned.steps)} steps, {len(untuned.codes)} kernels, {untuned_s:.1f} s\n")

    print("2. tune the biggest convolution")
    tasks = graph.extract_tasks(path, target="cpu")
    task = biggest_conv(tasks)
    log = workdir / f"{path.stem}.jsonl"
    print(f"   {len(tasks)} tunable workloads; tuning {task.name} "
          f"({task.flop / 1e6:.1f} MFLOP, {len(task.config_space)} configs) with "
          f"{args.trials} trials of {args.tuner}; log {log}")
    tuner = tune(task, args.trials, args.tuner, log)
    if tuner.best_config is None:
        print(f"   no config ran correctly; see: tetune log show {log}")
        return 1
    print(f"   best {tuner.best_flops / 1e9:.2f} GFLOP/s: {tuner.best_config}\n")

    print("3. compile with the tuning log, save, load")
    tuned, tuned_s = compile_model(path, log)
    saved = workdir / f"{path.stem}.tetune"
    tuned.save(saved)
    loaded = graph.load(saved)
    print(f"   {tuned_s:.1f} s; {len(tuned.untuned)} other workloads use their defaults; "
          f"saved to {saved}\n")

    print("4. run and compare")
    ref_name, ref, ref_fn = reference(path, feeds, args.threads)
    scale = float(np.abs(ref).max())
    rows = []
    for label, module in (("untuned", untuned), ("tuned", tuned), ("tuned, loaded", loaded)):
        (out,) = module.run(feeds)
        err = float(np.abs(out - ref).max())
        rows.append((label, module, err))
    worst = max(err for _, _, err in rows)
    print(f"   max abs error against {ref_name}: {worst:.2e} (relative to max |output| "
          f"{worst / scale:.2e})")
    if ref_fn is not None:
        timings = {ref_name: time_evaluator(ref_fn, number=50, repeat=7)()}
        time.sleep(0.3)  # onnxruntime's threads spin for a while after a call
        for label, module, _ in rows[:2]:
            timings[f"tetune {label}"] = time_evaluator(lambda m=module: m.run(feeds),
                                                        number=50, repeat=7)()
        base = timings[ref_name].median
        print(f"   latency, {args.threads} threads (median of 7 x 50 calls):")
        for name, t in timings.items():
            print(f"     {name:16s} {t.median * 1e6:8.1f} us  {t.median / base:5.2f}x "
                  f"{ref_name}")
    print(f"\ndone in {time.perf_counter() - start:.0f} s")
    ok = worst <= 1e-4 * scale
    print("OK: tetune and the reference agree" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

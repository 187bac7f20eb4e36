"""Whole networks: ResNet-50, MobileNetV2 and a BERT-base encoder (2 layers, seq 128), batch
1, float32, compiled by tetune and run next to onnxruntime in one process with the same
thread count, timed in turns (medians).

    python benchmarks/networks.py [--only resnet50,mobilenet_v2,bert] [--log FILE]
                                  [--profile] [--threads 2] [--repeat 7] [--quick]
                                  [--no-warm] [--cache-dir DIR]

The networks are built in code (``graph.testing``, seeded random weights), so nothing is
downloaded. Per network:

* latency of onnxruntime, tetune untuned (every kernel with its template's default config)
  and, with ``--log``, tetune tuned (``graph.compile(..., tuning_log=FILE)``), as the
  ratio tetune time / onnxruntime time (< 1 means tetune is faster);
* agreement with onnxruntime: max abs error and max error relative to max |output|;
* compile time: cold (the untuned compile, an empty kernel cache, in this process) and
  warm (the same compile, tuned with ``--log``, in a fresh process whose kernel cache the
  earlier compiles filled; the import of tetune is listed apart);
* with ``--profile``: the 10 slowest nodes of the fastest tetune module.

The issue's targets are checked at the end: tuned <= 1.5x onnxruntime, untuned <= 3x,
ResNet-50 compile with a warm cache < 10 s. ``--quick`` runs small configs (a
one-block-per-stage ResNet at 32x32, MobileNetV2 x0.35 at 32x32, a one-layer BERT at
seq 16, hidden 64) to check that the script works; its figures mean nothing. Run from the
repository root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import runtime  # noqa: E402, F401  (sets numba's environment before numba loads)
from benchmarks import harness  # noqa: E402
from graph import testing  # noqa: E402

# name -> (full-size model, --quick model)
NETWORKS = {
    "resnet50": (lambda: testing.resnet50(),
                 lambda: testing.resnet50(image=32, width=16, blocks=(1, 1, 1, 1),
                                          classes=100)),
    "mobilenet_v2": (lambda: testing.mobilenet_v2(),
                     lambda: testing.mobilenet_v2(image=32, width_mult=0.35, classes=100)),
    "bert": (lambda: testing.bert_encoder(layers=2, seq=128),
             lambda: testing.bert_encoder(layers=1, seq=16, hidden=64, heads=2)),
}
TUNED_TARGET, UNTUNED_TARGET, WARM_COMPILE_TARGET = 1.5, 3.0, 10.0


def ort_session(model, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def compile_quietly(model, log=None):
    """(module, seconds); the warnings about untuned workloads are summed up by the caller
    from ``module.untuned``."""
    import graph

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # default_logs=False: "untuned" means the templates' defaults, "tuned" exactly --log
        module = graph.compile(model, target="cpu", tuning_log=log, default_logs=False)
    return module, time.perf_counter() - t0


def warm_compile_seconds(path, log, cache_dir):
    """[seconds to import tetune, seconds for ``graph.compile(path)``] in a fresh process
    whose kernel cache is ``cache_dir``, or None if that process failed."""
    log = None if log is None else str(log)
    code = (
        f"import sys, time, json, warnings; sys.path.insert(0, {str(REPO)!r})\n"
        "t0 = time.perf_counter()\n"
        "import runtime, numba, graph\n"
        "t1 = time.perf_counter()\n"
        "warnings.simplefilter('ignore')\n"
        f"graph.compile({str(path)!r}, target='cpu', tuning_log={log!r}, "
        "default_logs=False)\n"
        "print(json.dumps([t1 - t0, time.perf_counter() - t1]))\n"
    )
    env = dict(os.environ, TETUNE_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=1800, check=False)
    if out.returncode != 0:
        print(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "warm compile failed")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def errors(out, ref):
    """(max abs error, max abs error / max |ref|)."""
    err = float(np.abs(out - ref).max())
    return err, err / max(float(np.abs(ref).max()), 1e-30)


def op_types(module, node_name, fallback):
    """What a step runs: the op types of a fused group joined by '+', else its op type."""
    node = next((n for n in module.graph.nodes if n.name == node_name), None)
    if node is None or not node.is_fused:
        return fallback
    return "+".join(n.op_type.removeprefix("tetune.") for n in node.subgraph.nodes)


def print_profile(module, feeds, top=10):
    table = module.profile(feeds, runs=5)
    print(f"  slowest {top} of {len(table)} steps (mean of {table.runs} runs, "
          f"total {table.total_ms:.3f} ms):")
    for r in list(table)[:top]:
        ops = op_types(module, r.node, r.op_type)
        print(f"    {r.node[:28]:28s} {ops[:36]:36s} {r.mean_ms:9.3f} ms {r.percent:5.1f} %")
    by_type = ", ".join(f"{op} {ms:.2f}" for op, ms in list(table.by_op_type().items())[:6])
    print(f"  by op type (ms): {by_type}")


def bench_network(name, args, cache_dir, workdir):
    """Measure one network; returns its row of figures (a dict)."""
    model = NETWORKS[name][1 if args.quick else 0]()
    feeds = testing.random_inputs(model)
    path = Path(workdir) / f"{name}.onnx"
    import onnx

    onnx.save(model, path)
    sess = ort_session(model, args.threads)
    (ref,) = sess.run(None, feeds)
    row = {"name": name, "MB": path.stat().st_size / 1e6}

    untuned, row["cold_untuned"] = compile_quietly(model)
    modules = {"untuned": untuned}
    if args.log:
        tuned, row["cold_tuned"] = compile_quietly(model, args.log)
        modules["tuned"] = tuned
        row["not_in_log"] = len(tuned.untuned)
    for label, module in modules.items():
        (out,) = module.run(feeds)
        row[f"err_{label}"] = errors(out, ref)
    row["kernels"] = len(untuned.codes)
    row["steps"] = len(untuned.steps)

    # onnxruntime and the untuned module take turns with the tuned one (or the untuned one
    # alone); harness.interleaved sleeps after each of its "peers" for their thread pools
    best = "tuned" if "tuned" in modules else "untuned"
    peers = {"onnxruntime": lambda: sess.run(None, feeds)}
    if best == "tuned":
        peers["untuned"] = lambda: untuned.run(feeds)
    medians, t_best = harness.interleaved(peers, lambda: modules[best].run(feeds),
                                          args.repeat, pause=0.3)
    row["ort"] = medians["onnxruntime"]
    row[best] = t_best
    if best == "tuned":
        row["untuned"] = medians["untuned"]

    if not args.no_warm:
        warm = warm_compile_seconds(path, args.log, cache_dir)
        if warm is not None:
            row["import"], row["warm"] = warm
    print_row(row)
    if args.profile:
        print_profile(modules[best], feeds)
    return row


HEADER = (f"{'network':13s} {'ORT ms':>8s} {'untuned ms':>10s} {'x ORT':>6s} {'tuned ms':>9s} "
          f"{'x ORT':>6s} {'max rel err':>11s} {'cold s':>7s} {'warm s':>7s}  notes")


def print_row(row):
    ort_ms = row["ort"] * 1e3

    def ms_ratio(key, width):
        if key not in row:
            return f"{'-':>{width}s} {'-':>6s}"
        return f"{row[key] * 1e3:{width}.2f} {row[key] / row['ort']:6.2f}"

    err = max(row["err_untuned"][1], row.get("err_tuned", (0, 0))[1])
    cold = row["cold_untuned"]
    warm = f"{row['warm']:7.2f}" if "warm" in row else f"{'-':>7s}"
    notes = [f"{row['kernels']} kernels / {row['steps']} steps", f"model {row['MB']:.1f} MB"]
    if "import" in row:
        notes.append(f"import {row['import']:.1f} s")
    if "not_in_log" in row:
        notes.append(f"tuned compile {row['cold_tuned']:.1f} s, {row['not_in_log']} "
                     "workloads not in the log")
    if err > 1e-4:
        notes.append("OUTPUT DIFFERS")
    print(f"{row['name']:13s} {ort_ms:8.2f} {ms_ratio('untuned', 10)} {ms_ratio('tuned', 9)} "
          f"{err:11.1e} {cold:7.1f} {warm}  {', '.join(notes)}", flush=True)


def check_targets(rows, quick):
    """Print the issue's targets, met or missed, for the full-size networks."""
    print("\ntargets" + (" (--quick: small configs, not the official figures)" if quick else ""))
    for row in rows:
        checks = [("untuned", UNTUNED_TARGET)] + ([("tuned", TUNED_TARGET)] if "tuned" in row
                                                 else [])
        for key, limit in checks:
            ratio = row[key] / row["ort"]
            verdict = "met" if ratio <= limit else "MISSED"
            print(f"  {row['name']:13s} {key:8s} {ratio:5.2f}x ORT  (<= {limit}x)  {verdict}")
        if row["name"] == "resnet50" and "warm" in row:
            verdict = "met" if row["warm"] < WARM_COMPILE_TARGET else "MISSED"
            print(f"  {'resnet50':13s} compile with a warm cache {row['warm']:.1f} s  "
                  f"(< {WARM_COMPILE_TARGET:.0f} s)  {verdict}")


def main(argv=None):
    ap = harness.parser(__doc__, NETWORKS, list(NETWORKS), repeat=7)
    ap.add_argument("--threads", type=int, default=2, help="threads for tetune and onnxruntime")
    ap.add_argument("--log", default=None, help="a tuning log: also compile and time the "
                    "network tuned with it")
    ap.add_argument("--profile", action="store_true", help="print the 10 slowest nodes")
    ap.add_argument("--quick", action="store_true", help="small configs (a smoke test)")
    args = ap.parse_args(argv)
    unknown = [n for n in harness.selected(args.only) if n not in NETWORKS]
    if unknown:
        ap.error(f"unknown network(s) {', '.join(unknown)}; choose from {', '.join(NETWORKS)}")
    if args.log and not Path(args.log).is_file():
        ap.error(f"no tuning log at {args.log!r}")

    import numba
    import onnxruntime

    from runtime.timer import set_num_threads

    set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    cache_dir = harness.use_cache_dir(args.cache_dir)
    busy = harness.busy_now()
    extra = (f"; tuning log {args.log}" if args.log else "") + \
        ("; QUICK configs" if args.quick else "")
    print(f"networks, batch 1, float32, {args.threads} threads; onnxruntime "
          f"{onnxruntime.__version__}, numba {numba.__version__}{extra}; busy cores before: "
          f"{busy:.0%}")
    harness.warn_if_busy(busy)
    print(HEADER)
    print("-" * len(HEADER))
    rows = []
    with tempfile.TemporaryDirectory(prefix="tetune_nets_") as workdir:
        for name in harness.selected(args.only):
            rows.append(bench_network(name, args, cache_dir, workdir))
    check_targets(rows, args.quick)
    harness.report_busy_after()
    print(f"(x ORT = tetune time / onnxruntime time, medians of {args.repeat} interleaved "
          f"rounds; cold = the untuned compile, with an empty kernel cache ({cache_dir}), in this "
          "process; warm = the compile (tuned when --log is given) in a fresh process)")


if __name__ == "__main__":
    main()

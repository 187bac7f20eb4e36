"""The cuda target on a real GPU, against torch (if installed) in the same process.

    python benchmarks/cuda.py [--only matmul,conv,norm,elementwise] [--trials 24] [--repeat 7]

* ``matmul``: fp32 4096^3 with the gemm op schedule (schedules/cuda/gemm.py), tuned here by
  measuring ``--trials`` configs of its space (the default config first, then random ones;
  ones that cannot launch are skipped), against ``torch.matmul`` with TF32 off (so both do
  full fp32 FMAs).
* ``conv``: the 3x3 and 1x1 conv2d layers of ResNet-50 (batch 1, NCHW), each tuned the same
  way, against ``torch.nn.functional.conv2d`` (cuDNN, TF32 off).
* ``norm``: fused softmax and layer_norm rows (one kernel each, block reductions) against
  ``torch.softmax`` / ``torch.nn.functional.layer_norm``.
* ``elementwise``: ``relu(x * scale + bias)`` over 64M floats as one fused kernel; its
  achieved GB/s (bytes read + written / time) against a device-to-device copy of the same
  array (the memory-bandwidth ceiling numba measures) and torch's unfused ops.

Timings are CUDA events (``Module.time_evaluator``, ``torch.cuda.Event``), medians of
``--repeat`` rounds in which the contenders take turns; inputs live on the device.  The
script needs a CUDA GPU and numba-cuda (``pip install 'tetune[cuda]'``); without them it
stops with the reason and exit status 2.  Record results in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this file's directory comes first on sys.path, and this file would then be
# the "cuda" package that numba-cuda's bindings (cuda.bindings) live in.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np

import te
from runtime import BuildError, build, cuda_env
from schedules import ConfigSpace, create_schedule
from schedules.auto import anchor_op
from schedules.registry import op_schedule

MATMUL_N = 4096
NORM_SHAPES = ((4096, 1024), (8192, 768))
ELEMWISE_N = 1 << 26
# ResNet-50's distinct conv layers at batch 1: (C, H, W, K, kernel, stride, pad).
RESNET50 = [
    (64, 56, 56, 64, 1, 1, 0),
    (64, 56, 56, 64, 3, 1, 1),
    (64, 56, 56, 256, 1, 1, 0),
    (128, 28, 28, 128, 3, 1, 1),
    (256, 14, 14, 256, 3, 1, 1),
    (512, 7, 7, 512, 3, 1, 1),
    (256, 56, 56, 512, 1, 2, 0),
]


def require_real_gpu():
    """numba.cuda on a real device, or exit 2 saying why not."""
    if os.environ.get(cuda_env.SIMULATOR_ENV, "0") not in ("", "0"):
        print(f"benchmarks/cuda.py measures a real GPU, not numba's simulator: unset "
              f"{cuda_env.SIMULATOR_ENV}", file=sys.stderr)
        sys.exit(2)
    try:
        cuda = cuda_env.require_gpu()
    except BuildError as err:
        print(f"benchmarks/cuda.py needs a CUDA GPU: {err}", file=sys.stderr)
        sys.exit(2)
    return cuda


def load_torch():
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    # Full fp32: TF32 tensor cores would compare a different arithmetic.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch


# ----------------------------------------------------------------------------- measuring


def torch_seconds(torch, fn, number=10):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    torch.cuda.synchronize()
    start.record()
    for _ in range(number):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / number


def interleaved(contenders: dict, repeat: int) -> dict:
    """Median seconds per call of each contender (name -> fn returning seconds per call),
    measured in turns."""
    samples = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            samples[name].append(fn())
    return {name: statistics.median(v) for name, v in samples.items()}


def device(cuda, arrays):
    return [cuda.to_device(a) for a in arrays]


def op_configs(outs, trials: int, seed: int = 0):
    """The op schedule of ``outs``' anchor on cuda and up to ``trials`` configs of its space:
    the default first, then random points."""
    anchor = anchor_op(outs, "cuda")
    func = op_schedule(te.ops.tags.anchor_name(anchor.tag), "cuda")
    space = ConfigSpace()
    func(space, create_schedule([o.op for o in outs]), outs, anchor)
    rng = random.Random(seed)
    points = [space.default_index]
    while len(points) < min(trials, len(space)):
        p = space.sample(rng)
        if p not in points:
            points.append(p)
    return func, anchor, space, points


def tune(outs, inputs, arrays, trials: int, number: int = 3):
    """Measure ``trials`` configs of the op schedule; returns (best module, best seconds,
    config, how many configs ran)."""
    func, anchor, space, points = op_configs(outs, trials)
    best = (None, float("inf"), None)
    ran = 0
    for p in points:
        cfg = space.get(p)
        s = create_schedule([o.op for o in outs])
        try:
            func(cfg, s, outs, anchor)
            module = build(s, inputs + outs, target="cuda")
            seconds = module.time_evaluator(number=number, repeat=1)(*arrays).median
        except Exception as err:  # noqa: BLE001 - a config that cannot run is skipped
            print(f"    config {p}: skipped ({type(err).__name__}: {str(err)[:120]})")
            continue
        ran += 1
        if seconds < best[1]:
            best = (module, seconds, cfg)
    return best + (ran,)


def report(name: str, seconds: dict, flops=None, nbytes=None):
    mine = seconds["tetune"]
    parts = [f"{name}:"]
    for who, t in seconds.items():
        rate = f"{flops / t / 1e9:8.1f} GFLOP/s" if flops else f"{nbytes / t / 1e9:8.1f} GB/s"
        parts.append(f"{who} {t * 1e3:8.3f} ms ({rate})")
    for who, t in seconds.items():
        if who != "tetune":
            parts.append(f"tetune/{who} speed = {t / mine:.2f}x")
    print("  " + "  ".join(parts), flush=True)


# ----------------------------------------------------------------------------- workloads


def bench_matmul(cuda, torch, args):
    n = MATMUL_N
    A, B = te.placeholder((n, n), name="A"), te.placeholder((n, n), name="B")
    C = te.ops.matmul(A, B)
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype("float32") for _ in range(2))
    arrays = device(cuda, [a, b, np.zeros((n, n), "float32")])
    t0 = time.perf_counter()
    module, _, cfg, ran = tune([C], [A, B], arrays, args.trials)
    print(f"  matmul {n}^3: tuned over {ran} configs in {time.perf_counter() - t0:.0f} s; "
          f"best {cfg}")
    module(*arrays)
    check = arrays[2].copy_to_host()
    ref = a[:64].astype("float64") @ b.astype("float64")
    print(f"    max rel error (first 64 rows, vs fp64): "
          f"{np.abs(check[:64] - ref).max() / np.abs(ref).max():.2e}")
    evaluator = module.time_evaluator(number=5, repeat=1)
    contenders = {"tetune": lambda: evaluator(*arrays).median}
    if torch is not None:
        ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
        contenders["torch"] = lambda: torch_seconds(torch, lambda: torch.matmul(ta, tb), 5)
    report(f"matmul {n}^3 fp32", interleaved(contenders, args.repeat), flops=2 * n ** 3)


def bench_conv(cuda, torch, args):
    rng = np.random.default_rng(0)
    for layer in RESNET50:
        _conv_layer(cuda, torch, args, rng, *layer)


def _conv_layer(cuda, torch, args, rng, c, h, w, k, r, stride, pad):
    X = te.placeholder((1, c, h, w), name="data")
    W = te.placeholder((k, c, r, r), name="weight")
    out = te.ops.conv2d(X, W, stride, pad)
    oh, ow = (int(d.value) for d in out.shape[2:])
    x = rng.standard_normal((1, c, h, w)).astype("float32")
    wt = rng.standard_normal((k, c, r, r)).astype("float32")
    arrays = device(cuda, [x, wt, np.zeros((1, k, oh, ow), "float32")])
    name = f"conv2d 1x{c}x{h}x{w} -> {k} {r}x{r} s{stride}"
    module, _, cfg, ran = tune([out], [X, W], arrays, args.trials)
    if module is None:
        print(f"  {name}: no config ran")
        return
    print(f"    {ran} configs tried; best {cfg}")
    evaluator = module.time_evaluator(number=10, repeat=1)
    contenders = {"tetune": lambda: evaluator(*arrays).median}
    if torch is not None:
        tx, tw = torch.from_numpy(x).cuda(), torch.from_numpy(wt).cuda()

        def conv():
            return torch.nn.functional.conv2d(tx, tw, stride=stride, padding=pad)

        ref = conv()
        got = torch.from_numpy(arrays[2].copy_to_host()).cuda()
        print(f"    max rel error vs torch: {((got - ref).abs().max() / ref.abs().max()):.2e}")
        contenders["torch"] = lambda: torch_seconds(torch, conv)
    report(name, interleaved(contenders, args.repeat), flops=2 * k * oh * ow * c * r * r)


def bench_norm(cuda, torch, args):
    rng = np.random.default_rng(0)
    for rows, cols in NORM_SHAPES:
        x = rng.standard_normal((rows, cols)).astype("float32")
        g, b = (rng.standard_normal(cols).astype("float32") for _ in range(2))
        for name in ("softmax", "layer_norm"):
            _norm(cuda, torch, args, name, x, g, b)


def _norm(cuda, torch, args, name, x, g, b):
    rows, cols = x.shape
    X = te.placeholder((rows, cols), name="x")
    G, B = te.placeholder((cols,), name="gamma"), te.placeholder((cols,), name="beta")
    if name == "softmax":
        out, ins, arrs = te.ops.softmax(X), [X], [x]
    else:
        out, ins, arrs = te.ops.layer_norm(X, G, B), [X, G, B], [x, g, b]
    arrays = device(cuda, arrs + [np.zeros((rows, cols), "float32")])
    module, _, cfg, _ = tune([out], ins, arrays, min(args.trials, 12))
    evaluator = module.time_evaluator(number=20, repeat=1)
    contenders = {"tetune": lambda: evaluator(*arrays).median}
    if torch is not None:
        tx = torch.from_numpy(x).cuda()
        tg, tb = torch.from_numpy(g).cuda(), torch.from_numpy(b).cuda()

        def peer():
            if name == "softmax":
                return torch.softmax(tx, -1)
            return torch.nn.functional.layer_norm(tx, (cols,), tg, tb)

        contenders["torch"] = lambda: torch_seconds(torch, peer, 20)
    # One read and one write of the rows: what a fused kernel cannot do without.
    report(f"{name} [{rows}, {cols}] ({cfg})", interleaved(contenders, args.repeat),
           nbytes=2 * rows * cols * 4)


def bench_elementwise(cuda, torch, args):
    from schedules.cuda import schedule_injective

    n = ELEMWISE_N
    X = te.placeholder((n,), name="x")
    scale, bias = te.placeholder((1,), name="scale"), te.placeholder((1,), name="bias")
    out = te.ops.relu(te.ops.add(te.ops.multiply(X, scale), bias))
    x = np.random.default_rng(0).standard_normal(n).astype("float32")
    arrays = device(cuda, [x, np.float32([1.5]), np.float32([0.25]), np.zeros(n, "float32")])
    nbytes = 2 * n * 4
    results = {}
    for threads in (128, 256, 512, 1024):
        s = schedule_injective(create_schedule(out.op), [out], num_threads=threads)
        module = build(s, [X, scale, bias, out], target="cuda")
        results[threads] = (module.time_evaluator(number=10, repeat=3)(*arrays).median, module)
    threads, (_, module) = min(results.items(), key=lambda kv: kv[1][0])
    got = arrays[3].copy_to_host()
    assert np.allclose(got, np.maximum(x * 1.5 + 0.25, 0)), "wrong result"
    evaluator = module.time_evaluator(number=10, repeat=1)
    src, dst = arrays[0], cuda.device_array_like(arrays[0])

    def copy_seconds(number=10):
        start, end = cuda.event(), cuda.event()
        start.record()
        for _ in range(number):
            dst.copy_to_device(src)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / number

    contenders = {"tetune": lambda: evaluator(*arrays).median, "d2d copy": copy_seconds}
    if torch is not None:
        tx = torch.from_numpy(x).cuda()
        contenders["torch"] = lambda: torch_seconds(torch, lambda: torch.relu(tx * 1.5 + 0.25))
    report(f"relu(x * scale + bias), {n} float32, {threads} threads/block",
           interleaved(contenders, args.repeat), nbytes=nbytes)


BENCHES = {"matmul": bench_matmul, "conv": bench_conv, "norm": bench_norm,
           "elementwise": bench_elementwise}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(BENCHES), help="of: " + ", ".join(BENCHES))
    ap.add_argument("--trials", type=int, default=24, help="configs measured per workload")
    ap.add_argument("--repeat", type=int, default=7, help="interleaved rounds (median)")
    args = ap.parse_args(argv)
    cuda = require_real_gpu()
    torch = load_torch()
    dev = cuda.get_current_device()
    print(f"GPU: {dev.name.decode() if isinstance(dev.name, bytes) else dev.name}; "
          f"torch: {torch.__version__ if torch else 'not installed (tetune figures only)'}")
    for name in args.only.split(","):
        if name not in BENCHES:
            ap.error(f"unknown benchmark {name!r}")
        print(f"[{name}]", flush=True)
        BENCHES[name](cuda, torch, args)


if __name__ == "__main__":
    main()

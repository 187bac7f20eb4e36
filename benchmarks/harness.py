"""Measurement helpers shared by the benchmark scripts (matmul.py, conv2d.py, ops.py).

The scripts put the repository root on sys.path and import this as ``benchmarks.harness``,
so it works both when a script is run as ``python benchmarks/<name>.py`` and when the
warm-build subprocess imports the script as ``benchmarks.<name>``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUSY_LIMIT = 0.15  # fraction of busy cores above which the figures are flagged as noisy


def parser(doc, schedules, default_set, repeat):
    """The options every benchmark takes: --only, --repeat, --no-warm, --cache-dir."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(default_set),
                    help="comma-separated schedule names; all: " + ", ".join(schedules))
    ap.add_argument("--repeat", type=int, default=repeat, help="interleaved rounds (median)")
    ap.add_argument("--no-warm", action="store_true", help="skip the warm-build subprocesses")
    ap.add_argument("--cache-dir", default=None,
                    help="kernel cache for the cold builds (default: a new temporary dir)")
    return ap


def selected(only):
    """The schedule names of a comma-separated --only value."""
    return [x for x in only.split(",") if x]


def use_cache_dir(path=None):
    """Point the kernel cache at ``path`` (default: a new temporary dir) and return it."""
    cache_dir = Path(path or tempfile.mkdtemp(prefix="tetune_bench_"))
    os.environ["TETUNE_CACHE_DIR"] = str(cache_dir)
    return cache_dir


def busy_now():
    """Fraction (0..1) of our CPUs that other processes keep busy (``runtime.timer.busy_cores``
    over half a second)."""
    from runtime.timer import busy_cores

    return busy_cores(0.5)


def warn_if_busy(busy):
    if busy > BUSY_LIMIT:
        print("WARNING: other processes keep the CPUs busy; the figures will be noisy")


def report_busy_after():
    busy = busy_now()
    print(f"busy cores after: {busy:.0%}" + ("  WARNING: noisy" if busy > BUSY_LIMIT else ""))


def per_call(fn, min_seconds=0.05):
    """Seconds per call of fn, looping enough calls to make one sample >= min_seconds."""
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    number = max(1, int(min_seconds / max(dt, 1e-7)))
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def interleaved(peers, kernel_fn, repeat, pause, min_seconds=0.05):
    """Median seconds per call of every peer (a dict name -> fn) and of the kernel, measured in
    turns (peer, peer, ..., kernel, peer, ...).  Sleeps ``pause`` seconds after every peer
    call, because the peers' thread pools (OpenBLAS, onnxruntime) keep spinning for a while
    and slow the next call down.  Each sample loops calls for ``min_seconds``.  Returns
    ({name: median}, kernel median)."""
    times = {p: [] for p in peers}
    mine = []
    for _ in range(repeat):
        for p, fn in peers.items():
            times[p].append(per_call(fn, min_seconds))
            time.sleep(pause)
        mine.append(per_call(kernel_fn, min_seconds))
    return {p: statistics.median(v) for p, v in times.items()}, statistics.median(mine)


def warm_build_seconds(module, name, factory_args, cache_dir):
    """Build ``module.SCHEDULES[name](*factory_args)`` for the cpu target in a fresh process
    whose kernel cache (``cache_dir``) is already filled.  Returns [seconds for
    ``import numba, runtime``, seconds for the build, cache hit], or None if it failed."""
    code = (
        "import sys, time, json; sys.path.insert(0, %r)\n"
        "t0 = time.perf_counter()\n"
        "import numba, runtime\n"
        "from %s import SCHEDULES\n"
        "from runtime import build\n"
        "t1 = time.perf_counter()\n"
        "s, args = SCHEDULES[%r](*%r)\n"
        "m = build(s, args, target='cpu')\n"
        "t2 = time.perf_counter()\n"
        "print(json.dumps([t1 - t0, t2 - t1, m.build_info['cache_hit']]))\n"
    ) % (str(REPO), module, name, tuple(factory_args))
    env = dict(os.environ, TETUNE_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])

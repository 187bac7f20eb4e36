"""fp32 matmul on the cpu target: the steps of TVM's "How to optimize GEMM on CPU" tutorial as
tetune schedules, then the best schedule we know (an 8x32 register tile over packed A and B)
and ``library`` (``te.ops.matmul`` with its default cpu schedule, what a network gets), each
against numpy measured in the same run.

    python benchmarks/matmul.py [--n 1024] [--only best,parallel] [--repeat 7] [--no-warm]

For every schedule it prints GFLOP/s, the ratio to numpy (numpy time / tetune time, so > 1
means tetune is faster), the cold build time (empty kernel cache) and the warm build time (a
fresh process with the kernel cache filled).  numpy and each schedule are called in turns
(A, B, A, B, ...) and medians are reported; after every numpy call the script sleeps 0.5 s,
because OpenBLAS threads keep spinning for a while and slow the next kernel down.  The
machine is checked for other busy processes before and after (``runtime.timer.busy_cores``).

Run it from the repository root (``python benchmarks/matmul.py``), or with the repository on
PYTHONPATH.  Numbers are recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import te  # noqa: E402
from benchmarks import harness  # noqa: E402
from runtime import build  # noqa: E402  (sets NUMBA_SLP_VECTORIZE before numba loads)
from schedules import create_schedule, schedule_for  # noqa: E402

BN = 32  # the tutorial's block size
KFACTOR = 4  # the tutorial's k split


def matmul(n, packed_b=False, packed_a=False, mr=8, nr=BN):
    """A, B, C (and the packing stages) of C = A @ B, all n x n float32."""
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    stages = {}
    # Packed layouts; a block that sticks out of the matrix is padded with zeros.
    if packed_b:
        pB = te.compute((-(-n // nr), n, nr), lambda x, y, z: te.if_then_else(
            x * nr + z < n, B[y, x * nr + z], 0.0), name="packedB")
        stages["packedB"] = pB
    if packed_a:
        pA = te.compute((-(-n // mr), n, mr), lambda x, y, z: te.if_then_else(
            x * mr + z < n, A[x * mr + z, y], 0.0), name="packedA")
        stages["packedA"] = pA

    def a_at(i, kk):
        return stages["packedA"][i // mr, kk, i % mr] if packed_a else A[i, kk]

    def b_at(kk, j):
        return stages["packedB"][j // nr, kk, j % nr] if packed_b else B[kk, j]

    C = te.compute((n, n), lambda i, j: te.sum(a_at(i, k) * b_at(k, j), axis=k), name="C")
    return A, B, C, stages


# -- the tutorial's steps ------------------------------------------------------------------


def default(n):
    A, B, C, _ = matmul(n)
    return create_schedule(C.op), [A, B, C]


def blocking(n):
    A, B, C, _ = matmul(n)
    s = create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], BN, BN)
    ko, ki = s[C].split(s[C].op.reduce_axis[0], factor=KFACTOR)
    s[C].reorder(xo, yo, ko, ki, xi, yi)
    return s, [A, B, C]


def vectorization(n):
    A, B, C, _ = matmul(n)
    s = create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], BN, BN)
    ko, ki = s[C].split(s[C].op.reduce_axis[0], factor=KFACTOR)
    s[C].reorder(xo, yo, ko, ki, xi, yi)
    s[C].vectorize(yi)
    return s, [A, B, C]


def loop_permutation(n):
    A, B, C, _ = matmul(n)
    s = create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], BN, BN)
    ko, ki = s[C].split(s[C].op.reduce_axis[0], factor=KFACTOR)
    s[C].reorder(xo, yo, ko, xi, ki, yi)
    s[C].vectorize(yi)
    return s, [A, B, C]


def array_packing(n):
    A, B, C, st = matmul(n, packed_b=True)
    pB = st["packedB"]
    s = create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], BN, BN)
    ko, ki = s[C].split(s[C].op.reduce_axis[0], factor=KFACTOR)
    s[C].reorder(xo, yo, ko, xi, ki, yi)
    s[C].vectorize(yi)
    x, y, z = s[pB].op.axis
    s[pB].vectorize(z)
    s[pB].parallel(x)
    return s, [A, B, C]


def write_cache(n, parallel=False):
    A, B, C, st = matmul(n, packed_b=True)
    pB = st["packedB"]
    s = create_schedule(C.op)
    CC = s.cache_write(C, "global")
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], BN, BN)
    s[CC].compute_at(s[C], yo)
    xc, yc = s[CC].op.axis
    ko, ki = s[CC].split(s[CC].op.reduce_axis[0], factor=KFACTOR)
    s[CC].reorder(ko, xc, ki, yc)
    s[CC].unroll(ki)
    s[CC].vectorize(yc)
    if parallel:
        s[C].parallel(xo)
    x, y, z = s[pB].op.axis
    s[pB].vectorize(z)
    s[pB].parallel(x)
    return s, [A, B, C]


def parallel(n):
    return write_cache(n, parallel=True)


# -- beyond the tutorial --------------------------------------------------------------------


def register_tile(n, mr=8, nr=32, pack_a=True):
    """GotoBLAS-style: B packed to [n/nr, k, nr] (A to [n/mr, k, mr]); each (nr-column,
    mr-row) block of C is an mr x nr register tile (unrolled rows, vectorized columns)
    accumulated over all of k; the column blocks run in parallel."""
    A, B, C, st = matmul(n, packed_b=True, packed_a=pack_a, mr=mr, nr=nr)
    s = create_schedule(C.op)
    CC = s.cache_write(C, "local")
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], mr, nr)
    s[C].reorder(jo, io, ii, ji)
    s[CC].compute_at(s[C], io)
    mc, nc = s[CC].op.axis
    (kk,) = s[CC].op.reduce_axis
    s[CC].reorder(kk, mc, nc)
    s[CC].unroll(mc)
    s[CC].vectorize(nc)
    s[C].unroll(ii)
    s[C].vectorize(ji)
    s[C].parallel(jo)
    pB = st["packedB"]
    x, y, z = s[pB].op.axis
    s[pB].vectorize(z)
    s[pB].parallel(x)
    if pack_a:
        pA = st["packedA"]
        x, y, z = s[pA].op.axis
        s[pA].unroll(z)
        s[pA].parallel(x)
    return s, [A, B, C]


def best(n):
    # Packing A as well costs more than it saves here (A's 8 rows stream well from L2).
    return register_tile(n, 8, 32, pack_a=False)


def library(n):
    """``te.ops.matmul`` with its default cpu schedule (``schedules/cpu/gemm.py``): what a
    network build gets without tuning; the same kernel shape as ``best``."""
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    C = te.ops.matmul(A, B)
    return schedule_for(C, "cpu"), [A, B, C]


SCHEDULES = {
    "default": default,
    "blocking": blocking,
    "vectorization": vectorization,
    "loop_permutation": loop_permutation,
    "array_packing": array_packing,
    "write_cache": write_cache,
    "parallel": parallel,
    "best": best,
    "library": library,
    # variants of the best schedule, for --only
    "tile8x32_packAB": lambda n: register_tile(n, 8, 32, pack_a=True),
    "tile4x32": lambda n: register_tile(n, 4, 32),
    "tile6x32": lambda n: register_tile(n, 6, 32),
    "tile8x16": lambda n: register_tile(n, 8, 16),
    "tile4x64": lambda n: register_tile(n, 4, 64),
    "tile12x32": lambda n: register_tile(n, 12, 32),
    "tile12x32_packB": lambda n: register_tile(n, 12, 32, pack_a=False),
    "tile8x48_packB": lambda n: register_tile(n, 8, 48, pack_a=False),
}
DEFAULT_SET = ["default", "blocking", "vectorization", "loop_permutation", "array_packing",
               "write_cache", "parallel", "best", "library"]


def main(argv=None):
    ap = harness.parser(__doc__, SCHEDULES, DEFAULT_SET, repeat=7)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=None, help="numba threads (default: all)")
    args = ap.parse_args(argv)

    import numba

    from runtime.timer import set_num_threads

    if args.threads:
        set_num_threads(args.threads)
    cache_dir = harness.use_cache_dir(args.cache_dir)
    n = args.n
    flop = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    c_np = np.empty((n, n), np.float32)

    busy = harness.busy_now()
    print(f"matmul {n}x{n}x{n} float32; numba {numba.__version__}, "
          f"{numba.get_num_threads()} threads; numpy {np.__version__}; busy cores before: "
          f"{busy:.0%}")
    harness.warn_if_busy(busy)
    header = (f"{'schedule':18s} {'GFLOP/s':>8s} {'numpy GF/s':>10s} {'vs numpy':>8s} "
              f"{'cold build s':>12s} {'warm build s':>12s}  notes")
    print(header)
    print("-" * len(header))
    rows = []
    for name in harness.selected(args.only):
        s, targs = SCHEDULES[name](n)
        t0 = time.perf_counter()
        mod = build(s, targs, target="cpu")
        cold = time.perf_counter() - t0
        c = np.full((n, n), np.nan, np.float32)
        mod(a, b, c)
        err = float(np.abs(c - ref).max() / np.abs(ref).max())
        if not err < 1e-4:
            print(f"{name}: WRONG RESULT (relative error {err:.2e})")
            continue
        single = harness.per_call(lambda: mod(a, b, c), min_seconds=0)
        repeat = args.repeat if single < 1.0 else max(3, min(args.repeat, 3))
        med, t_k = harness.interleaved({"numpy": lambda: np.matmul(a, b, out=c_np)},
                                       lambda: mod.kernel(a, b, c), repeat, pause=0.5)
        t_np = med["numpy"]
        warm = (None if args.no_warm
                else harness.warm_build_seconds("benchmarks.matmul", name, (n,), cache_dir))
        warm_text = "-" if warm is None else f"{warm[1]:.2f}"
        stats = mod.vector_stats()
        notes = (f"zmm FMA {stats['zmm_fma']}, {repeat} runs" +
                 (", tile " + "+".join(mod.build_info["register_tiles"])
                  if mod.build_info["register_tiles"] else ""))
        if warm is not None and not warm[2]:
            notes += ", warm build MISSED the cache"
        row = (name, flop / t_k / 1e9, flop / t_np / 1e9, t_np / t_k, cold, warm_text, notes)
        rows.append(row)
        print(f"{row[0]:18s} {row[1]:8.1f} {row[2]:10.1f} {row[3]:7.2f}x {row[4]:12.2f} "
              f"{row[5]:>12s}  {row[6]}", flush=True)
    harness.report_busy_after()
    print(f"(warm build = build() in a fresh process with the kernel cache filled, after "
          f"`import numba, runtime`; kernel cache: {cache_dir})")
    return rows


if __name__ == "__main__":
    main()

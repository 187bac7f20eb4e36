"""tetune in one screen: write a matmul, schedule it, read the loop nest, run it, time it.

    python examples/quickstart.py [--target cpu|python] [--size N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import te
from runtime import build
from runtime.timer import time_evaluator
from schedules import create_schedule, lower


def matmul(n: int, nr: int = 32):
    """C = A @ B, reading B through a packed copy [n/nr, n, nr] so that the nr columns a
    register tile needs are contiguous for every k."""
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    packed = te.compute((n // nr, n, nr), lambda x, y, z: B[y, x * nr + z], name="packedB")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * packed[j // nr, k, j % nr], axis=k),
                   name="C")
    return A, B, packed, C


def schedule(packed, C, mr: int = 8, nr: int = 32):
    """An mr x nr block of C accumulates in registers over all of k (rows unrolled, columns
    vectorized); column blocks run in parallel. ~1.7x numpy at n=1024 on the 2-core Zen 5 of
    benchmarks/RESULTS.md, where benchmarks/matmul.py times this and TVM's tutorial steps."""
    s = create_schedule(C.op)
    CC = s.cache_write(C, "local")
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], mr, nr)
    s[C].reorder(jo, io, ii, ji)
    s[CC].compute_at(s[C], io)
    ic, jc = s[CC].op.axis
    (kc,) = s[CC].op.reduce_axis
    s[CC].reorder(kc, ic, jc)
    s[CC].unroll(ic)
    s[CC].vectorize(jc)
    s[C].unroll(ii)
    s[C].vectorize(ji)
    s[C].parallel(jo)
    x, _, z = s[packed].op.axis
    s[packed].vectorize(z)
    s[packed].parallel(x)
    return s


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cpu", choices=["cpu", "python"])
    parser.add_argument("--size", type=int, default=None, help="matrix size, a multiple of 32 "
                        "(default 1024 on cpu, 64 on python)")
    args = parser.parse_args(argv)
    n = args.size or (1024 if args.target == "cpu" else 64)
    if n % 32:
        parser.error("--size must be a multiple of 32 (the register tile's width)")

    A, B, packed, C = matmul(n)
    s = schedule(packed, C)
    print(s, "\n")
    print(lower(s, [A, B, C], name="matmul"))

    t0 = time.perf_counter()
    f = build(s, [A, B, C], target=args.target, name="matmul")
    print(f"built for target {args.target!r} in {time.perf_counter() - t0:.2f} s\n")

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    f(a, b, c)
    err = np.abs(c - a @ b).max() / np.abs(a @ b).max()
    print(f"max relative error against numpy: {err:.2e}")
    if err > 1e-4:
        print("MISMATCH")
        return 1

    flop = 2.0 * n**3
    ours = f.time_evaluator(number=3, repeat=7)(a, b, c)
    time.sleep(0.3)
    peer = time_evaluator(np.matmul, number=3, repeat=7)(a, b, c)
    print(f"{'tetune ' + args.target:>13}: {ours}  ({flop / ours.median / 1e9:.1f} GFLOP/s)")
    print(f"{'numpy':>13}: {peer}  ({flop / peer.median / 1e9:.1f} GFLOP/s)")
    print(f"tetune / numpy speed: {peer.median / ours.median:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

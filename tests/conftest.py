"""Shared test helpers: seeded random data and running a schedule on a target."""

import numpy as np
import pytest

import te
from runtime import build
from te import arith
from te import expr as E


def random_array(rng, shape, dtype="float32"):
    """Random data of ``dtype``: normals for floats, small nonzero-heavy integers, mixed bools."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    lo = 0 if dtype.kind == "u" else -9
    return rng.integers(lo, 10, shape).astype(dtype)


def concrete_shape(tensor, sizes: dict) -> tuple:
    """The shape of ``tensor`` with its symbolic extents replaced by ``sizes`` (name -> int)."""
    dims = []
    for dim in tensor.shape:
        known = {v: E.const(sizes[v.name]) for v in E.free_vars(dim) if v.name in sizes}
        value = arith.const_int(E.substitute(dim, known))
        if value is None:
            raise ValueError(f"the extent {dim} of {tensor.name} is not known; pass it by name")
        dims.append(value)
    return tuple(dims)


def run(s, args, inputs, target="python", **sizes):
    """Build ``s`` for ``target``, call it on ``inputs`` (the leading ``args``) and fresh output
    arrays (the remaining ``args``), and return the outputs as a list.

    Symbolic extents are read off the inputs' shapes where a dimension is a bare ``te.var``;
    others (``n + 2``) are given by name: ``run(s, [A, B], [a], n=5)``.
    """
    f = build(s, args, target=target)
    for tensor, array in zip(args, inputs):
        for dim, size in zip(tensor.shape, array.shape):
            if isinstance(dim, E.Var):
                sizes.setdefault(dim.name, size)
    outputs = [np.empty(concrete_shape(t, sizes), t.dtype) for t in args[len(inputs):]]
    f(*inputs, *outputs)
    return outputs


def run_python(s, args, inputs, **sizes):
    """``run`` on the pure-Python target."""
    return run(s, args, inputs, target="python", **sizes)


def matmul(M, K, N):
    """A [M, K], B [K, N] and C = A @ B (float32, reduce axis ``k``)."""
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C


def write_cache_for_blocks(s, C, x_factor, y_factor, kfactor=4):
    """TVM's GEMM tutorial, "write cache for blocks" step (without array packing): C is tiled,
    a local cache of each tile is computed at the tile, its k split by ``kfactor`` and
    reordered outside the rows, its columns vectorized and k.inner unrolled.  Returns the
    cache stage's tensor and the tile loops (io, jo, ii, ji)."""
    CC = s.cache_write(C, "local")
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], x_factor, y_factor)
    s[CC].compute_at(s[C], jo)
    mc, nc = s[CC].op.axis
    ko, ki = s[CC].split(s[CC].op.reduce_axis[0], factor=kfactor)
    s[CC].reorder(ko, mc, ki, nc)
    s[CC].vectorize(nc)
    s[CC].unroll(ki)
    return CC, (io, jo, ii, ji)


@pytest.fixture
def rng():
    return np.random.default_rng(0)

"""Shared test helpers: seeded random data and running a schedule on a target."""

import numpy as np
import pytest

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


@pytest.fixture
def rng():
    return np.random.default_rng(0)

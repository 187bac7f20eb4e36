"""Golden texts of ``lower(s, args)`` for representative schedules: the printed loop nest is
what users read to debug a schedule, so a change to it must be deliberate. On a mismatch,
pytest shows the diff; update the golden only after reading it."""

import textwrap

import pytest
from conftest import matmul, write_cache_for_blocks

import te
from runtime import build
from schedules import create_schedule, lower


def golden(text):
    return textwrap.dedent(text).lstrip("\n")


def gemm():
    return matmul(64, 64, 64)


def default_matmul():
    A, B, C = gemm()
    return create_schedule(C.op), [A, B, C]


DEFAULT_MATMUL = golden("""
    primfn main(A: float32[64, 64], B: float32[64, 64], C: float32[64, 64]) {
      for (i, 0, 64) {
        for (j, 0, 64) {
          C[i, j] = 0.0f
          for (k, 0, 64) {
            C[i, j] = C[i, j] + A[i, k] * B[k, j]
          }
        }
      }
    }
""")


def tiled_vectorized_matmul():
    # TVM's GEMM tutorial, "loop permutation" step, plus parallel.
    A, B, C = gemm()
    s = create_schedule(C.op)
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 32, 32)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=4)
    s[C].reorder(io, jo, ko, ii, ki, ji)
    s[C].vectorize(ji)
    s[C].parallel(io)
    return s, [A, B, C]


TILED_VECTORIZED_MATMUL = golden("""
    primfn main(A: float32[64, 64], B: float32[64, 64], C: float32[64, 64]) {
      for (i.outer, 0, 2) "parallel" {
        for (j.outer, 0, 2) {
          for (i.inner, 0, 32) {
            for (j.inner, 0, 32) "vectorized" {
              C[i.outer * 32 + i.inner, j.outer * 32 + j.inner] = 0.0f
            }
          }
          for (k.outer, 0, 16) {
            for (i.inner, 0, 32) {
              for (k.inner, 0, 4) {
                for (j.inner, 0, 32) "vectorized" {
                  C[i.outer * 32 + i.inner, j.outer * 32 + j.inner] = C[i.outer * 32 + i.inner, j.outer * 32 + j.inner] + A[i.outer * 32 + i.inner, k.outer * 4 + k.inner] * B[k.outer * 4 + k.inner, j.outer * 32 + j.inner]
                }
              }
            }
          }
        }
      }
    }
""")  # noqa: E501


def cache_write_compute_at():
    # TVM's GEMM tutorial, "write cache for blocks" step (without array packing).
    A, B, C = gemm()
    s = create_schedule(C.op)
    write_cache_for_blocks(s, C, 32, 32)
    return s, [A, B, C]


CACHE_WRITE_COMPUTE_AT = golden("""
    primfn main(A: float32[64, 64], B: float32[64, 64], C: float32[64, 64]) {
      for (i.outer, 0, 2) {
        for (j.outer, 0, 2) {
          allocate C.local[float32 * 32, 32], storage_scope = local
          for (i.c, 0, 32) {
            for (j.c, 0, 32) "vectorized" {
              C.local[i.c, j.c] = 0.0f
            }
          }
          for (k.outer, 0, 16) {
            for (i.c, 0, 32) {
              for (k.inner, 0, 4) "unrolled" {
                for (j.c, 0, 32) "vectorized" {
                  C.local[i.c, j.c] = C.local[i.c, j.c] + A[i.outer * 32 + i.c, k.outer * 4 + k.inner] * B[k.outer * 4 + k.inner, j.outer * 32 + j.c]
                }
              }
            }
          }
          for (i.inner, 0, 32) {
            for (j.inner, 0, 32) {
              C[i.outer * 32 + i.inner, j.outer * 32 + j.inner] = C.local[i.inner, j.inner]
            }
          }
        }
      }
    }
""")  # noqa: E501


def non_dividing_tile():
    X = te.placeholder((10, 7), name="X")
    Y = te.compute((10, 7), lambda i, j: X[i, j] * 2.0, name="Y")
    s = create_schedule(Y.op)
    io, ii = s[Y].split(Y.op.axis[0], factor=4)
    jo, ji = s[Y].split(Y.op.axis[1], factor=3)
    s[Y].reorder(io, jo, ii, ji)
    return s, [X, Y]


# Each guard sits at the outermost loop where its variables are all known.
NON_DIVIDING_TILE = golden("""
    primfn main(X: float32[10, 7], Y: float32[10, 7]) {
      for (i.outer, 0, 3) {
        for (j.outer, 0, 3) {
          for (i.inner, 0, 4) {
            if (i.outer * 4 + i.inner < 10) {
              for (j.inner, 0, 3) {
                if (j.outer * 3 + j.inner < 7) {
                  Y[i.outer * 4 + i.inner, j.outer * 3 + j.inner] = X[i.outer * 4 + i.inner, j.outer * 3 + j.inner] * 2.0f
                }
              }
            }
          }
        }
      }
    }
""")  # noqa: E501


def symbolic_split():
    n = te.var("n")
    X = te.placeholder((n,), name="X")
    Y = te.compute((n,), lambda i: te.sqrt(X[i]) * 2.0, name="Y")
    s = create_schedule(Y.op)
    s[Y].split(Y.op.axis[0], factor=8)
    return s, [X, Y]


SYMBOLIC_SPLIT = golden("""
    primfn main(X: float32[n], Y: float32[n], n: int32) {
      for (i.outer, 0, (n + 7) // 8) {
        for (i.inner, 0, 8) {
          if (i.outer * 8 + i.inner < n) {
            Y[i.outer * 8 + i.inner] = sqrt(X[i.outer * 8 + i.inner]) * 2.0f
          }
        }
      }
    }
""")


def inline_pipeline():
    A = te.placeholder((16, 16), name="A")
    B = te.compute((16, 16), lambda i, j: A[i, j] + 1.0, name="B")
    C = te.compute((16, 16), lambda i, j: te.if_then_else(B[i, j] > 0.0, B[i, j], 0.0), name="C")
    k = te.reduce_axis((0, 16), name="k")
    D = te.compute((16,), lambda i: te.sum(C[i, k], axis=k), name="D")
    s = create_schedule(D.op)
    s[B].compute_inline()
    s[C].compute_inline()
    return s, [A, D]


INLINE_PIPELINE = golden("""
    primfn main(A: float32[16, 16], D: float32[16]) {
      for (i, 0, 16) {
        D[i] = 0.0f
        for (k, 0, 16) {
          D[i] = D[i] + select(A[i, k] + 1.0f > 0.0f, A[i, k] + 1.0f, 0.0f)
        }
      }
    }
""")


GOLDENS = [
    (default_matmul, DEFAULT_MATMUL),
    (tiled_vectorized_matmul, TILED_VECTORIZED_MATMUL),
    (cache_write_compute_at, CACHE_WRITE_COMPUTE_AT),
    (non_dividing_tile, NON_DIVIDING_TILE),
    (symbolic_split, SYMBOLIC_SPLIT),
    (inline_pipeline, INLINE_PIPELINE),
]


@pytest.mark.parametrize("make, want", GOLDENS, ids=[make.__name__ for make, _ in GOLDENS])
def test_lowered_text(make, want):
    s, args = make()
    assert str(lower(s, args)) == want


NON_DIVIDING_TILE_PYTHON = golden('''
    """Generated by tetune (target python) from `main`."""

    import math

    import numpy as np
    from numpy.lib.stride_tricks import as_strided


    def main(X, Y):
        for i_outer in range(3):
            for j_outer in range(3):
                for i_inner in range(4):
                    if i_outer * 4 + i_inner < 10:
                        for j_inner in range(3):
                            if j_outer * 3 + j_inner < 7:
                                Y[i_outer * 4 + i_inner, j_outer * 3 + j_inner] = X[i_outer * 4 + i_inner, j_outer * 3 + j_inner] * 2.0
''')  # noqa: E501


def test_generated_python_source():
    s, args = non_dividing_tile()
    assert build(s, args, target="python").source == NON_DIVIDING_TILE_PYTHON

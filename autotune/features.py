"""Feature vectors of candidate configs, the inputs of the tuners' cost model.

Three kinds, chosen with ``FeatureExtractor(task, feature_type)``:

* ``"knob"``: the config itself: each knob's choice, split factors as log2 values. Cheap
  (no lowering), but only comparable between tasks of the same template.
* ``"itervar"``: read off the lowered loop nest of the candidate. For the loop nest of the
  busiest store (the most iterations), level by level from the innermost loop out: log2
  extent, loop kind, iterations outside and inside it, and for the stored buffer and the
  two biggest loaded ones the stride of that loop in the access, the bytes and cache lines
  the inner loops touch, and the reuse. Plus whole-function counts. Fixed length, so tasks
  of different templates share one model (transfer learning).
* ``"curve"``: the itervar touch and reuse figures resampled at fixed points of
  log2(inner iterations): shorter, and independent of how many loops there are.

Lowering is pure Python (about a millisecond for a small matmul), so every vector is cached
per config index. A candidate whose template or lowering raises gets a zero vector and its
index goes into ``failed``, so the model optimizer can skip it instead of proposing it.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from schedules import ir
from schedules.lower import lower
from te import arith
from te import expr as E

__all__ = ["FEATURE_TYPES", "FeatureExtractor", "curve_features", "itervar_features",
           "knob_features"]

FEATURE_TYPES = ("itervar", "knob", "curve")

log = logging.getLogger(__name__)

MAX_LEVELS = 8      # loop levels kept (innermost first); deeper nests are truncated
MAX_ACCESSES = 3    # the stored buffer and the two biggest loaded ones
CACHE_LINE = 64     # bytes
CURVE_POINTS = np.arange(0.0, 30.0, 3.0)  # log2(inner iterations) where curves are sampled
KINDS = ("serial", "parallel", "vectorized", "unrolled")

_PER_ACCESS = 4     # stride, unique bytes, cache lines, reuse
_PER_LEVEL = 1 + len(KINDS) + 2 + MAX_ACCESSES * _PER_ACCESS
_GLOBAL = 12
ITERVAR_LEN = _GLOBAL + MAX_LEVELS * _PER_LEVEL
CURVE_LEN = _GLOBAL + MAX_ACCESSES * 2 * len(CURVE_POINTS)


def _lg(x) -> float:
    return math.log2(1.0 + max(float(x), 0.0))


# ----------------------------------------------------------------------------- loop nests


class _Access:
    """One buffer access of a store: per-loop-variable strides in elements."""

    def __init__(self, buffer, indices):
        self.buffer = buffer
        self.itemsize = np.dtype(buffer.dtype).itemsize
        self.strides = _flat_strides(buffer, indices)  # Var uid -> elements


def _flat_strides(buffer, indices) -> dict:
    dims = [arith.const_int(d) for d in buffer.shape]
    if buffer.strides is not None:
        dim_strides = [arith.const_int(s) or 1 for s in buffer.strides]
    else:
        dim_strides, acc = [], 1
        for d in reversed(dims):
            dim_strides.append(acc)
            acc *= d if d else 1
        dim_strides.reverse()
    out: dict = {}
    for idx, dstride in zip(indices, dim_strides):
        aff = arith.Affine.of(idx)
        for term, coeff in aff.terms.values():
            c = coeff if isinstance(coeff, int) else 1
            if isinstance(term, E.Var):
                out[term.uid] = out.get(term.uid, 0) + c * dstride
            else:
                # A variable under floordiv/mod moves the address irregularly; count it as
                # moving it by the dimension's stride so it is at least seen as "used".
                for v in E.free_vars(term):
                    out.setdefault(v.uid, dstride)
    return out


class _Nest:
    """A store with its enclosing loops (outermost first)."""

    def __init__(self, loops, store, guarded):
        self.loops = loops
        self.extents = [arith.const_int(f.extent) or 1 for f in loops]
        self.iterations = math.prod(self.extents)
        self.guarded = guarded
        loads = [n for n in E.walk(store.value) if isinstance(n, ir.BufferLoad)]
        self.n_loads = len(loads)
        self.n_ops = sum(1 for n in E.walk(store.value) if isinstance(n, E.BinaryOp))
        self.write = _Access(store.buffer, store.indices)
        self.loads = [_Access(ld.buffer, ld.indices) for ld in loads]


def _nests(body) -> tuple[list, list]:
    """Every store with its loops, and every allocated buffer."""
    nests, allocs = [], []

    def visit(s, loops, guarded):
        if isinstance(s, ir.For):
            visit(s.body, loops + [s], guarded)
        elif isinstance(s, ir.Store):
            nests.append(_Nest(loops, s, guarded))
        elif isinstance(s, ir.IfThenElse):
            for k in s.children():
                visit(k, loops, True)
        else:
            if isinstance(s, ir.Allocate):
                allocs.append(s.buffer)
            for k in s.children():
                visit(k, loops, guarded)

    visit(body, [], False)
    return nests, allocs


def _touch(access, loops, extents, level) -> tuple[float, float]:
    """(unique elements, cache lines) the loops from ``level`` inwards touch in ``access``."""
    moving = [(abs(access.strides.get(f.var.uid, 0)), ext)
              for f, ext in zip(loops[level:], extents[level:])]
    moving = sorted((s, e) for s, e in moving if s and e > 1)
    count = math.prod(e for _, e in moving)
    span = 1 + sum((e - 1) * s for s, e in moving)
    unique = min(count, span)
    run = 1  # contiguous elements: loops whose stride continues the previous run
    for s, e in moving:
        if s != run:
            break
        run *= e
    lines = (unique / run) * math.ceil(run * access.itemsize / CACHE_LINE)
    return unique, lines


def _accesses(nest) -> list:
    """The stored buffer, then the loads touching the most bytes, MAX_ACCESSES in all."""
    seen, loads = {nest.write.buffer.uid}, []
    for a in nest.loads:
        if a.buffer.uid not in seen:
            seen.add(a.buffer.uid)
            loads.append(a)
    loads.sort(key=lambda a: -_touch(a, nest.loops, nest.extents, 0)[0] * a.itemsize)
    return ([nest.write] + loads)[:MAX_ACCESSES]


def _levels(nest):
    """Per loop level, innermost first: (loop, extent, outer iters, inner iters, figures),
    where figures holds (stride, unique bytes, lines, reuse) per access."""
    accesses = _accesses(nest)
    n = len(nest.loops)
    out = []
    for level in range(n - 1, -1, -1):
        loop, ext = nest.loops[level], nest.extents[level]
        outer = math.prod(nest.extents[:level + 1])
        inner = math.prod(nest.extents[level:])
        figures = []
        for a in accesses:
            unique, lines = _touch(a, nest.loops, nest.extents, level)
            figures.append((abs(a.strides.get(loop.var.uid, 0)), unique * a.itemsize, lines,
                            inner / max(unique, 1)))
        out.append((loop, ext, outer, inner, figures))
    return out


def _global(nests, allocs, main) -> list[float]:
    total = sum(n.iterations for n in nests)
    kinds = [f.kind for n in nests for f in n.loops]
    par = math.prod(e for f, e in zip(main.loops, main.extents) if f.kind in
                    ("parallel", "thread_binding"))
    vec = max([e for f, e in zip(main.loops, main.extents) if f.kind == "vectorized"],
              default=0)
    unroll = math.prod(e for f, e in zip(main.loops, main.extents) if f.kind == "unrolled")
    alloc_bytes = sum(math.prod(arith.const_int(d) or 1 for d in b.shape)
                      * np.dtype(b.dtype).itemsize for b in allocs)
    guarded = sum(n.iterations for n in nests if n.guarded)
    return [_lg(total), len(nests), _lg(main.iterations), main.iterations / max(total, 1),
            _lg(par), _lg(vec), _lg(unroll), _lg(alloc_bytes), guarded / max(total, 1),
            kinds.count("vectorized") + kinds.count("unrolled"), main.n_loads, main.n_ops]


def _analyse(func: ir.PrimFunc):
    nests, allocs = _nests(func.body)
    if not nests:
        return None
    main = max(nests, key=lambda n: n.iterations)
    return nests, allocs, main


def itervar_features(func: ir.PrimFunc) -> np.ndarray:
    """The itervar vector (length ``ITERVAR_LEN``) of a lowered function."""
    out = np.zeros(ITERVAR_LEN, dtype=np.float32)
    parts = _analyse(func)
    if parts is None:
        return out
    nests, allocs, main = parts
    out[:_GLOBAL] = _global(nests, allocs, main)
    for i, (loop, ext, outer, inner, figures) in enumerate(_levels(main)[:MAX_LEVELS]):
        row = [_lg(ext)]
        kind = "parallel" if loop.kind == "thread_binding" else loop.kind
        row += [float(kind == k) for k in KINDS]
        row += [_lg(outer), _lg(inner)]
        for stride, nbytes, lines, reuse in figures:
            row += [_lg(stride), _lg(nbytes), _lg(lines), _lg(reuse)]
        start = _GLOBAL + i * _PER_LEVEL
        out[start:start + len(row)] = row
    return out


def curve_features(func: ir.PrimFunc) -> np.ndarray:
    """The curve vector (length ``CURVE_LEN``) of a lowered function."""
    out = np.zeros(CURVE_LEN, dtype=np.float32)
    parts = _analyse(func)
    if parts is None:
        return out
    nests, allocs, main = parts
    out[:_GLOBAL] = _global(nests, allocs, main)
    levels = _levels(main)
    if not levels:
        return out
    xs = np.array([_lg(inner) for _, _, _, inner, _ in levels])
    k = len(CURVE_POINTS)
    for a in range(len(levels[0][4])):
        touch = np.array([_lg(lv[4][a][1]) for lv in levels])
        reuse = np.array([_lg(lv[4][a][3]) for lv in levels])
        start = _GLOBAL + a * 2 * k
        out[start:start + k] = np.interp(CURVE_POINTS, xs, touch)
        out[start + k:start + 2 * k] = np.interp(CURVE_POINTS, xs, reuse)
    return out


# ----------------------------------------------------------------------------- knobs


def _entity_row(knob, entity) -> list[float]:
    if knob.kind == "split":
        return [_lg(f) for f in entity.size[1:]]
    if knob.kind == "reorder":
        return [float(p) for p in entity.perm]
    if knob.kind == "annotate":
        return [float(("none", "unroll", "vec").index(a)) for a in entity.anns]
    val = entity.val
    if isinstance(val, (bool, int, float)) and not isinstance(val, complex):
        return [float(val)]
    return [float(knob.entities.index(entity))]


class _KnobTable:
    """Per knob, the feature row of every entity, so a point's vector is a concatenation."""

    def __init__(self, space):
        self.space = space
        self.rows = [np.array([_entity_row(k, e) for e in k.entities], dtype=np.float32)
                     for k in space.knobs]
        self.length = sum(r.shape[1] for r in self.rows)

    def __call__(self, index: int) -> np.ndarray:
        choice = self.space.point_to_knobs(index)
        if not self.rows:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([r[c] for r, c in zip(self.rows, choice)])


def knob_features(space, index: int) -> np.ndarray:
    """The knob vector of point ``index`` of ``space``."""
    return _KnobTable(space)(index)


# ----------------------------------------------------------------------------- extractor


class FeatureExtractor:
    """``extract(indices) -> (n, length)`` float32 array for configs of ``task``, cached per
    index. ``failed`` holds the indices whose candidate could not be instantiated/lowered."""

    def __init__(self, task, feature_type: str = "itervar", max_cache: int = 200_000):
        if feature_type not in FEATURE_TYPES:
            raise ValueError(f"feature_type must be one of {FEATURE_TYPES}, not "
                             f"{feature_type!r}")
        self.task = task
        self.space = task.config_space
        self.feature_type = feature_type
        self.max_cache = max_cache
        self.cache: dict[int, np.ndarray] = {}
        self.failed: set[int] = set()
        if feature_type == "knob":
            self._knobs = _KnobTable(self.space)
            self.length = self._knobs.length
        else:
            self.length = ITERVAR_LEN if feature_type == "itervar" else CURVE_LEN

    def one(self, index: int) -> np.ndarray:
        vec = self.cache.get(index)
        if vec is None:
            vec = self._compute(index)
            if len(self.cache) >= self.max_cache:
                self.cache.clear()  # a long search forgets; recomputing is cheap enough
            self.cache[index] = vec
        return vec

    def __call__(self, indices) -> np.ndarray:
        out = np.zeros((len(indices), self.length), dtype=np.float32)
        for row, index in enumerate(indices):
            out[row] = self.one(int(index))
        return out

    def _compute(self, index: int) -> np.ndarray:
        if self.feature_type == "knob":
            return self._knobs(index)
        try:
            s, tensors = self.task.instantiate(self.space.get(index))
            func = lower(s, tensors)
            if self.feature_type == "itervar":
                return itervar_features(func)
            return curve_features(func)
        except Exception as err:  # noqa: BLE001 - a bad candidate is data, not a crash
            log.debug("features of config %d of %s: %s: %s", index, self.task,
                      type(err).__name__, err)
            self.failed.add(index)
            return np.zeros(self.length, dtype=np.float32)

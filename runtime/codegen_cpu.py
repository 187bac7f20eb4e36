"""The ``"cpu"`` target: loop IR -> Python source -> ``numba.njit``.

What the generated kernel looks like, and why (the measured reasons are in
shared/research/numba_codegen.md):

* ``@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy",
  fastmath=..., parallel=...)``; the source is written to a content-hashed file by
  ``runtime.kernel_cache`` and imported from there, so a later process loads the machine
  code instead of compiling again.
* Loop annotations:

  ``parallel``    the outermost one on a path becomes ``numba.prange`` (``parallel=True`` is
                  passed only when there is one); a parallel loop inside it is a plain
                  ``range``, since numba runs nested pranges serially anyway.
  ``unrolled``    a constant extent is unrolled in the source (the loop variable replaced by
                  each value, indices simplified).  One unrolled nest may expand to at most
                  ``max_unroll`` statements (default 1024); a larger one stays a loop, with a
                  warning.  A symbolic extent stays a loop.
  ``vectorized``  a plain innermost ``range`` (LLVM's loop vectorizer does the work), or
                  unrolled lanes when the loop indexes a register tile (below).

* Register tiles.  An ``Allocate`` of scope ``"local"`` with a constant shape of at most
  ``max_tile`` elements, all of whose accesses are indexed only by ``unrolled`` /
  ``vectorized`` loops of constant extent, becomes one scalar local per element
  (``C_local_0_0``, ``C_local_0_1``, ...), one statement per element.  LLVM keeps scalars
  in registers and its SLP vectorizer packs them into zmm FMAs; it never promotes a numba
  array to registers.  This is the rule that matters most for speed.  A local buffer that
  does not qualify is an ``np.empty`` array, allocated once per thread: constant-shape
  allocations move out of serial loops (to the top of the enclosing ``prange`` body, or of
  the function), never out of a ``prange`` body.
* fastmath: ``True`` (all flags) unless the kernel has a register tile of more than one
  element; then every flag but ``reassoc`` (``NOREASSOC_FASTMATH``), because with ``reassoc``
  LLVM vectorizes the reduction loop around the tile instead of the tile (16x the registers,
  spills, gathers).  ``contract`` still gives FMAs.  A one-element tile is a scalar
  accumulator, whose reduction loop should be vectorized.
* ``exp, log, tanh, sigmoid, erf`` call ``runtime.fastmath`` (vectorizable polynomials for
  float32, libm for float64); ``sqrt`` is ``np.sqrt``, ``rsqrt`` is ``1 / np.sqrt``.
  float32 constants are written ``np.float32(...)`` so that arithmetic stays in float32.
* Guards.  ``if`` conditions that do not depend on a loop's variable move out of the loop,
  and a loop whose whole body is guarded by ``var + rest < bound`` gets the extent
  ``min(extent, bound - rest)`` (a clean loop for the vectorizer at the edge of a
  non-dividing split).

The speed of the result depends on numba's SLP vectorizer being on
(``NUMBA_SLP_VECTORIZE=1``), which ``runtime/__init__.py`` arranges before numba is
imported.  ``Module.vector_stats()`` counts vector FMAs in the assembly, to check.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from schedules import ir
from te import arith, dtypes
from te import expr as E

from .codegen_python import PythonSource

# Every LLVM fast-math flag except ``reassoc``: kernels whose reduction loop carries a
# register tile (numba_codegen.md, section 2, rule 2).
NOREASSOC_FASTMATH = frozenset({"nnan", "ninf", "nsz", "arcp", "contract", "afn"})
FASTMATH_MODES = ("auto", "full", "noreassoc", "off")

MAX_UNROLL = 1024  # statements one unrolled loop nest may expand to
MAX_TILE = 512  # elements of a register tile (32 zmm registers hold 512 float32)

_FAST = ("exp", "log", "tanh", "sigmoid", "erf")
# Float min/max as llvm.minnum/maxnum: numba's min/max compile to a compare and a select that
# LLVM does not vectorize as a reduction (a row maximum ran 10x slower than a row sum).
_MINMAX = ("max", "min")
_IGNORED_FLAGS = ("mcpu", "mattr", "mtriple", "keys", "libs", "num_cores", "opt_level")


class CodegenWarning(UserWarning):
    """The cpu code generator could not honour an annotation (it stays correct)."""


@dataclass
class CpuOptions:
    """Knobs of the cpu target; ``build(..., target="cpu -fastmath=off -parallel=0")``."""

    fastmath: str = "auto"  # auto | full | noreassoc | off
    parallel: bool = True  # False: parallel loops run serially (cheaper to compile)
    max_unroll: int = MAX_UNROLL
    max_tile: int = MAX_TILE

    @classmethod
    def parse(cls, flags: list) -> "CpuOptions":
        """Options from target-string flags such as ``["-fastmath=off", "-parallel=0"]``."""
        from .build import BuildError

        opts = cls()
        for flag in flags:
            key, _, value = flag.lstrip("-").partition("=")
            key = key.replace("-", "_")
            if key == "fastmath":
                if value not in FASTMATH_MODES:
                    raise BuildError(f"target flag {flag!r}: fastmath must be one of "
                                     f"{', '.join(FASTMATH_MODES)}")
                opts.fastmath = value
            elif key == "parallel":
                opts.parallel = value.lower() not in ("0", "false", "no", "off")
            elif key in ("max_unroll", "max_tile"):
                try:
                    setattr(opts, key, int(value))
                except ValueError:
                    raise BuildError(f"target flag {flag!r}: {key} needs an integer") from None
            elif key in _IGNORED_FLAGS:
                continue  # TVM llvm-target flags: numba always compiles for the host CPU
            else:
                raise BuildError(f"unknown cpu target flag {flag!r}; known: -fastmath=, "
                                 "-parallel=, -max_unroll=, -max_tile=")
        return opts


@dataclass
class CpuPlan:
    """What the passes decided for one kernel."""

    body: ir.Stmt
    tiles: dict = field(default_factory=dict)  # buffer uid -> Buffer kept in scalars
    parallel: bool = False  # a prange is emitted
    fastmath: object = True  # True, False or a set of flags
    notes: list = field(default_factory=list)


# ------------------------------------------------------------------------------------------
# Analysis: register tiles and the loops to unroll
# ------------------------------------------------------------------------------------------


def _const(e):
    return e.value if isinstance(e, E.Const) and dtypes.is_int(e.dtype) else None


def _loads(e):
    for node in E.walk(e):
        if isinstance(node, ir.BufferLoad):
            yield node


def _tile_candidates(body: ir.Stmt, max_tile: int):
    """``{buffer uid: (buffer, set of ids of the For loops its indices need, reason)}`` for
    every constant-shape local allocation; reason is None when it can be a register tile."""
    out = {}

    def visit(s, loops):
        if isinstance(s, ir.Allocate):
            b = s.buffer
            shape = [_const(d) for d in b.shape]
            reason = None
            if b.scope != "local":
                reason = "scope"
            elif any(d is None for d in shape):
                reason = "symbolic shape"
            elif b.strides is not None:
                reason = "storage_align"
            elif _prod(shape) > max_tile:
                reason = f"{_prod(shape)} elements > max_tile={max_tile}"
            if reason != "scope":
                need: set = set()
                reason = reason or _tile_loops(s.body, b, need)
                out[b.uid] = (b, need, reason)
        if isinstance(s, ir.For):
            loops = loops + [s]
        for k in s.children():
            visit(k, loops)

    visit(body, [])
    return out


def _tile_loops(body, buf, need: set):
    """Collect the loops (inside the allocation) whose variables index ``buf``; return a
    reason if some index is not made of constant unrolled/vectorized loop variables."""
    problem = []

    def check(indices, loops):
        for idx in indices:
            for v in E.free_vars(idx):
                loop = next((f for f in reversed(loops) if f.var.uid == v.uid), None)
                if loop is None:
                    problem.append(f"index uses {v.name}, which is not a loop inside it")
                elif loop.kind not in ("unrolled", "vectorized"):
                    problem.append(f"loop {v.name} is {loop.kind}, not unrolled/vectorized")
                elif _const(loop.extent) is None:
                    problem.append(f"loop {v.name} has a symbolic extent")
                else:
                    need.add(id(loop))

    def visit(s, loops):
        if isinstance(s, ir.Store) and s.buffer is buf:
            check(s.indices, loops)
        for e in s.exprs():
            for ld in _loads(e):
                if ld.buffer is buf:
                    check(ld.indices, loops)
        if isinstance(s, ir.For):
            loops = loops + [s]
        for k in s.children():
            visit(k, loops)

    visit(body, [])
    return problem[0] if problem else None


def _prod(xs):
    p = 1
    for x in xs:
        p *= x
    return p


def _expanded_size(s, unroll: set) -> int:
    """Statements the source will have for ``s`` once the loops in ``unroll`` are unrolled."""
    if isinstance(s, ir.For):
        inner = _expanded_size(s.body, unroll)
        return inner * _const(s.extent) if id(s) in unroll else inner + 1
    if isinstance(s, ir.Seq):
        return sum(_expanded_size(k, unroll) for k in s.stmts)
    if isinstance(s, (ir.Allocate,)):
        return _expanded_size(s.body, unroll)
    return 1 + sum(_expanded_size(k, unroll) for k in s.children())


def _over_budget(body, unroll: set, limit: int) -> list:
    """Outermost unrolled loops whose expansion exceeds ``limit`` statements."""
    found = []

    def visit(s):
        if isinstance(s, ir.For) and id(s) in unroll:
            size = _expanded_size(s, unroll)
            if size > limit:
                found.append((s, size))
                return  # decide the outer loop first; inner ones are seen after
            return
        for k in s.children():
            visit(k)

    visit(body)
    return found


def _analyse(body: ir.Stmt, opts: CpuOptions, notes: list):
    """The set of For ids to unroll and the register tiles ``{uid: Buffer}``."""
    candidates = _tile_candidates(body, opts.max_tile)
    unrollable = {}
    for s in ir.walk_stmts(body):
        if isinstance(s, ir.For) and s.kind in ("unrolled", "vectorized") and \
                _const(s.extent) is not None:
            unrollable[id(s)] = s
    dropped: set = set()
    while True:
        tiles = {
            uid: b for uid, (b, need, reason) in candidates.items()
            if reason is None and not (need & dropped)
        }
        unroll = {i for i, s in unrollable.items() if s.kind == "unrolled" and i not in dropped}
        for uid in tiles:
            unroll |= candidates[uid][1]
        over = _over_budget(body, unroll, opts.max_unroll)
        if not over:
            break
        for loop, size in over:
            dropped.add(id(loop))
            msg = (f"unrolling loop {loop.var.name} (extent {loop.extent}) would emit {size} "
                   f"statements (> max_unroll={opts.max_unroll}); it stays a loop")
            warnings.warn(msg, CodegenWarning, stacklevel=4)
            notes.append(msg)
    for uid, (b, need, reason) in candidates.items():
        if uid in tiles:
            continue
        if reason is None:
            reason = "a loop indexing it could not be unrolled"
        notes.append(f"local buffer {b.name} stays an array: {reason}")
    return unroll, tiles


# ------------------------------------------------------------------------------------------
# Rewriting: unroll, simplify, tighten guards, hoist allocations
# ------------------------------------------------------------------------------------------


class _Expander:
    """Top-down copy of the body with the chosen loops unrolled and their variables replaced
    by constants; conditions that become constant are resolved."""

    def __init__(self, unroll: set, tiles: dict | None = None):
        self.unroll = unroll
        self.tiles = tiles or {}
        self.specialized: list = []  # names of the tiles given a guard-free fast path

    def expr(self, e, env, bounds):
        if not env:
            return e
        e2 = E.substitute(e, env)
        return e2 if e2 is e else arith.simplify(e2, bounds)

    def visit(self, s, env, bounds):
        if isinstance(s, ir.For):
            extent = self.expr(s.extent, env, bounds)
            if id(s) in self.unroll:
                n = _const(extent)
                copies = []
                for i in range(n):
                    env2 = dict(env)
                    env2[s.var] = E.Const(i, s.var.dtype)
                    copies.append(self.visit(s.body, env2, bounds))
                return ir.seq(copies)
            hi = _const(arith.simplify(extent))
            bounds2 = dict(bounds)
            bounds2[s.var] = (0, None if hi is None else hi - 1)
            body = self.visit(s.body, env, bounds2)
            return ir.For(s.var, extent, s.kind, body, s.thread_tag, s.pragmas)
        if isinstance(s, ir.Seq):
            return ir.seq([self.visit(k, env, bounds) for k in s.stmts])
        if isinstance(s, ir.Store):
            return ir.Store(s.buffer, [self.expr(i, env, bounds) for i in s.indices],
                            self.expr(s.value, env, bounds))
        if isinstance(s, ir.IfThenElse):
            cond = self.expr(s.condition, env, bounds)
            if isinstance(cond, E.Const):
                if cond.value:
                    return self.visit(s.then_case, env, bounds)
                return ir.seq([]) if s.else_case is None else self.visit(s.else_case, env,
                                                                          bounds)
            then = self.visit(s.then_case, env, bounds)
            other = None if s.else_case is None else self.visit(s.else_case, env, bounds)
            return ir.IfThenElse(cond, then, other)
        if isinstance(s, ir.Let):
            return ir.Let(s.var, self.expr(s.value, env, bounds), self.visit(s.body, env, bounds))
        if isinstance(s, ir.Allocate):
            body = self.visit(s.body, env, bounds)
            if s.buffer.uid in self.tiles:
                return self.specialize(s, body, env, bounds)
            return ir.Allocate(s.buffer, body)
        return s

    def specialize(self, alloc, fast, env, bounds):
        """Edge tiles of a non-dividing split leave an ``if`` around almost every unrolled
        statement: slow code, and a compile time that explodes (one basic block each).
        When those guards only depend on variables fixed outside the tile, emit
        ``if <the tile is whole>: <unrolled tile, no guards> else: <the same in loops, the
        tile in an array>``."""
        inner = _bound_vars(fast)
        guards = {}
        for st in ir.walk_stmts(fast):
            if isinstance(st, ir.IfThenElse) and st.else_case is None:
                for c in _conjuncts(st.condition):
                    if all(v.uid not in inner for v in E.free_vars(c)):
                        guards[c.key] = c
        if not guards:
            return ir.Allocate(alloc.buffer, fast)
        whole = _strongest(list(guards.values()))
        fast = _drop_guards(fast, set(guards))
        b = alloc.buffer
        arr = ir.Buffer(b.name + ".edge", b.shape, b.dtype, b.scope)
        slow = _Expander(set()).visit(_rename_buffer(alloc.body, b, arr), env, bounds)
        self.specialized.append(b.name)
        return ir.IfThenElse(whole, ir.Allocate(b, fast), ir.Allocate(arr, slow))


def _bound_vars(s) -> set:
    return {st.var.uid for st in ir.walk_stmts(s) if isinstance(st, (ir.For, ir.Let))}


def _lt_form(c):
    """``c`` as ``aff < 0`` (an Affine of integers), or None."""
    if not isinstance(c, (E.LT, E.LE, E.GT, E.GE)) or not dtypes.is_int(c.a.dtype):
        return None
    a, b = (c.a, c.b) if isinstance(c, (E.LT, E.LE)) else (c.b, c.a)
    aff = arith.Affine.of(a).plus(arith.Affine.of(b), -1)
    if isinstance(c, (E.LE, E.GE)):
        aff = aff.plus(arith.Affine(aff.dtype, -1))  # a <= b  <=>  a - b - 1 < 0
    return aff


def _strongest(conds: list):
    """A conjunction implying every condition of ``conds``: of the conditions that differ only
    in their constant (``j*16 + 6 < 70``, ``j*16 + 15 < 70``), the strongest."""
    best: dict = {}
    other = []
    for c in conds:
        aff = _lt_form(c)
        if aff is None:
            other.append(c)
            continue
        key = tuple(sorted((k, coeff) for k, (_, coeff) in aff.terms.items()))
        if key not in best or aff.const > best[key].const:
            best[key] = aff
    out = []
    for aff in best.values():
        pos = arith.Affine(aff.dtype, max(aff.const, 0),
                           {k: v for k, v in aff.terms.items() if v[1] > 0})
        neg = arith.Affine(aff.dtype, max(-aff.const, 0),
                           {k: [t, -c] for k, (t, c) in aff.terms.items() if c < 0})
        out.append(E.LT(pos.to_expr(), neg.to_expr()))
    return _conjunction(out + other)


def _drop_guards(s, keys: set):
    def fstmt(node):
        if isinstance(node, ir.IfThenElse) and node.else_case is None:
            rest = [c for c in _conjuncts(node.condition) if c.key not in keys]
            if not rest:
                return node.then_case
            if len(rest) < len(_conjuncts(node.condition)):
                return ir.IfThenElse(_conjunction(rest), node.then_case)
        return None

    return ir.rewrite(s, fstmt=fstmt)


def _rename_buffer(s, old, new):
    def fexpr(e):
        def fn(node):
            if isinstance(node, ir.BufferLoad) and node.buffer is old:
                return ir.BufferLoad(new, node.indices)
            return None
        return E.post_order_rewrite(e, fn)

    def fstmt(node):
        if isinstance(node, ir.Store) and node.buffer is old:
            return ir.Store(new, node.indices, node.value)
        return None

    return ir.rewrite(s, fstmt=fstmt, fexpr=fexpr)


def _conjuncts(c):
    if isinstance(c, E.And):
        return _conjuncts(c.a) + _conjuncts(c.b)
    return [c]


def _conjunction(cs):
    out = cs[0]
    for c in cs[1:]:
        out = E.And(out, c)
    return out


def _upper_bound(cond, var):
    """For ``var + rest < bound`` (or ``<=``, or the mirrored ``>``/``>=`` forms) return the
    exclusive bound ``bound - rest`` on ``var``; None if the condition is not of that form."""
    if not isinstance(cond, (E.LT, E.LE, E.GT, E.GE)) or not dtypes.is_int(cond.a.dtype):
        return None
    if isinstance(cond, (E.LT, E.LE)):
        lhs, rhs, inclusive = cond.a, cond.b, isinstance(cond, E.LE)
    else:
        lhs, rhs, inclusive = cond.b, cond.a, isinstance(cond, E.GE)
    diff = arith.Affine.of(lhs).plus(arith.Affine.of(rhs), -1)  # lhs - rhs < 0
    entry = diff.terms.get(var.key)
    if entry is None or entry[1] != 1:
        return None
    rest = arith.Affine(diff.dtype, diff.const,
                        {k: v for k, v in diff.terms.items() if k != var.key})
    if any(var.uid == v.uid for t, _ in rest.terms.values() for v in E.free_vars(t)):
        return None
    bound = arith.Affine(diff.dtype).plus(rest, -1)  # var < -rest
    if inclusive:
        bound = bound.plus(arith.Affine(diff.dtype, 1))
    return _affine_expr(bound)


def _affine_expr(aff):
    """``aff`` as positive terms and constant first, then the subtracted terms
    (``70 - i * 32`` rather than ``0 - i * 32 + 70``)."""
    pos = arith.Affine(aff.dtype, max(aff.const, 0),
                       {k: v for k, v in aff.terms.items() if v[1] > 0})
    neg = arith.Affine(aff.dtype, max(-aff.const, 0),
                       {k: [t, -c] for k, (t, c) in aff.terms.items() if c < 0})
    if not neg.terms and neg.const == 0:
        return pos.to_expr()
    if not pos.terms and pos.const == 0:
        return aff.to_expr()
    return E.Sub(pos.to_expr(), neg.to_expr())


def _tighten(s: ir.Stmt, bounds: dict) -> ir.Stmt:
    """Move loop-invariant guard conjuncts out of loops, and turn ``var < bound`` guards into
    the loop's extent (bottom-up)."""

    def fstmt(node):
        if not isinstance(node, ir.For) or node.kind == "parallel":
            return None
        body = node.body
        if not isinstance(body, ir.IfThenElse) or body.else_case is not None:
            return None
        outside, inside, extent = [], [], node.extent
        for c in _conjuncts(body.condition):
            if all(v.uid != node.var.uid for v in E.free_vars(c)):
                outside.append(c)
                continue
            bound = _upper_bound(c, node.var)
            if bound is not None:
                extent = E.Min(extent, bound)
                hi = arith.bounds_of(bound, bounds)[0]
                if hi is not None and _const(node.extent) is not None and \
                        hi >= _const(node.extent):
                    extent = node.extent  # the guard never cuts the loop
            else:
                inside.append(c)
        if not outside and extent is node.extent:
            return None
        inner = body.then_case if not inside else ir.IfThenElse(_conjunction(inside),
                                                                body.then_case)
        loop = ir.For(node.var, extent, node.kind, inner, node.thread_tag, node.pragmas)
        return ir.IfThenElse(_conjunction(outside), loop) if outside else loop

    return ir.rewrite(s, fstmt=fstmt)


def _hoist_allocations(body: ir.Stmt, tiles: dict, scalar_uids: set, parallel: bool):
    """Move array allocations with a constant (or parameter-only) shape out of serial loops,
    to the top of the enclosing prange body or of the function."""

    def hoistable(b):
        if b.uid in tiles:
            return False
        return all(v.uid in scalar_uids for d in b.shape for v in E.free_vars(d)) and (
            b.strides is None or all(not E.free_vars(x) for x in b.strides))

    def wrap(stmt, bufs):
        for b in reversed(bufs):
            stmt = ir.Allocate(b, stmt)
        return stmt

    # An unrolled loop leaves one Allocate per copy; numba's parfor passes miscompile a
    # function that rebinds an array name between prange loops, so those are hoisted too.
    seen: set = set()
    repeated: set = set()
    for st in ir.walk_stmts(body):
        if isinstance(st, ir.Allocate):
            (repeated if st.buffer.uid in seen else seen).add(st.buffer.uid)

    def visit(s, target: list, in_loop: bool, in_prange: bool):
        if isinstance(s, ir.Allocate):
            if (in_loop or s.buffer.uid in repeated) and hoistable(s.buffer):
                if all(b.uid != s.buffer.uid for b in target):
                    target.append(s.buffer)
                return visit(s.body, target, in_loop, in_prange)
            return ir.Allocate(s.buffer, visit(s.body, target, in_loop, in_prange))
        if isinstance(s, ir.For):
            if s.kind == "parallel" and parallel and not in_prange:
                inner: list = []
                b = visit(s.body, inner, False, True)
                return ir.For(s.var, s.extent, s.kind, wrap(b, inner), s.thread_tag, s.pragmas)
            return ir.For(s.var, s.extent, s.kind, visit(s.body, target, True, in_prange),
                          s.thread_tag, s.pragmas)
        kids = tuple(visit(k, target, in_loop, in_prange) for k in s.children())
        return s.rebuild(kids, s.exprs()) if kids else s

    top: list = []
    out = visit(body, top, False, False)
    return wrap(out, top)


def plan(func: ir.PrimFunc, opts: CpuOptions | None = None) -> CpuPlan:
    """Run the cpu passes on a lowered function."""
    from .build import BuildError

    opts = opts or CpuOptions()
    for s in ir.walk_stmts(func.body):
        if isinstance(s, ir.Barrier):
            raise BuildError(f"{func.name}: the cpu target cannot run a kernel with barriers "
                             "(thread_binding with shared memory is a cuda schedule)")
    notes: list = []
    unroll, tiles = _analyse(func.body, opts, notes)
    expander = _Expander(unroll, tiles)
    body = expander.visit(func.body, {}, {v: (0, None) for v in func.scalar_params})
    for name in expander.specialized:
        notes.append(f"register tile {name}: guard-free path for whole tiles, loops at the edge")
    bounds = {v: (0, None) for v in func.scalar_params}
    body = _tighten(body, bounds)
    has_parallel = opts.parallel and any(
        isinstance(s, ir.For) and s.kind == "parallel" for s in ir.walk_stmts(body))
    scalar_uids = {v.uid for v in func.scalar_params}
    body = _hoist_allocations(body, tiles, scalar_uids, has_parallel)
    if opts.fastmath == "auto":
        # A one-element tile is a scalar accumulator (a row maximum or sum): there, LLVM
        # vectorizing the reduction loop around it is exactly what should happen.
        fm = set(NOREASSOC_FASTMATH) if any(_prod(_const(d) for d in b.shape) > 1
                                            for b in tiles.values()) else True
    else:
        fm = {"full": True, "off": False, "noreassoc": set(NOREASSOC_FASTMATH)}[opts.fastmath]
    return CpuPlan(body, tiles, has_parallel, fm, notes)


# ------------------------------------------------------------------------------------------
# Source
# ------------------------------------------------------------------------------------------


class CpuSource(PythonSource):
    """Writes a planned PrimFunc as the source of a numba module."""

    target = "cpu"

    def __init__(self, func: ir.PrimFunc, p: CpuPlan):
        super().__init__(func)
        # Module-level names the generated code uses besides the base class's reserved ones.
        reserved = {f"fast_{n}" for n in _FAST + _MINMAX}
        self.names.taken |= reserved
        if self.fn_name in reserved:
            self.fn_name = self.names.get("fn_cpu", func.name)
        self.plan = p
        self.prange_depth = 0
        self.fast_used = sorted({
            name for s in ir.walk_stmts(p.body) for e in s.exprs() for n in E.walk(e)
            for name in [_fast_name(n)] if name is not None
        })
        self.consts: dict = {}
        self.const_lines: list = []
        self.cse: dict = {}  # BufferLoad key -> name of the local holding it
        self.helpers: list = []  # source lines of outlined prange bodies
        # numba's parfor lowering cannot pass a 0-d array into a prange body ("getitem(float32,
        # Tuple())"): in parallel kernels 0-d buffers are 1-element arrays indexed with [0]
        # (parameters through a view made before any loop).
        zero_d = [b for b in func.params if not b.shape] + [
            st.buffer for st in ir.walk_stmts(p.body)
            if isinstance(st, ir.Allocate) and not st.buffer.shape]
        self.zero_d = {b.uid for b in zero_d} if p.parallel else set()
        self.opaque = None  # name of the function's opaque zero (see ``function``)
        self.opaque_used = False

    # -- hooks ---------------------------------------------------------------------------
    def imports(self) -> list:
        out = ["import math", "", "import numba", "import numpy as np", "from numba import prange"]
        if self.fast_used:
            out.append(f"from runtime.fastmath import "
                       f"{', '.join('fast_' + n for n in self.fast_used)}")
        return out

    def decorator(self) -> list:
        fm = self.plan.fastmath
        fm_text = repr(fm) if isinstance(fm, bool) else "{" + ", ".join(
            repr(f) for f in sorted(fm)) + "}"
        # Only explicit prange loops run in parallel. Parfor fusion stays off: it reorders
        # statements across prange loops using read/write sets that cannot see the writes
        # of outlined loop bodies, and so moved reads of a buffer before the loop filling it.
        par = "False" if not self.plan.parallel else "{'prange': True, 'fusion': False}"
        return [f"@numba.njit(cache=True, nogil=True, boundscheck=False, error_model='numpy', "
                f"fastmath={fm_text}, parallel={par})"]

    def loop_range(self, loop: ir.For, extent: str) -> str:
        return f"range({extent})"

    def intrinsics(self, x: str, dtype: str) -> dict:
        # exp, log, tanh, sigmoid, erf: runtime.fastmath's vectorizable versions, not libm.
        table = super().intrinsics(x, dtype)
        table.update({name: f"fast_{name}({x})" for name in _FAST})
        one = "np.float32(1.0)" if dtype == "float32" else "1.0"
        table["rsqrt"] = f"({one} / np.sqrt({x}))"
        return table

    def const(self, c: E.Const) -> str:
        if isinstance(c.value, float) and c.dtype != "float64":
            return typed_float_global(self, c)
        return super().const(c)

    # -- statements -------------------------------------------------------------------------
    def block(self, s, level):
        n = len(self.lines)
        self.stmt(s, level)
        if len(self.lines) == n:
            self.emit(level, "pass")

    def stmt_Seq(self, s, level):
        group: list = []
        for k in s.stmts:
            if isinstance(k, ir.Store):
                group.append(k)
                continue
            self.store_group(group, level)
            group = []
            self.stmt(k, level)
        self.store_group(group, level)

    def store_group(self, stores: list, level: int):
        """Straight-line stores (what unrolling leaves): a buffer element read more than
        once is loaded once into a local first, unless the group writes that buffer.  The
        source and numba's IR get much shorter, and so does the compile."""
        if len(stores) > 1:
            written = {st.buffer.uid for st in stores}
            count: dict = {}
            first: dict = {}
            for st in stores:
                for e in st.indices + (st.value,):
                    for ld in _loads(e):
                        b = ld.buffer
                        if b.uid in written or b.uid in self.plan.tiles:
                            continue
                        count[ld.key] = count.get(ld.key, 0) + 1
                        first.setdefault(ld.key, ld)
            saved = dict(self.cse)
            for key, ld in first.items():
                if count[key] > 1 and key not in self.cse:
                    name = self.names.get(("cse", len(self.names.names)),
                                          f"{self.buf(ld.buffer)}_v")
                    self.emit(level, f"{name} = {self.ref(ld.buffer, ld.indices)}")
                    self.cse[key] = name
            for st in stores:
                self.stmt(st, level)
            self.cse = saved
            return
        for st in stores:
            self.stmt(st, level)

    def stmt_For(self, s, level):
        prange = s.kind == "parallel" and self.plan.parallel and self.prange_depth == 0
        rng = "prange" if prange else "range"
        note = "" if s.kind == "serial" else f"  # {s.kind}"
        if s.thread_tag:
            note += f" {s.thread_tag}"
        extent = self.expr(s.extent)
        if s.kind == "vectorized" and self.opaque and _const(s.extent) is not None \
                and _const(s.extent) >= 4:
            # A constant trip count lets LLVM unroll the loop completely before its loop
            # vectorizer runs, and the vectorizer then picks an outer loop (with gathers):
            # 5 GFLOP/s instead of 16 for the loop-permutation matmul of TVM's tutorial.
            extent = f"{extent} + {self.opaque}"
            self.opaque_used = True
        self.emit(level, f"for {self.var(s.var)} in {rng}({extent}):{note}")
        self.prange_depth += prange
        if prange and self.outline_ok(s.body):
            self.outline(s.body, level + 1, s.var)
        else:
            self.block(s.body, level + 1)
        self.prange_depth -= prange

    # -- prange bodies as serial helper functions ----------------------------------------------
    # numba's parfor passes analyse (and compile a second time) the whole body of a prange;
    # for an unrolled microkernel that is 2-3x the compile time of the same code without
    # parallel=True.  The body therefore becomes a plain @njit function of its free
    # variables, and the prange loop only calls it (LLVM may inline it again).  Arrays the
    # body allocates are then allocated by each call, so they are private to a thread.

    def outline_ok(self, body) -> bool:
        free_bufs, _ = _free_names(body)
        return not any(b.uid in self.plan.tiles for b in free_bufs)

    def outline(self, body, level, loop_var):
        free_bufs, free_vars = _free_names(body)
        params = [self.buf(b) for b in free_bufs] + [self.var(v) for v in free_vars]
        name = self.names.get(("helper", len(self.helpers)),
                              f"{self.fn_name}_body{len(self.helpers)}")
        # numba types a prange index as int64 in the function but as uint64 inside the
        # gufunc it makes of the loop body: without the cast the helper compiles twice.
        args = [f"np.int64({p})" if v is not None and v.uid == loop_var.uid else p
                for p, v in zip(params, [None] * len(free_bufs) + free_vars)]
        self.emit(level, f"{name}({', '.join(args)})")
        outer_lines, self.lines = self.lines, []
        depth, self.prange_depth = self.prange_depth, 0
        parallel, self.plan.parallel = self.plan.parallel, False
        try:
            nonneg = [self.var(v) for v in free_vars if v.uid == loop_var.uid]
            self.function(name, params, free_bufs, body, nonneg)
        finally:
            self.plan.parallel = parallel
            self.prange_depth = depth
            self.helpers.append(self.lines)
            self.lines = outer_lines

    def function(self, name, params, arrays, body, nonneg=()):
        """Emit one decorated function into ``self.lines``; ``nonneg``: parameters known
        to be >= 0 (a prange index passed to an outlined body)."""
        for line in self.decorator():
            self.emit(0, line)
        self.emit(0, f"def {name}({', '.join(params)}):")
        for v in nonneg:
            # Never taken. It tells LLVM the index is not negative, so numba's negative-index
            # wraparound folds away; otherwise a vectorized loop indexing with it gathers
            # (a packing copy ran 3x slower).
            self.emit(1, f"if {v} < 0:")
            self.emit(2, "return")
        start = len(self.lines)
        saved = self.opaque, self.opaque_used
        shaped = [b for b in arrays if len(b.shape) > 0]
        self.opaque = self.names.get(("opaque", name), "opaque0") if shaped else None
        self.opaque_used = False
        try:
            self.block(body, 1)
            if self.opaque_used:
                self.lines.insert(start, self.indent + (
                    f"{self.opaque} = min({self.buf(shaped[0])}.shape[0], 0)  # always 0, but "
                    "LLVM cannot tell: vectorized loops are not fully unrolled before LLVM's "
                    "loop vectorizer sees them"))
        finally:
            self.opaque, self.opaque_used = saved

    def stmt_IfThenElse(self, s, level):
        self.emit(level, f"if {self.expr(s.condition)}:")
        self.block(s.then_case, level + 1)
        if s.else_case is not None:
            self.emit(level, "else:")
            self.block(s.else_case, level + 1)

    def stmt_Let(self, s, level):
        self.emit(level, f"{self.var(s.var)} = {self.expr(s.value)}")
        self.stmt(s.body, level)

    def stmt_Allocate(self, s, level):
        b = s.buffer
        if b.uid in self.plan.tiles:
            dims = "x".join(str(d) for d in b.shape)
            self.emit(level, f"# register tile {self.buf(b)} ({dims} {b.dtype}) "
                             "in scalar locals")
        else:
            self.allocate(b, level)
        self.stmt(s.body, level)

    def allocate(self, b: ir.Buffer, level: int):
        name, dtype = self.buf(b), f"np.{b.dtype}"
        if b.uid in self.zero_d:
            self.emit(level, f"{name} = np.empty((1,), dtype={dtype})")
            return
        if b.strides is None:
            self.emit(level, f"{name} = np.empty({self.shape_tuple(b.shape)}, dtype={dtype})")
            return
        # storage_align: a flat array indexed through the padded strides.
        size = "1 + " + " + ".join(
            f"({self.expr(d)} - 1) * {self.expr(st)}" for d, st in zip(b.shape, b.strides))
        self.emit(level, f"{name} = np.empty({size}, dtype={dtype})")

    def stmt_Store(self, s, level):
        self.emit(level, f"{self.ref(s.buffer, s.indices)} = {self.expr(s.value)}")

    def ref(self, b: ir.Buffer, indices) -> str:
        if b.uid in self.plan.tiles:
            consts = [_const(arith.simplify(i)) for i in indices]
            if any(c is None for c in consts):
                raise AssertionError(f"register tile {b.name} indexed by "
                                     f"{[str(i) for i in indices]}")
            key = ("tile", b.uid) + tuple(consts)
            hint = self.buf(b) + "".join(f"_{c}" for c in consts)
            return self.names.get(key, hint)
        if b.uid in self.zero_d:
            return f"{self.buf(b)}[0]"
        if b.strides is not None:
            flat = E.Const(0, "int32")
            for i, st in zip(indices, b.strides):
                flat = flat + i * st
            return f"{self.buf(b)}[{self.expr(arith.simplify(flat))}]"
        return f"{self.buf(b)}[{self.index(indices)}]"

    def _fmt(self, e, prec):
        if isinstance(e, ir.BufferLoad):
            name = self.cse.get(e.key)
            return name if name is not None else self.ref(e.buffer, e.indices)
        if _fast_name(e) in _MINMAX:
            return f"fast_{e.symbol}({self.expr(e.a)}, {self.expr(e.b)})"
        return super()._fmt(e, prec)

    def buf(self, b: ir.Buffer) -> str:
        name = super().buf(b)
        if b.uid in self.zero_d:
            return self.names.get(("buf1d", b.uid), name + "_1d")
        return name

    def source(self) -> str:
        f = self.func
        params = [PythonSource.buf(self, b) for b in f.params] + \
            [self.var(v) for v in f.scalar_params]
        self.lines = []
        self.function(self.fn_name, params, f.params, self.plan.body)
        views = [f"{self.indent}{self.buf(b)} = {PythonSource.buf(self, b)}.reshape((1,))"
                 for b in f.params if b.uid in self.zero_d]
        at = next(n for n, line in enumerate(self.lines) if line.startswith("def ")) + 1
        self.lines[at:at] = views
        head = [f'"""Generated by tetune (target {self.target}) from `{_safe(f.name)}`."""', ""]
        for note in self.plan.notes:
            head.insert(1, f"# note: {_safe_comment(note)}")
        consts = ["", ""] + self.const_lines if self.const_lines else []
        helpers = [line for h in self.helpers for line in ["", ""] + h]
        return "\n".join(head + self.imports() + consts + helpers + ["", ""] + self.lines) + "\n"


def _fast_name(e) -> str | None:
    """The runtime.fastmath function (without ``fast_``) that expression node ``e`` uses."""
    if isinstance(e, E.Call) and e.name in _FAST:
        return e.name
    if isinstance(e, (E.Min, E.Max)) and dtypes.is_float(e.dtype) and e.a.dtype == e.b.dtype:
        return e.symbol
    return None


def _free_names(body: ir.Stmt):
    """Buffers and variables ``body`` uses but does not define, in first-use order."""
    bufs: dict = {}
    vars_: dict = {}
    bound_bufs: set = set()
    bound_vars: set = set()

    def use_expr(e):
        for node in E.walk(e):
            if isinstance(node, ir.BufferLoad) and node.buffer.uid not in bound_bufs:
                bufs.setdefault(node.buffer.uid, node.buffer)
            elif isinstance(node, E.Var) and node.uid not in bound_vars:
                vars_.setdefault(node.uid, node)

    def visit(s):
        if isinstance(s, ir.Allocate):
            bound_bufs.add(s.buffer.uid)
            for d in s.buffer.shape + (s.buffer.strides or ()):
                use_expr(d)
        elif isinstance(s, ir.For):
            use_expr(s.extent)
            bound_vars.add(s.var.uid)
        elif isinstance(s, ir.Let):
            use_expr(s.value)
            bound_vars.add(s.var.uid)
        elif isinstance(s, ir.Store):
            if s.buffer.uid not in bound_bufs:
                bufs.setdefault(s.buffer.uid, s.buffer)
        if not isinstance(s, (ir.For, ir.Let)):
            for e in s.exprs():
                use_expr(e)
        for k in s.children():
            visit(k)

    visit(body)
    return list(bufs.values()), list(vars_.values())


def _safe(text: str) -> str:
    import re

    return re.sub(r"[^\w .\-]", "_", text, flags=re.ASCII)


def _safe_comment(text: str) -> str:
    import re

    return re.sub(r"[^\w .,:;=<>()\-+*/]", "_", text, flags=re.ASCII)


# ------------------------------------------------------------------------------------------
# Build
# ------------------------------------------------------------------------------------------


def numba_signature(func: ir.PrimFunc):
    """The numba signature a Module call uses: C-contiguous arrays, then the scalars (integer
    extents as int64, float scalars in their dtype)."""
    import numba
    import numpy as np
    from numba.core import types

    args = [types.Array(numba.from_dtype(np.dtype(b.dtype)), len(b.shape), "C")
            for b in func.params]
    for v in func.scalar_params:  # as Module.bind passes them: ints as int, floats typed
        kind = np.dtype(v.dtype).kind
        args.append(types.int64 if kind in "iu" else numba.from_dtype(np.dtype(v.dtype)))
    return tuple(args)


def _fastmath_hash() -> str:
    # Kernels inline runtime.fastmath; numba's cache does not notice edits of that file,
    # so its contents are part of the cache key of every kernel that uses it.
    path = Path(__file__).with_name("fastmath.py")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def generate(func: ir.PrimFunc, opts: CpuOptions | None = None):
    """``(source, plan, function name)`` for ``func``."""
    from . import _numba_env

    _numba_env.ensure_slp()
    p = plan(func, opts)
    writer = CpuSource(func, p)
    return writer.source(), p, writer.fn_name


def build_cpu(func: ir.PrimFunc, opts: CpuOptions | None = None):
    """Generate, cache, import and compile (eagerly, for the signature a Module call uses)."""
    from . import kernel_cache
    from .build import BuildError
    from .module import Module

    opts = opts or CpuOptions()
    source, p, fn_name = generate(func, opts)
    flags_key = f"fastmath.py={_fastmath_hash()}" if "runtime.fastmath" in source else ""
    t0 = time.perf_counter()
    try:
        mod = kernel_cache.load_module(source, f"{func.name}", flags_key)
    except SyntaxError as err:  # a bug of this generator, not of the user's schedule
        raise BuildError(f"{func.name}: generated source does not parse ({err})") from err
    kernel = getattr(mod, fn_name)
    sig = numba_signature(func)
    hits_before = _cache_hits(kernel)
    try:
        kernel.compile(sig)
    except Exception as err:
        path = getattr(mod, "__file__", "?")
        raise BuildError(f"{func.name}: numba could not compile the generated kernel "
                         f"({type(err).__name__}: {str(err).strip()[:2000]})\nsource: {path}"
                         ) from err
    seconds = time.perf_counter() - t0
    module = Module(func, source, kernel, "cpu")
    module.signature = sig
    module.build_info = {
        "compile_seconds": seconds,
        "cache_hit": _cache_hits(kernel) > hits_before,
        "source_path": getattr(mod, "__file__", None),
        "fastmath": p.fastmath,
        "parallel": p.parallel,
        "register_tiles": [b.name for b in p.tiles.values()],
        "notes": list(p.notes),
    }
    return module


def _cache_hits(kernel) -> int:
    try:
        return sum(kernel.stats.cache_hits.values())
    except AttributeError:
        return 0


def typed_float_global(source, c: E.Const) -> str:
    """The name of a module global holding float constant ``c`` in its dtype (the cpu and
    cuda sources share this): numba freezes a global as a typed constant, while a bare
    literal would be float64 and promote the arithmetic, and ``np.float32(...)`` in the body
    is a call every statement pays for in compile time. ``source`` keeps ``consts`` (key ->
    name) and ``const_lines`` (the definitions)."""
    v = c.value
    if math.isnan(v):
        text, tag = "np.nan", "nan"
    elif math.isinf(v):
        text, tag = ("np.inf", "inf") if v > 0 else ("-np.inf", "minus_inf")
    else:
        text = repr(v)
        tag = text.replace("-", "m").replace(".", "p").replace("+", "")
    key = ("const", c.dtype, text)
    name = source.consts.get(key)
    if name is None:
        name = source.names.get(key, f"{c.dtype.upper()}_{tag}")
        source.consts[key] = name
        source.const_lines.append(f"{name} = np.{c.dtype}({text})")
    return name

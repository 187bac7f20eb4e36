"""The passes of the cuda target: a lowered function becomes kernels ready to be written.

``plan`` splits the function into one kernel per root stage, derives each kernel's launch
configuration and checks it against the device's limits, turns thread-bound loops into
thread indices (with guards where a loop is shorter than the launch), unrolls and finds the
register tiles (the cpu target's analysis), moves guards that vary across a block's threads
below the barriers they enclose, and collects the shared and local arrays.  See
``runtime.codegen_cuda`` for why each of these is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from schedules import gpu, ir
from te import arith
from te import expr as E

from . import cuda_env
from .codegen_cpu import _analyse, _Expander, _free_names


def _build_error(message: str):
    from .build import BuildError

    return BuildError(message)


@dataclass
class Kernel:
    """One ``@cuda.jit`` function and how it is launched."""

    name: str
    body: ir.Stmt
    buffers: list  # the arrays it is passed, in call order
    scalars: list  # then the scalar parameters it uses
    grid: tuple  # three expressions of the scalar parameters
    block: tuple  # three ints
    hw: dict  # uid of a thread-index Var -> "cuda.threadIdx.x", ...
    tiles: dict  # uid -> Buffer kept in scalar locals
    allocs: list  # shared and local arrays, declared at the top
    shared_bytes: int
    computes: list  # names of the global buffers it writes (for messages)


@dataclass
class CudaPlan:
    kernels: list
    temps: list  # global buffers between kernels, allocated by the host function
    outputs: set  # uids of the parameter buffers some kernel writes
    notes: list = field(default_factory=list)


def plan(func: ir.PrimFunc, opts, limits: dict | None = None):
    """Split a lowered function into kernels and run the cuda passes on each; ``opts`` has
    ``max_unroll`` and ``max_tile`` (``CudaOptions``)."""
    limits = limits or cuda_env.DEFAULT_LIMITS
    body, temps = func.body, []
    while isinstance(body, ir.Allocate):
        b = body.buffer
        if b.scope != "global":
            raise _build_error(
                f"{func.name}: {b.name} has scope {b.scope!r} but is computed at the root, "
                "outside every kernel; compute_at it inside the thread block that reads it")
        temps.append(b)
        body = body.body
    roots = list(body.stmts) if isinstance(body, ir.Seq) else [body]
    notes: list = []
    kernels = [_plan_kernel(func, n, root, opts, limits, notes) for n, root in enumerate(roots)]
    params = {b.uid for b in func.params}
    outputs = {s.buffer.uid for k in kernels for s in ir.walk_stmts(k.body)
               if isinstance(s, ir.Store) and s.buffer.uid in params}
    return CudaPlan(kernels, temps, outputs, notes)


def _plan_kernel(func, n, root, opts, limits, notes) -> Kernel:
    computes = sorted({s.buffer.name for s in ir.walk_stmts(root)
                       if isinstance(s, ir.Store) and s.buffer.scope == "global"})
    where = f"{func.name}: the kernel of {', '.join(computes) or 'nothing'}"
    loops = [s for s in ir.walk_stmts(root) if isinstance(s, ir.For)]
    for s in loops:
        if s.kind == "parallel":
            raise _build_error(f"{where}: loop {s.var.name} is 'parallel', a cpu annotation; "
                               "bind it to a thread axis instead")
    bound = [s for s in loops if s.kind == "thread_binding"
             and gpu.thread_kind(s.thread_tag) in ("block", "thread")]
    if not bound:
        raise _build_error(
            f"{where} is not bound to GPU threads: bind its outer axes to thread axes, e.g. "
            "bx, tx = s[C].split(s[C].fuse(*C.op.axis), factor=64); "
            "s[C].bind(bx, te.thread_axis('blockIdx.x')); "
            "s[C].bind(tx, te.thread_axis('threadIdx.x'))")
    per_tag: dict = {}
    for s in bound:
        per_tag.setdefault(s.thread_tag, []).append(s.extent)
    launch = {tag: _launch_extent(where, tag, exts) for tag, exts in per_tag.items()}
    block = tuple(arith.const_int(launch.get(f"threadIdx.{d}", E.Const(1, "int32")))
                  for d in "xyz")
    grid = tuple(launch.get(f"blockIdx.{d}", E.Const(1, "int32")) for d in "xyz")
    _check_launch(where, block, grid, limits)

    hw_vars = {tag: E.Var(tag, "int32") for tag in launch}
    body = _bind_threads(root, hw_vars, launch)
    unroll, tiles = _analyse(body, opts, notes)
    body = _KernelExpander(unroll, tiles).visit(body, {}, {v: (0, None)
                                                           for v in func.scalar_params})
    body = _uniform_barriers(body, {v.uid for v in hw_vars.values()
                                    if gpu.thread_kind(v.name) == "thread"}, where)
    allocs, shared_bytes = _allocations(where, body, tiles)
    limit = limits["max_shared_memory_per_block"]
    if shared_bytes > limit:
        names = ", ".join(f"{b.name} ({_nbytes(b)} B)" for b in allocs if b.scope == "shared")
        raise _build_error(f"{where}: {shared_bytes} bytes of shared memory per block > the "
                           f"limit of {limit} ({names}); use smaller tiles")
    bufs, free_vars = _free_names(body)
    scalar_uids = {v.uid for v in func.scalar_params}
    used = {v.uid for v in free_vars} | {v.uid for g in grid for v in E.free_vars(g)}
    for v in free_vars:
        if v.uid not in scalar_uids and v.uid not in {h.uid for h in hw_vars.values()}:
            raise AssertionError(f"{where}: {v.name} is not defined in the kernel")
    order = {b.uid: i for i, b in enumerate(list(func.params))}
    bufs = sorted(bufs, key=lambda b: order.get(b.uid, len(order)))
    scalars = [v for v in func.scalar_params if v.uid in used]
    hw = {v.uid: f"cuda.{v.name}" for v in hw_vars.values()}
    return Kernel(f"{func.name}_kernel{n}", body, bufs, scalars, grid, block, hw, tiles,
                  allocs, shared_bytes, computes)


def _launch_extent(where, tag, extents):
    consts = [arith.const_int(e) for e in extents]
    if all(c is not None for c in consts):
        return E.Const(max(consts), "int32")
    if gpu.thread_kind(tag) == "thread":
        sym = next(e for e, c in zip(extents, consts) if c is None)
        raise _build_error(f"{where}: {tag} is bound to a loop of symbolic extent {sym}; "
                           "thread extents must be constants (split the axis by a constant "
                           "factor and bind the inner part)")
    if len({e.key for e in extents}) == 1:
        return extents[0]
    raise _build_error(f"{where}: {tag} is bound to loops of different extents "
                       f"({', '.join(str(e) for e in extents)}); bind it to loops of one extent")


def _check_launch(where, block, grid, limits):
    threads = block[0] * block[1] * block[2]
    shape = " x ".join(f"threadIdx.{d}={x}" for d, x in zip("xyz", block) if x > 1) or "1"
    if threads > limits["max_threads_per_block"]:
        raise _build_error(f"{where}: {threads} threads per block ({shape}) > the limit of "
                           f"{limits['max_threads_per_block']}; bind smaller extents")
    for d, x, most in zip("xyz", block, limits["max_block_dim"]):
        if x > most:
            raise _build_error(f"{where}: threadIdx.{d} has extent {x} > the limit of {most}")
    for d, g, most in zip("xyz", grid, limits["max_grid_dim"]):
        c = arith.const_int(g)
        if c is not None and c > most:
            raise _build_error(f"{where}: blockIdx.{d} has extent {c} > the limit of {most}")


def _bind_threads(body, hw_vars, launch):
    """Thread-bound loops become ``Let(v, <thread index>)`` plus a guard where the loop is
    shorter than the launch; vthread loops become serial, vectorized loops unrolled."""

    def fstmt(s):
        if not isinstance(s, ir.For):
            return None
        if s.kind == "vectorized":
            return ir.For(s.var, s.extent, "unrolled", s.body, "", s.pragmas)
        if s.kind != "thread_binding":
            return None
        if gpu.thread_kind(s.thread_tag) == "vthread":
            return ir.For(s.var, s.extent, "serial", s.body, s.thread_tag, s.pragmas)
        whole = launch[s.thread_tag]
        inner = s.body
        if s.extent.key != whole.key:
            inner = ir.IfThenElse(s.var < s.extent, inner)
        return ir.Let(s.var, hw_vars[s.thread_tag], inner)

    return ir.rewrite(body, fstmt=fstmt)


class _KernelExpander(_Expander):
    """The cpu target's unroller, without its second copy of a register tile's code for the
    edge of a non-dividing split: that copy sits in an ``if``, which must not enclose a
    barrier, and on a GPU the guards it saves are cheap predicated instructions anyway."""

    def specialize(self, alloc, fast, env, bounds):
        return ir.Allocate(alloc.buffer, fast)


def _stmt_vars(s) -> set:
    return {v.uid for st in ir.walk_stmts(s) for e in st.exprs() for v in E.free_vars(e)}


def _has_barrier(s) -> bool:
    return any(isinstance(x, ir.Barrier) for x in ir.walk_stmts(s))


def _uniform_barriers(body, thread_vars: set, where: str):
    """Push guards that vary across the threads of a block below the barriers they enclose
    (see the module docstring); then check that no barrier is left in divergent code."""
    varying = set(thread_vars)

    def varies(e):
        return any(v.uid in varying for v in E.free_vars(e))

    def push(cond, s):
        if isinstance(s, ir.Barrier):
            return s
        if not _has_barrier(s):
            cond_vars = {v.uid for v in E.free_vars(cond)} & varying
            return ir.IfThenElse(cond, s) if _stmt_vars(s) & cond_vars else s
        if isinstance(s, ir.Seq):
            return ir.seq([push(cond, k) for k in s.stmts])
        if isinstance(s, ir.For):
            return ir.For(s.var, s.extent, s.kind, push(cond, s.body), s.thread_tag, s.pragmas)
        if isinstance(s, ir.Allocate):
            return ir.Allocate(s.buffer, push(cond, s.body))
        if isinstance(s, ir.Let):
            if varies(s.value):
                varying.add(s.var.uid)
            return ir.Let(s.var, s.value, push(cond, s.body))
        if isinstance(s, ir.IfThenElse):
            if s.else_case is None and varies(s.condition):
                return push(_and(cond, s.condition), s.then_case)
            other = None if s.else_case is None else push(cond, s.else_case)
            return ir.IfThenElse(s.condition, push(cond, s.then_case), other)
        raise AssertionError(f"cannot move a guard into {type(s).__name__}")

    def visit(s):
        if isinstance(s, ir.Let) and varies(s.value):
            varying.add(s.var.uid)
        if isinstance(s, ir.IfThenElse) and varies(s.condition) and _has_barrier(s):
            if s.else_case is not None:
                raise _build_error(f"{where}: a barrier in a branch that depends on the thread")
            return visit(push(s.condition, s.then_case))
        kids = tuple(visit(k) for k in s.children())
        return s.rebuild(kids, s.exprs()) if kids else s

    out = visit(body)
    _check_uniform(out, varying, where)
    return out


def _and(a, b):
    """``a and b`` without repeating a conjunct ``a`` already has."""
    def parts(c):
        return parts(c.a) + parts(c.b) if isinstance(c, E.And) else [c]

    have = {c.key for c in parts(a)}
    for c in parts(b):
        if c.key not in have:
            a = E.And(a, c)
            have.add(c.key)
    return a


def _check_uniform(body, varying: set, where: str):
    def visit(s, divergent: str):
        if isinstance(s, ir.Barrier) and divergent:
            raise _build_error(f"{where}: a barrier (after a shared-memory write) sits in code "
                               f"that not all threads of a block run ({divergent}); move the "
                               "shared stage's compute_at out of that loop")
        if isinstance(s, ir.For) and any(v.uid in varying for v in E.free_vars(s.extent)):
            divergent = divergent or f"loop {s.var.name} has a per-thread extent"
        if isinstance(s, ir.IfThenElse) and any(v.uid in varying
                                                for v in E.free_vars(s.condition)):
            divergent = divergent or f"if {s.condition}"
        for k in s.children():
            visit(k, divergent)

    visit(body, "")


def _nbytes(b: ir.Buffer) -> int:
    return _size(b) * np.dtype(b.dtype).itemsize


def _size(b: ir.Buffer) -> int:
    dims = [arith.const_int(d) for d in b.shape]
    if b.strides is None:
        n = 1
        for d in dims:
            n *= d
        return n
    strides = [arith.const_int(s) for s in b.strides]
    return 1 + sum((d - 1) * s for d, s in zip(dims, strides))


def _allocations(where, body, tiles):
    allocs, seen = [], set()
    for s in ir.walk_stmts(body):
        if not isinstance(s, ir.Allocate) or s.buffer.uid in seen or s.buffer.uid in tiles:
            continue
        b = s.buffer
        seen.add(b.uid)
        if b.scope not in ("shared", "local"):
            raise _build_error(
                f"{where}: {b.name} is computed inside the kernel but has scope {b.scope!r}; "
                "set_scope('shared') or set_scope('local'), or compute it at the root")
        consts = [arith.const_int(d) for d in b.shape + (b.strides or ())]
        if any(c is None for c in consts):
            dims = ", ".join(str(d) for d in b.shape)
            raise _build_error(
                f"{where}: the {b.scope} buffer {b.name} has the symbolic shape [{dims}]; GPU "
                "buffers need constant shapes (split the axes it covers by constant factors)")
        allocs.append(b)
    shared = sum(_nbytes(b) for b in allocs if b.scope == "shared")
    return allocs, shared

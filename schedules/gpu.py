"""What lowering does differently inside a GPU kernel (a loop nest with thread-bound axes).

* A stage attached inside a kernel without a scope of its own lives in ``"local"`` memory when
  a ``threadIdx`` axis encloses it, else in ``"shared"`` memory (TVM's default).
* The region of a ``"shared"`` buffer is relaxed over the ``threadIdx`` and ``vthread`` axes
  that enclose it: all threads of a block fill one tile together, each its part.
* Barriers: after shared memory is written and before it is read; in a loop, also before
  it is written again (the last iteration's readers must be done).
* A cross-thread reduction (a reduction axis bound to ``threadIdx``) becomes per-thread partial
  results in registers, a tree over a shared array, and a store of the result.
* ``double_buffer``: two copies of a shared tile, the next one loaded during this iteration.

Every construct here is also correct when the thread loops run one after another (the
``"python"`` target), which makes that target the oracle for cuda schedules.
"""

from __future__ import annotations

from te import arith
from te import expr as E

from . import ir


def thread_kind(tag: str) -> str:
    """``"block"``, ``"thread"``, ``"vthread"`` or ``""`` for a thread tag."""
    if tag.startswith("blockIdx"):
        return "block"
    if tag.startswith("threadIdx"):
        return "thread"
    if tag.startswith("vthread"):
        return "vthread"
    return ""


def relaxed_in(scope: str, tag: str) -> bool:
    """Whether a buffer of ``scope`` computed inside the axis bound to ``tag`` must cover all
    of that axis' values (TVM's rule: threads share shared memory, not local memory)."""
    return scope == "shared" and thread_kind(tag) in ("thread", "vthread")


def implied_scope(tags) -> str:
    """The scope of a stage left "global" but attached inside axes bound to ``tags``."""
    kinds = {thread_kind(t) for t in tags}
    if "thread" in kinds:
        return "local"
    if "block" in kinds or "vthread" in kinds:
        return "shared"
    return "global"


def allreduce(name: str, combiner, dtypes: list, tag_var: E.Var, extent: int, tag: str,
              row_vars: list, row_extents: list, partial, final, repeat: bool) -> ir.Stmt:
    """The statements of a reduction across the ``extent`` threads of ``tag``.

    ``partial(accs)`` returns the statements by which one thread (``tag_var``) reduces its
    share into the one-element local buffers ``accs`` (one per output); ``final(values,
    lane)`` returns the statements of thread ``lane`` that consume the reduced ``values``.
    ``row_vars`` are the other thread axes (``threadIdx.y`` ...) that enclose the reduction:
    each of their values is a separate reduction with its own row of the shared arrays.  With
    ``repeat`` (the reduction runs more than once per block) a barrier first waits for the
    readers of the last result.
    """
    zero = E.Const(0, "int32")
    accs = [ir.Buffer(f"{name}.acc{i}", (1,), dt, "local") for i, dt in enumerate(dtypes)]
    reds = [ir.Buffer(f"{name}.red{i}", tuple(row_extents) + (extent,), dt, "shared")
            for i, dt in enumerate(dtypes)]
    rows = tuple(row_vars)

    def at(buf, lane):
        return ir.BufferLoad(buf, rows + (lane,))

    def thread_loop(body, var=tag_var):
        return ir.For(var, extent, "thread_binding", body, tag)

    def combined_store(lane, other):
        values = combiner.combine([at(b, lane) for b in reds], [at(b, other) for b in reds])
        values = [arith.simplify(v) for v in values]
        if len(values) == 1:
            return ir.Store(reds[0], rows + (lane,), values[0])
        temps = [E.Var(f"{name}_t{i}", v.dtype) for i, v in enumerate(values)]
        stmt = ir.seq(ir.Store(b, rows + (lane,), t) for b, t in zip(reds, temps))
        for t, v in reversed(list(zip(temps, values))):
            stmt = ir.Let(t, v, stmt)
        return stmt

    stmts = [ir.Barrier()] if repeat else []
    fill = list(partial(accs)) + [
        ir.Store(r, rows + (tag_var,), ir.BufferLoad(a, (zero,))) for r, a in zip(reds, accs)]
    stmts.append(thread_loop(ir.seq(fill)))
    stmts.append(ir.Barrier())
    # A tree: at each step the lower half of the live lanes absorbs the upper half. No lane
    # is read and written in the same step, so running the lanes in turn gives the same sums.
    width = 1
    while width < extent:
        width *= 2
    step = width // 2
    while step >= 1:
        lane = E.Var(f"{tag_var.name}.s{step}", tag_var.dtype)
        cond = lane < step
        if step * 2 > extent:
            cond = E.And(cond, lane + step < extent)
        stmts.append(thread_loop(ir.IfThenElse(cond, combined_store(lane, lane + step)), lane))
        stmts.append(ir.Barrier())
        step //= 2
    lane = E.Var(f"{tag_var.name}.out", tag_var.dtype)
    stmts.append(thread_loop(final([at(r, zero) for r in reds], lane), lane))
    body = ir.seq(stmts)
    for buf in reversed(reds + accs):
        body = ir.Allocate(buf, body)
    return body


def tag(stage, leaf) -> str:
    """The thread tag the leaf axis ``leaf`` of ``stage`` is bound to, or ""."""
    attr = stage.iter_attrs.get(leaf)
    return attr.thread_tag if attr is not None and attr.kind == "thread_binding" else ""


def chain(st, p: int) -> list:
    """``(stage, leaf)`` of every loop around level ``p`` of ``st``, outermost first."""
    out = [(st, leaf) for leaf in st.leaf_iter_vars[:p]]
    while st.attach_type == "scope":
        parent = st.attach_stage
        upto = parent.leaf_iter_vars.index(st.attach_ivar) + 1
        out = [(parent, leaf) for leaf in parent.leaf_iter_vars[:upto]] + out
        st = parent
    return out


def repeats(lowering, st, p: int) -> bool:
    """Whether level ``p`` of ``st`` runs more than once in a thread block (inside a loop
    that is not bound to blockIdx or threadIdx)."""
    for stage, leaf in chain(st, p):
        if thread_kind(tag(stage, leaf)) in ("block", "thread"):
            continue
        ext = lowering.info[id(stage)].extents.get(leaf)
        if not (isinstance(ext, E.Const) and ext.value == 1):
            return True
    return False


def barriers(lowering, st, p: int, prods: list) -> set:
    """Positions among the producers attached at level ``p`` of ``st`` that need a barrier
    before them (``len(prods)``: before the consumer's own code): after shared memory is
    written and before it is read; and, in a loop, before the first shared write, so that
    the last iteration's readers are done.  None outside a kernel."""
    shared = [k for k, pr in enumerate(prods) if lowering.scope(pr) == "shared"]
    if not shared or not any(tag(stage, leaf) for stage, leaf in chain(st, p)):
        return set()
    out, unsynced = set(), set()
    for k, prod in enumerate(prods):
        reads = {id(lowering.s[ld.tensor]) for ld in lowering.reads(lowering.info[id(prod)])}
        if reads & unsynced:
            out.add(k)
            unsynced = set()
        if k in shared:
            unsynced.add(id(prod))
    if unsynced:
        out.add(len(prods))
    if repeats(lowering, st, p):
        out.add(shared[0])
    return out


def cross_thread_reduce(lowering, info, p: int, inner) -> ir.Stmt:
    """Level ``p`` of a stage whose reduction axis there is bound to a thread axis;
    ``inner(main)`` lowers the levels below with ``main`` as the innermost statement."""
    from .schedule import ScheduleError

    st = info.stage
    leaves = st.leaf_iter_vars
    leaf, bound = leaves[p], tag(st, leaves[p])
    where = f"lower: stage {st.name} reduces across {bound} ({leaf.name})"
    extent = arith.const_int(info.extents[leaf])
    if thread_kind(bound) != "thread" or extent is None:
        raise ScheduleError(f"{where}: only a threadIdx axis of constant extent can carry a "
                            "reduction across threads")
    if any(lv.is_reduce for lv in leaves[:p]) or any(not lv.is_reduce for lv in leaves[p:]):
        raise ScheduleError(f"{where}: it must be the outermost reduction axis, with every "
                            "data axis outside it; reorder the axes")
    rows, row_extents = [], []
    for stage, lv in chain(st, p):
        other = tag(stage, lv)
        if other == bound:
            raise ScheduleError(f"{where}: {lv.name} of {stage.name} is bound to {bound} too")
        if thread_kind(other) == "thread":
            rows.append(lv.var)
            row_extents.append(lowering.loops.bounds[lv.var][1] + 1)
    first = info.body[0]
    idx = tuple(lowering.loops.simplify(info.values[iv]) for iv in st.op.axis)
    zero = (E.Const(0, "int32"),)

    def partial(accs):
        inits = first.init or first.combiner.identity
        stmts = [ir.Store(a, zero, lowering.lower_expr(v, info)) for a, v in zip(accs, inits)]
        return stmts + [inner(lowering.main_stmt(info, accs, zero))]

    def final(values, lane):
        stores = ir.seq(ir.Store(b, idx, v) for b, v in zip(info.buffers, values))
        if lowering.scope(st) == "local":  # every thread keeps its own copy
            return stores
        return ir.IfThenElse(E.EQ(lane, E.Const(0, lane.dtype)), stores)

    return allreduce(st.name, first.combiner, [b.dtype for b in info.buffers], leaf.var,
                     extent, bound, rows, row_extents, partial, final,
                     repeats(lowering, st, p))


def double_buffered_loop(lowering, info, p: int, stages: list, body) -> ir.Stmt:
    """The loop at level ``p`` of ``info.stage`` with the shared ``stages`` attached inside
    it double-buffered: two copies of each buffer; the tile of iteration 0 is loaded before
    the loop, and iteration ``i`` loads the tile of ``i + 1`` into the other copy before it
    computes on its own, then waits at one barrier.  ``body()`` lowers the rest of the
    loop body (without those stages)."""
    from .schedule import ScheduleError

    st = info.stage
    leaf = st.leaf_iter_vars[p]
    extent = info.extents[leaf]
    for prod in stages:
        if lowering.scope(prod) != "shared" or tag(st, leaf):
            raise ScheduleError(
                f"lower: double_buffer of {prod.name} needs a shared stage computed inside a "
                f"serial loop; {prod.name} is {lowering.scope(prod)} at {leaf.name} of {st.name}")
    var = leaf.var
    fills, pairs = [], []
    for prod in stages:
        fills.append(lowering.stage_stmt(prod))
        for b in lowering.info[id(prod)].buffers:
            strides = None
            if b.strides is not None:
                size = 1 + sum((d - 1) * s for d, s in zip(b.shape, b.strides))
                strides = (arith.simplify(size),) + b.strides
            pairs.append((b, ir.Buffer(b.name, (2,) + b.shape, b.dtype, b.scope, strides)))

    def retarget(stmt, copy):
        def fexpr(e):
            def fn(node):
                for old, new in pairs:
                    if isinstance(node, ir.BufferLoad) and node.buffer is old:
                        return ir.BufferLoad(new, (copy,) + node.indices)
                return None
            return E.post_order_rewrite(e, fn)

        def fstmt(s):
            for old, new in pairs:
                if isinstance(s, ir.Store) and s.buffer is old:
                    return ir.Store(new, (copy,) + s.indices, s.value)
            return None

        return ir.rewrite(stmt, fstmt=fstmt, fexpr=fexpr)

    def at(stmt, value):
        return ir.rewrite(stmt, fexpr=lambda e: lowering.loops.simplify(
            E.substitute(e, {var: value})))

    zero = E.Const(0, var.dtype)
    nxt = var + 1
    prologue = [retarget(at(f, zero), zero) for f in fills]
    prefetch = ir.IfThenElse(nxt < extent, ir.seq(retarget(at(f, nxt), nxt % 2) for f in fills))
    loop_body = ir.seq([prefetch, retarget(body(), var % 2), ir.Barrier()])
    out = ir.seq(prologue + [ir.Barrier(), lowering.loop(st, info, leaf, loop_body)])
    for _, new in reversed(pairs):
        out = ir.Allocate(new, out)
    return out

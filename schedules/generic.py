"""``schedule_generic``: a default schedule for any graph of elementwise, broadcast,
injective and reduction stages (the op library's stages outside an anchor's subgraph, or a
graph without anchors).

On cpu: injective stages are inlined, except a small stage with divisions or transcendental
calls that much larger stages read (computed once at the root instead of per element). A
reduction is computed inside the loops of the stage that reads it when that costs no
recomputation (a row maximum inside the row loop of the softmax that reads it, in a scalar
the code generator keeps in a register). Every other stage runs at the root, parallel over
its fused outer loops, with a contiguous innermost loop for LLVM's vectorizer: the
reduction loop itself when the reduced axes are innermost, else the innermost data axis
with the reduction loops outside it (a row of partial results accumulates); a transpose is
copied in square tiles.
"""

from __future__ import annotations

from te import expr as E
from te import ops
from te.tensor import ComputeOp, Tensor

from .registry import normalize_target
from .schedule import Fuse, Schedule, Split, Stage
from .space import _leaf_extent

__all__ = [
    "attach_point", "effective_consumers", "effective_loads", "inlinable", "reduction_layout",
    "schedule_generic", "schedule_inner", "schedule_root", "small_and_costly", "subgraph",
    "worth_parallel",
]

# Below this much work (output elements x reduction iterations) a stage runs on one thread:
# a numba prange costs ~1-2 us on this 2-core machine, what 32k simple elements take.
MIN_PARALLEL_WORK = 1 << 15
# Elements of the inner part when a lone axis is split for threads (a 1-D elementwise op,
# an outer reduction without outer axes).
CHUNK = 256
# Rows (iterations of the fused outer loops) per parallel iteration when producers are
# computed inside the row loop: their buffers are then allocated once per tile, not per row.
ROW_TILE = 8
# Side of the square blocks a transpose is copied in (16 float32 = one cache line).
TILE = 16


def _outputs(outputs) -> list[Tensor]:
    return [outputs] if isinstance(outputs, Tensor) else list(outputs)


def compute_stages(s: Schedule) -> list[Stage]:
    return [st for st in s.stages if isinstance(st.op, ComputeOp)]


def direct_consumers(s: Schedule) -> dict:
    out: dict = {id(st): [] for st in s.stages}
    for st in compute_stages(s):
        for t in st.op.input_tensors:
            prod = s[t]
            if st not in out[id(prod)]:
                out[id(prod)].append(st)
    return out


def inlinable(st: Stage) -> bool:
    """Injective stages, and stages that combine reductions pointwise (the division of
    reduce_mean, the index of argmax): no reduction axis, cheap to recompute."""
    if st.is_output or not isinstance(st.op, ComputeOp) or st.op.reduce_axis:
        return False
    tag = st.op.tag
    return ops.tags.is_injective(tag) or tag == ops.tags.REDUCE


def schedule_generic(s: Schedule, outs: list[Tensor], target="cpu", stages=None,
                     row_tile: int = ROW_TILE) -> Schedule:
    """Schedule ``stages`` (default: every compute stage) of ``s``: inline the injective
    ones; on cpu, fuse reductions into their consumer where that is free (``row_tile`` rows
    of it per parallel iteration), and give every root stage parallel outer loops and a
    contiguous inner loop."""
    stages = subgraph(s, outs) if stages is None else list(stages)
    # Stages another schedule already placed or split (an op schedule in the same graph)
    # are left alone.
    stages = [st for st in stages if st.attach_type == "root" and not st.relations
              and not st.iter_attrs]
    direct = direct_consumers(s)
    for st in stages:
        if inlinable(st) and not small_and_costly(st, direct[id(st)]):
            st.compute_inline()
    if normalize_target(target) == "cuda":
        from .cuda.injective import schedule_generic as cuda_generic  # cuda imports us

        return cuda_generic(s, outs, stages=[st for st in stages if st.attach_type == "root"])
    if normalize_target(target) != "cpu":
        return s
    todo = [st for st in stages if st.attach_type == "root"]
    mine = {id(st) for st in todo}
    consumers = effective_consumers(s)
    hosts = _row_hosts(todo, consumers, mine)
    # Stages that will hold a row reduction: their loops are rows, not vector lanes.
    kinds: dict = {}
    for st in todo:
        host = hosts[id(st)]
        if host is not None:
            kind = "rows" if reduction_layout(s, st) == "inner" else "columns"
            if kinds.get(id(host)) != "rows":
                kinds[id(host)] = kind
    for st in reversed(todo):  # consumers first: a producer attaches to their final loops
        host = hosts[id(st)]
        spot = _host_point(s, st, host, consumers) if host is not None else None
        if spot is not None:
            st.compute_at(host, spot)
            schedule_inner(st)
        else:
            kind = kinds.get(id(st))
            inside = [_work(p) for p in todo if hosts[id(p)] is st]
            extra = None if None in inside else sum(inside)
            schedule_root(st, row_tile=row_tile if kind else 1, rows=kind == "rows",
                          extra_work=extra)
    return s


def _row_hosts(todo, consumers, mine: set) -> dict:
    """``{id(stage): the root stage whose loops it could be computed in}`` (or None): a
    reduction (not an output) whose consumers are one stage, or stages computed inside one
    stage (the sum of softmax reads the maximum, and so does the output)."""
    host: dict = {}
    for st in reversed(todo):
        host[id(st)] = None
        if st.is_output or not st.op.reduce_axis:
            continue
        found = {}
        for c in consumers[id(st)]:
            if id(c) not in mine:
                found = {}
                break
            h = host.get(id(c)) or c
            found[id(h)] = h
        if len(found) == 1:
            host[id(st)] = next(iter(found.values()))
    return host


def _host_point(s, st: Stage, host: Stage, consumers):
    """Where in ``host``'s loops to compute ``st``: its own attach point, but never inside
    the loop where one of its consumers is computed."""
    leaves = host.leaf_iter_vars
    limit = None
    for c in consumers[id(st)]:
        if c is host:
            continue
        if c.attach_stage is not host:
            return None
        pos = leaves.index(c.attach_ivar)
        limit = pos if limit is None else min(limit, pos)
    if host in consumers[id(st)]:
        spot = attach_point(s, st, host)
        if spot is None or limit is None or leaves.index(spot) <= limit:
            return spot
    return None if limit is None else leaves[limit]


# Calls that cost far more than a load, and whose vectorized forms still cost a few cycles.
_COSTLY_CALLS = {"exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "erf", "power"}
SMALL_RATIO = 16  # a stage this many times smaller than its consumer is "small"


def small_and_costly(st: Stage, consumers) -> bool:
    """A stage much smaller than a stage reading it (``consumers``: the stages that read it),
    with a division or a transcendental call in its body (the per-channel scale of
    batch_norm_inference): inlined, it would be computed again for every element of the
    consumer; at the root, once per element of its own. Op schedules that inline their
    epilogue can ask this too."""
    size = _size(st.op)
    if size is None or not consumers:
        return False
    sizes = [_size(c.op) for c in consumers]
    if not any(n is None or n >= SMALL_RATIO * size for n in sizes):
        return False
    return any(isinstance(n, E.Div) and not n.dtype.startswith(("int", "uint"))
               or isinstance(n, E.Call) and n.name in _COSTLY_CALLS
               for b in st.op.body for n in E.walk(b))


def _size(op):
    total = 1
    for iv in op.axis:
        n = _const(iv.dom.extent)
        if n is None:
            return None
        total *= n
    return total


def subgraph(s: Schedule, outs) -> list[Stage]:
    """The compute stages ``outs`` depend on (themselves included), in topological order."""
    ends = [s[t] for t in _outputs(outs)]
    inside = {id(st) for end in ends for st in s._producers_closure(end) + [end]}
    return [st for st in compute_stages(s) if id(st) in inside]


def effective_consumers(s: Schedule) -> dict:
    """``{id(stage): [computed stages that read it]}``, looking through inlined stages."""
    out: dict = {id(st): [] for st in s.stages}
    for st in compute_stages(s):
        if st.attach_type == "inline":
            continue
        for prod, _ in effective_loads(s, st):
            if st not in out[id(prod)]:
                out[id(prod)].append(st)
    return out


def effective_loads(s: Schedule, st: Stage) -> list:
    """``[(producer stage, indices)]`` for every load in ``st``'s body once the inlined
    stages are substituted: indices in ``st``'s own axis variables."""
    found = []

    def visit(expr, mapping):
        for node in E.walk(expr):
            if not isinstance(node, E.TensorLoad):
                continue
            idx = tuple(E.substitute(i, mapping) for i in node.indices)
            prod = s[node.tensor]
            if prod.attach_type == "inline":
                inner = dict(zip((iv.var for iv in prod.op.axis), idx))
                visit(prod.op.body[node.tensor.value_index], inner)
            else:
                found.append((prod, idx))

    for b in st.op.body:
        visit(b, {})
    return found


def leaf_roots(st: Stage) -> dict:
    """``{leaf IterVar: set of uids of the root axis variables it iterates}``."""
    roots = {iv: {iv.var.uid} for iv in st.all_iter_vars if iv.dom is not None}
    for rel in st.relations:
        if isinstance(rel, Split):
            roots[rel.outer] = roots[rel.inner] = roots[rel.parent]
        elif isinstance(rel, Fuse):
            roots[rel.fused] = roots[rel.outer] | roots[rel.inner]
    return {lv: roots.get(lv, set()) for lv in st.leaf_iter_vars}


def attach_point(s: Schedule, producer: Stage, consumer: Stage):
    """The leaf of ``consumer`` to compute ``producer`` at without computing any element
    twice: every loop down to it indexes the producer, none inside it does. None if there
    is no such loop (compute it at the root)."""
    used: set = set()
    for prod, idx in effective_loads(s, consumer):
        if prod is producer:
            for i in idx:
                used |= {v.uid for v in E.free_vars(i)}
    if used & {iv.var.uid for iv in consumer.op.reduce_axis} or not used:
        return None
    roots = leaf_roots(consumer)
    leaves = consumer.leaf_iter_vars
    last = max((n for n, lv in enumerate(leaves) if roots[lv] & used), default=None)
    if last is None or any(not roots[lv] <= used for lv in leaves[: last + 1]):
        return None
    if reduction_layout(s, producer) == "outer":
        # The producer's innermost loop is a data axis: keep a whole vector of it per
        # attachment rather than one element (which would read its input with a stride).
        attr = consumer.iter_attrs.get(leaves[last])
        if attr is not None and attr.kind == "vectorized":
            last -= 1
        if last < 0:
            return None
    return leaves[last]


def reduction_layout(s: Schedule, st: Stage) -> str:
    """``"inner"`` when the reduced axes are the innermost (contiguous) axis of the largest
    input the stage reads, ``"outer"`` when that axis is the stage's innermost data axis."""
    loads = [(p, idx) for p, idx in effective_loads(s, st) if idx]
    if not loads or not st.op.axis:
        return "inner"
    _, idx = max(loads, key=lambda pl: len(pl[1]))
    last = {v.uid for v in E.free_vars(idx[-1])}
    reduce_uids = {iv.var.uid for iv in st.op.reduce_axis}
    if last & reduce_uids or st.op.axis[-1].var.uid not in last:
        return "inner"
    return "outer"


def _const(extent):
    return extent.value if isinstance(extent, E.Const) else None


def axis_extent(iv) -> int | None:
    """The constant extent of an axis; None when symbolic."""
    ext = iv.dom.extent
    return ext.value if hasattr(ext, "value") else None


def op_work(op, per_element: int) -> int | None:
    """``per_element`` x the op's output elements (the work a parallel loop would split);
    None when an extent is symbolic."""
    total = per_element
    for iv in op.axis:
        n = axis_extent(iv)
        if n is None:
            return None
        total *= n
    return total


def worth_parallel(work) -> bool:
    """Whether ``work`` (output elements x reduction iterations; None: symbolic) pays for a
    parallel loop (``MIN_PARALLEL_WORK``, read at call time so tests can lower it)."""
    return work is None or work >= MIN_PARALLEL_WORK


def _work(st: Stage):
    """Output elements x reduction iterations; None when an extent is symbolic."""
    total = 1
    for iv in list(st.op.axis) + list(st.op.reduce_axis):
        n = _const(iv.dom.extent)
        if n is None:
            return None
        total *= n
    return total


def schedule_root(st: Stage, row_tile: int = 1, parallel: bool = True, rows: bool = False,
                  extra_work=0):
    """Loops of a root stage: fused outer data axes (parallel), the reduction loops, then the
    contiguous axis. ``row_tile`` > 1 splits the fused loop so that each parallel iteration
    covers that many rows (producers attached to the rows allocate once per tile);
    ``rows``: the innermost data axis is a row too (a row reduction is computed inside it),
    not a vector loop; ``extra_work``: that of the stages computed inside (None: symbolic)."""
    s = st.schedule
    data = list(st.op.axis)
    red = list(st.op.reduce_axis)
    work = _work(st)
    par = parallel and worth_parallel(None if work is None or extra_work is None
                                      else work + extra_work)
    across = None if red or rows else strided_axis(s, st)
    if across is not None:
        return _schedule_tiles(st, across, par)
    if (red and reduction_layout(s, st) == "inner") or (rows and len(data) == 1):
        outer, vec = data, None
    else:
        outer, vec = data[:-1], (data[-1] if data else None)
    if red and vec is not None:
        st.reorder(*outer, *red, vec)
    if outer:
        fused = st.fuse(*outer) if len(outer) > 1 else outer[0]
        n_rows = _leaf_extent(st, fused)
        if par and row_tile > 1 and (n_rows is None or n_rows > row_tile):
            fused, _ = st.split(fused, factor=row_tile)
        if par:
            st.parallel(fused)
    elif vec is not None and par:
        n = _const(vec.dom.extent)
        if n is None or n > CHUNK:
            chunk, vec = st.split(vec, factor=CHUNK)
            st.reorder(chunk, *red, vec)
            st.parallel(chunk)
    if vec is not None:
        st.vectorize(vec)


def strided_axis(s: Schedule, st: Stage):
    """The data axis of ``st`` (not its innermost) that indexes the innermost dimension of
    the largest input it reads, when the innermost axis does not: a transpose, whose plain
    loops would read that input with a stride. None otherwise."""
    data = list(st.op.axis)
    loads = [idx for _, idx in effective_loads(s, st) if idx]
    if len(data) < 2 or not loads:
        return None
    idx = max(loads, key=len)
    last = {v.uid for v in E.free_vars(idx[-1])}
    earlier = {v.uid for i in idx[:-1] for v in E.free_vars(i)}
    if data[-1].var.uid in last or data[-1].var.uid not in earlier:
        return None  # a contiguous read, or none along the innermost axis (a broadcast)
    found = [iv for iv in data[:-1] if iv.var.uid in last]
    if len(found) != 1:
        return None
    for iv in (found[0], data[-1]):
        n = _const(iv.dom.extent)
        if n is not None and n < TILE:
            return None
    return found[0]


def _schedule_tiles(st: Stage, across, parallel: bool):
    """``TILE x TILE`` blocks of (``across``, innermost axis): both the reads and the writes
    of a block stay within a few cache lines. The other axes and the block rows are fused
    and parallel."""
    data = list(st.op.axis)
    inner = data[-1]
    ao, ai = st.split(across, factor=TILE)
    jo, ji = st.split(inner, factor=TILE)
    others = [iv for iv in data[:-1] if iv is not across]
    st.reorder(*others, ao, jo, ai, ji)
    fused = st.fuse(*others, ao) if others else ao
    if parallel:
        st.parallel(fused)
    st.vectorize(ji)


def schedule_inner(st: Stage):
    """Loops of a stage computed inside another's loop: serial, the contiguous axis
    innermost and vectorized."""
    data = list(st.op.axis)
    red = list(st.op.reduce_axis)
    if not data:
        return
    if red and reduction_layout(st.schedule, st) == "outer":
        st.reorder(*data[:-1], *red, data[-1])
        st.vectorize(data[-1])
    elif not red:
        st.vectorize(data[-1])

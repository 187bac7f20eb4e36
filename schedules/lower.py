"""``lower(s, args)``: a schedule becomes one loop-nest ``PrimFunc``.

The order of work: inline the stages marked ``compute_inline``, infer the region each attached
stage must produce (consumers first), then emit every stage's loop nest, placing attached
stages inside their consumer's loop, and simplify the index arithmetic.
"""

from __future__ import annotations

from te import arith
from te import expr as E
from te.tensor import ComputeOp, PlaceholderOp, Tensor

from . import gpu, ir
from .bound import LoopVars, leaf_structure, relaxed_interval, union_region
from .schedule import Schedule, ScheduleError, Stage


class StageInfo:
    """What lowering derives for one stage."""

    def __init__(self, stage: Stage):
        self.stage = stage
        self.body: tuple = ()  # effective body after inlining
        self.root_min: dict = {}  # root IterVar -> absolute minimum
        self.extents: dict = {}
        self.values: dict = {}  # root IterVar -> relative value in leaf variables
        self.guards: list = []
        self.buffers: list = []  # one per output
        self.offsets: tuple = ()  # per dimension: subtract from a global index

    def abs_value(self, iv) -> E.Expr:
        return self.root_min[iv] + self.values[iv]


class Inliner:
    """The bodies of a schedule's stages with the ``compute_inline``'d stages substituted."""

    def __init__(self, s: Schedule):
        self.s = s
        self._memo: dict = {}

    def expr(self, e: E.Expr) -> E.Expr:
        def fn(node):
            if isinstance(node, E.TensorLoad):
                st = self.s[node.tensor]
                if st.attach_type == "inline":
                    body = self.body(st)[node.tensor.value_index]
                    mapping = {iv.var: i for iv, i in zip(st.op.axis, node.indices)}
                    return E.substitute(body, mapping)
            return None

        return E.post_order_rewrite(e, fn)

    def body(self, st: Stage) -> tuple:
        got = self._memo.get(id(st))
        if got is None:
            got = tuple(self.expr(b) for b in st.op.body)
            self._memo[id(st)] = got
        return got

    def reads(self, st: Stage) -> list:
        """The tensors ``st`` reads once inlined stages are substituted."""
        return [node.tensor for b in self.body(st) for node in E.walk(b)
                if isinstance(node, E.TensorLoad)]


class Lowering:
    """Lowers the compute stages of ``s`` except those in ``skip`` (stage ids): a skipped
    stage's tensor is read from the arguments, like a placeholder's."""

    def __init__(self, s: Schedule, args: list, name: str, skip=frozenset()):
        self.s = s
        self.name = name
        self.skip = frozenset(skip)
        self.loops = LoopVars()
        self.info = {id(st): StageInfo(st) for st in s.stages}
        self.params, self.scalar_params = self._bind_args(args)
        self.inliner = Inliner(s)

    # -- arguments -------------------------------------------------------------------------
    def _bind_args(self, args):
        params, scalars, bound = [], [], {}
        self.user_args = []
        for a in args:
            if isinstance(a, E.Var):
                scalars.append(a)
                self.user_args.append(a)
                continue
            if not isinstance(a, Tensor):
                raise ScheduleError(f"lower: args must be tensors or te.var, got {a!r}")
            st = self.s[a]
            if st.attach_type == "inline":
                raise ScheduleError(f"lower: {a.name} is an argument but was compute_inline'd")
            # Stage names are unique in a schedule; tensor names need not be.
            name = st.name if st.op.num_outputs == 1 else f"{st.name}.v{a.value_index}"
            buf = ir.Buffer(name, a.shape, a.dtype)
            bound[(id(st), a.value_index)] = buf
            params.append(buf)
            self.user_args.append(buf)
        for st in self.s.stages:
            if st.is_output and id(st) not in self.skip and any(
                    (id(st), i) not in bound for i in range(st.op.num_outputs)):
                raise ScheduleError(f"lower: the output {st.name} must be one of the args")
        for buf in params:
            for dim in buf.shape:
                for v in E.free_vars(dim):
                    if all(v.uid != p.uid for p in scalars):
                        scalars.append(v)
        for v in scalars:
            self.loops.bounds[v] = (0, None)
        self.arg_buffers = bound
        return params, scalars

    def reads(self, info: StageInfo):
        """The TensorLoads in the stage's effective body."""
        for b in info.body:
            for node in E.walk(b):
                if isinstance(node, E.TensorLoad):
                    yield node

    # -- bound inference -----------------------------------------------------------------------
    def computed_stages(self):
        return [
            st for st in self.s.stages
            if isinstance(st.op, ComputeOp) and st.attach_type != "inline"
            and id(st) not in self.skip
        ]

    def _read_from_args(self, stage: Stage) -> bool:
        return isinstance(stage.op, PlaceholderOp) or id(stage) in self.skip

    def infer(self):
        stages = self.computed_stages()
        for st in stages:
            self.info[id(st)].body = self.inliner.body(st)
        consumers = {id(st): [] for st in self.s.stages}
        for st in stages:
            for load in self.reads(self.info[id(st)]):
                prod = self.s[load.tensor]
                if self._read_from_args(prod):
                    if (id(prod), load.tensor.value_index) not in self.arg_buffers:
                        what = "placeholder" if id(prod) not in self.skip else "given tensor"
                        raise ScheduleError(
                            f"lower: {st.name} reads the {what} {load.tensor.name}, which is "
                            "not one of the args"
                        )
                    continue
                if st not in consumers[id(prod)]:
                    consumers[id(prod)].append(st)
        self.consumers = consumers
        for st in reversed(stages):
            self._infer_stage(st)

    def _infer_stage(self, st: Stage):
        info = self.info[id(st)]
        op = st.op
        domain = [iv.dom.extent for iv in op.axis]
        if st.attach_type == "scope":
            region = self._attached_region(st, domain)
        else:
            region = [(E.Const(0, "int32"), ext) for ext in domain]
        root_extents = {}
        for iv, (lo, ext) in zip(op.axis, region):
            info.root_min[iv] = lo
            root_extents[iv] = ext
        for iv in op.reduce_axis:
            info.root_min[iv] = iv.dom.min
            root_extents[iv] = iv.dom.extent
        info.extents, info.values, info.guards = leaf_structure(st, root_extents, self.loops)
        # An attached stage may cover more than its domain (a tile at the edge): guard it.
        if st.attach_type == "scope":
            for iv, dom_ext in zip(op.axis, domain):
                value = info.abs_value(iv)
                for cond in (value >= 0, value < dom_ext):
                    if arith.prove(cond, self.loops.bounds) is not True:
                        info.guards.append(cond)
        info.offsets = tuple(lo for lo, _ in region)
        self._make_buffers(st, info, [ext for _, ext in region])

    def _env(self, st: Stage) -> list:
        """``(variable, thread tag)`` of the leaves fixed where ``st`` is computed (its attach
        point and above); the tag is "" for a loop not bound to a GPU thread axis."""
        if st.attach_type != "scope":
            return []
        parent = st.attach_stage
        leaves = parent.leaf_iter_vars
        upto = leaves.index(st.attach_ivar)
        return self._env(parent) + [(iv.var, gpu.tag(parent, iv)) for iv in leaves[: upto + 1]]

    def scope(self, st: Stage) -> str:
        """The storage scope of ``st``; see ``gpu.implied_scope`` for an attached "global"."""
        if st.scope != "global" or st.attach_type != "scope":
            return st.scope
        return gpu.implied_scope(tag for _, tag in self._env(st))

    def _attached_region(self, st: Stage, domain):
        scope = self.scope(st)
        fixed = {v.uid for v, tag in self._env(st) if not gpu.relaxed_in(scope, tag)}
        inside = [c for c in self.consumers[id(st)] if self._inside(c, st)]
        outside = [c.name for c in self.consumers[id(st)] if not self._inside(c, st)]
        if outside:
            raise ScheduleError(
                f"lower: {st.name} is computed at {st.attach_stage.name} but is also read by "
                f"{', '.join(outside)}, which runs outside that loop"
            )
        relaxed = {v: b for v, b in self.loops.bounds.items() if v.uid not in fixed}
        scalar_uids = {v.uid for v in self.scalar_params}
        relaxed = {v: b for v, b in relaxed.items() if v.uid not in scalar_uids}
        intervals = []
        for c in inside:
            cinfo = self.info[id(c)]
            mapping = {iv.var: cinfo.abs_value(iv) for iv in cinfo.root_min}
            for load in self.reads(cinfo):
                if self.s[load.tensor] is not st:
                    continue
                dims = []
                for idx in load.indices:
                    idx = self.loops.simplify(E.substitute(idx, mapping))
                    dims.append(relaxed_interval(idx, relaxed, self.loops.bounds))
                intervals.append(dims)
        return union_region(intervals, domain, self.loops.bounds)

    def _inside(self, consumer: Stage, st: Stage) -> bool:
        """Whether ``consumer`` runs inside the loop ``st`` is attached at."""
        target, ivar = st.attach_stage, st.attach_ivar
        node = consumer
        while True:
            if node is target:
                return True
            if node.attach_type != "scope":
                return False
            parent = node.attach_stage
            if parent is target:
                leaves = target.leaf_iter_vars
                return leaves.index(node.attach_ivar) >= leaves.index(ivar)
            node = parent

    def _make_buffers(self, st, info, extents):
        bufs = []
        for i in range(st.op.num_outputs):
            arg = self.arg_buffers.get((id(st), i))
            if arg is not None:
                if st.attach_type == "scope":
                    raise ScheduleError(f"lower: {st.name} is an argument and cannot be attached")
                bufs.append(arg)
                continue
            name = st.name if st.op.num_outputs == 1 else f"{st.name}.v{i}"
            strides = _aligned_strides(st, extents)
            bufs.append(ir.Buffer(name, extents, st.op.output_dtype(i), self.scope(st), strides))
        info.buffers = bufs

    # -- expressions ---------------------------------------------------------------------------
    def lower_expr(self, e: E.Expr, info: StageInfo) -> E.Expr:
        mapping = {iv.var: info.abs_value(iv) for iv in info.root_min}
        e = E.substitute(e, mapping)

        def fn(node):
            if isinstance(node, E.TensorLoad):
                prod = self.s[node.tensor]
                if self._read_from_args(prod):
                    buf = self.arg_buffers[(id(prod), node.tensor.value_index)]
                    return ir.BufferLoad(buf, node.indices)
                pinfo = self.info[id(prod)]
                buf = pinfo.buffers[node.tensor.value_index]
                idx = [i - off for i, off in zip(node.indices, pinfo.offsets)]
                return ir.BufferLoad(buf, idx)
            return None

        return self.loops.simplify(E.post_order_rewrite(e, fn))

    # -- statements ----------------------------------------------------------------------------
    def stage_stmt(self, st: Stage) -> ir.Stmt:
        info = self.info[id(st)]
        leaves = st.leaf_iter_vars
        level_of = {leaf.var.uid: n + 1 for n, leaf in enumerate(leaves)}
        guards_at: dict = {}
        for g in info.guards:
            g = self.loops.simplify(g)
            if isinstance(g, E.Const) and g.value:
                continue
            level = max([level_of.get(v.uid, 0) for v in E.free_vars(g)] + [0])
            guards_at.setdefault(level, []).append(g)
        attached: dict = {}
        for other in self.computed_stages():
            if other.attach_type == "scope" and other.attach_stage is st:
                attached.setdefault(leaves.index(other.attach_ivar) + 1, []).append(other)
        reduce_level = next((n for n, lv in enumerate(leaves) if lv.is_reduce), None)

        def content(p, main):
            if p < len(leaves) and leaves[p].is_reduce and gpu.tag(st, leaves[p]):
                rest = [gpu.cross_thread_reduce(self, info, p, lambda ms: content(p + 1, ms))]
            else:
                rest = [self.init_stmt(info, leaves[p:], guards_at, p)] if p == reduce_level \
                    else []
                db = [pr for pr in attached.get(p + 1, []) if pr.double_buffered]
                if p == len(leaves):
                    inner = main
                elif db:
                    inner = gpu.double_buffered_loop(self, info, p, db,
                                                     lambda: content(p + 1, main))
                else:
                    inner = self.loop(st, info, leaves[p], content(p + 1, main))
                rest.append(inner)
            prods = [pr for pr in attached.get(p, []) if not pr.double_buffered]
            before = gpu.barriers(self, st, p, prods)
            for k in reversed(range(len(prods) + 1)):
                if k < len(prods):
                    rest = [self.allocated(prods[k], [self.stage_stmt(prods[k])] + rest)]
                if k in before:
                    rest.insert(0, ir.Barrier())
            body = ir.seq(rest)
            conds = guards_at.get(p)
            return ir.IfThenElse(_conjunction(conds), body) if conds else body

        return content(0, self.main_stmt(info))

    def allocated(self, st: Stage, stmts: list) -> ir.Stmt:
        body = ir.seq(stmts)
        for buf in reversed(self.info[id(st)].buffers):
            if all(buf is not p for p in self.params):
                body = ir.Allocate(buf, body)
        return body

    def loop(self, st, info, leaf, body) -> ir.Stmt:
        extent = info.extents[leaf]
        attr = st.iter_attrs.get(leaf)
        kind = attr.kind if attr else "serial"
        if isinstance(extent, E.Const) and extent.value == 1 and kind != "thread_binding":
            return body
        tag = attr.thread_tag if attr else ""
        pragmas = tuple(attr.pragmas) if attr else ()
        return ir.For(leaf.var, extent, kind, body, tag, pragmas)

    def main_stmt(self, info: StageInfo, buffers=None, idx=None) -> ir.Stmt:
        """The stage's statement at the innermost level; into ``buffers[idx]`` if given."""
        st = info.stage
        if idx is None:
            idx = tuple(self.loops.simplify(info.values[iv]) for iv in st.op.axis)
        buffers = buffers or info.buffers
        first = info.body[0]
        if not isinstance(first, E.Reduce):
            return ir.seq(
                ir.Store(buf, idx, self.lower_expr(b, info))
                for buf, b in zip(buffers, info.body)
            )
        comm = first.combiner
        current = [ir.BufferLoad(buf, idx) for buf in buffers]
        sources = [self.lower_expr(s, info) for s in first.source]
        combined = [self.loops.simplify(v) for v in comm.combine(current, sources)]
        if len(combined) == 1:
            stmt = ir.Store(buffers[0], idx, combined[0])
        else:
            temps = [E.Var(f"{st.name}_v{i}", v.dtype) for i, v in enumerate(combined)]
            stmt = ir.seq(ir.Store(b, idx, t) for b, t in zip(buffers, temps))
            for t, v in reversed(list(zip(temps, combined))):
                stmt = ir.Let(t, v, stmt)
        cond = self.lower_expr(first.condition, info)
        if isinstance(cond, E.Const) and cond.value:
            return stmt
        return ir.IfThenElse(cond, stmt)

    def init_stmt(self, info, inner_leaves, guards_at, level) -> ir.Stmt:
        st = info.stage
        first = info.body[0]
        idx = tuple(self.loops.simplify(info.values[iv]) for iv in st.op.axis)
        inits = first.init or first.combiner.identity
        stores = ir.seq(
            ir.Store(buf, idx, self.lower_expr(v, info)) for buf, v in zip(info.buffers, inits)
        )
        spatial = [lv for lv in inner_leaves if not lv.is_reduce]
        reduce_uids = {lv.var.uid for lv in st.leaf_iter_vars if lv.is_reduce}
        conds = [
            g for lvl, gs in guards_at.items() if lvl > level for g in gs
            if not any(v.uid in reduce_uids for v in E.free_vars(g))
        ]
        body = ir.IfThenElse(_conjunction(conds), stores) if conds else stores
        for leaf in reversed(spatial):
            body = self.loop(st, info, leaf, body)
        return body

    def run(self) -> ir.PrimFunc:
        for st in self.computed_stages():
            if st.attach_type == "scope" and id(st.attach_stage) in self.skip:
                raise ScheduleError(f"lower: {st.name} is computed at {st.attach_stage.name}, "
                                    "which is given as an argument and not computed here")
        self.infer()
        roots = [st for st in self.computed_stages() if st.attach_type == "root"]
        body = ir.seq([self.stage_stmt(st) for st in roots])
        for st in reversed(roots):
            body = self.allocated(st, [body])
        return ir.PrimFunc(self.name, self.params, self.scalar_params, body,
                           args=self.user_args)


def _conjunction(conds):
    out = conds[0]
    for c in conds[1:]:
        out = E.And(out, c)
    return out


def _aligned_strides(st: Stage, extents):
    if not st.storage_aligns:
        return None
    dims = [arith.const_int(e) for e in extents]
    if any(d is None for d in dims):
        raise ScheduleError(f"storage_align on {st.name} needs a constant-shaped buffer")
    align = {dim: (factor, offset) for dim, factor, offset in st.storage_aligns}
    strides = [1] * len(dims)
    for d in range(len(dims) - 2, -1, -1):
        stride = strides[d + 1] * dims[d + 1]
        if d in align:
            factor, offset = align[d]
            stride += (factor + offset - stride % factor) % factor
        strides[d] = stride
    return strides


def lower(s: Schedule, args: list, name: str = "main", simple_mode: bool = True,
          given=()) -> ir.PrimFunc:
    """The loop-nest IR of schedule ``s`` as a function of ``args`` (tensors, then te.vars).

    ``given``: computed tensors (among ``args``) whose values the caller passes in, so
    their stages are not lowered here (see ``schedules.prologue``)."""
    args = list(args)
    skip = set()
    for t in given:
        if not any(t is a for a in args):
            raise ScheduleError(f"lower: the given tensor {t.name} must be one of the args")
        skip.add(id(s[t]))
    return Lowering(s, args, name, skip).run()

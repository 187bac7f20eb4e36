"""Schedules and stages: how a computation's loops are split, ordered, annotated and placed.

A ``Schedule`` holds one ``Stage`` per operation. Every primitive is recorded as a ``Step``
(``s.steps``) so a schedule can be printed, saved and replayed (``replay``). Primitives never
change what is computed, only how.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from te import expr as E
from te.errors import TetuneError
from te.tensor import ComputeOp, Operation, PlaceholderOp, Tensor

from .steps import Step


class ScheduleError(TetuneError, ValueError):
    """An illegal schedule primitive; the message names the stage and axis."""


# ------------------------------------------------------------------------------------------
# Relations between iteration variables
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    parent: E.IterVar
    outer: E.IterVar
    inner: E.IterVar
    factor: int | None
    nparts: int | None


@dataclass(frozen=True)
class Fuse:
    outer: E.IterVar
    inner: E.IterVar
    fused: E.IterVar


LOOP_KINDS = ("serial", "parallel", "vectorized", "unrolled", "thread_binding")


@dataclass
class IterAttr:
    """Annotations of one leaf axis."""

    kind: str = "serial"
    thread_tag: str = ""
    pragmas: list = field(default_factory=list)


def _positive_int(value, what: str, where: str) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ScheduleError(f"{where}: {what} must be a positive integer, got {value!r}") from None
    if v != value or v <= 0:
        raise ScheduleError(f"{where}: {what} must be a positive integer, got {value!r}")
    return v


class Stage:
    """The schedule of one operation; obtained as ``s[tensor]``."""

    def __init__(self, schedule: "Schedule", op: Operation, name: str):
        self.schedule = schedule
        self.op = op
        self.origin_op = op
        self.name = name
        self.scope = "global"
        self.attach_type = "root"  # root | inline | scope
        self.attach_stage: Stage | None = None
        self.attach_ivar: E.IterVar | None = None
        self.is_output = False
        self.storage_aligns: list = []  # (dim, factor, offset)
        self.double_buffered = False
        self._reset_axes()

    def _reset_axes(self):
        op = self.op
        axes = list(op.axis) + list(op.reduce_axis) if isinstance(op, ComputeOp) else []
        self.all_iter_vars = list(axes)
        self.leaf_iter_vars = list(axes)
        self.relations: list = []
        self.iter_attrs: dict = {}

    def __repr__(self):
        return f"stage({self.name}, {type(self.op).__name__})"

    # -- helpers -----------------------------------------------------------------------------
    def _record(self, kind: str, **args):
        self.schedule.steps.append(Step(kind, self.name, args))

    def _leaf_index(self, ivar, primitive: str) -> int:
        if not isinstance(ivar, E.IterVar):
            raise ScheduleError(
                f"{primitive} on stage {self.name}: expected an axis (IterVar), got {ivar!r}"
            )
        for n, leaf in enumerate(self.leaf_iter_vars):
            if leaf is ivar:
                return n
        owner = self.schedule._owner_of(ivar)
        if owner is self:
            raise ScheduleError(
                f"{primitive} on stage {self.name}: axis {ivar.name} is not a leaf any more "
                "(it was already split or fused); use the axes that primitive returned"
            )
        where = f"stage {owner.name}" if owner else "no stage of this schedule"
        raise ScheduleError(
            f"{primitive} on stage {self.name}: axis {ivar.name} belongs to {where}, not to "
            f"{self.name}"
        )

    def _fresh(self, base: str, like: E.IterVar) -> E.IterVar:
        names = {iv.name for iv in self.all_iter_vars}
        name, n = base, 1
        while name in names:
            name, n = f"{base}_{n}", n + 1
        iv = E.IterVar(None, E.Var(name, like.var.dtype), like.iter_type)
        self.all_iter_vars.append(iv)
        return iv

    def axis_by_name(self, name: str) -> E.IterVar:
        """The axis of this stage called ``name`` (used when replaying saved steps)."""
        for iv in self.all_iter_vars:
            if iv.name == name:
                return iv
        raise ScheduleError(f"stage {self.name} has no axis named {name!r}")

    def _check_compute(self, primitive: str):
        if not isinstance(self.op, ComputeOp):
            raise ScheduleError(f"{primitive}: stage {self.name} is a placeholder, not a compute")

    # -- loop structure ----------------------------------------------------------------------
    def split(self, parent, factor=None, nparts=None):
        """Split ``parent`` into ``(outer, inner)`` by ``factor`` (inner extent) or ``nparts``."""
        self._check_compute("split")
        where = f"split of {getattr(parent, 'name', parent)} in stage {self.name}"
        if (factor is None) == (nparts is None):
            raise ScheduleError(f"{where}: give exactly one of factor= or nparts=")
        pos = self._leaf_index(parent, "split")
        if factor is not None:
            factor = _positive_int(factor, "factor", where)
        else:
            nparts = _positive_int(nparts, "nparts", where)
        outer = self._fresh(f"{parent.name}.outer", parent)
        inner = self._fresh(f"{parent.name}.inner", parent)
        self.relations.append(Split(parent, outer, inner, factor, nparts))
        self.leaf_iter_vars[pos : pos + 1] = [outer, inner]
        args = {"axis": parent.name}
        args.update({"factor": factor} if factor is not None else {"nparts": nparts})
        self._record("split", **args)
        return outer, inner

    def fuse(self, *args):
        """Fuse consecutive leaf axes (outermost first) into one."""
        self._check_compute("fuse")
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = tuple(args[0])
        if not args:
            raise ScheduleError(f"fuse on stage {self.name}: needs at least one axis")
        positions = [self._leaf_index(a, "fuse") for a in args]
        if positions != list(range(positions[0], positions[0] + len(args))):
            names = ", ".join(a.name for a in args)
            raise ScheduleError(
                f"fuse on stage {self.name}: axes ({names}) must be adjacent leaves given "
                "outermost first; reorder them first"
            )
        kinds = {a.iter_type for a in args}
        if len(kinds) > 1:
            raise ScheduleError(
                f"fuse on stage {self.name}: cannot fuse a reduction axis with a data axis"
            )
        self._record("fuse", axes=[a.name for a in args])
        fused = args[0]
        for nxt in args[1:]:
            out = self._fresh(f"{fused.name}.{nxt.name}.fused", fused)
            self.relations.append(Fuse(fused, nxt, out))
            fused = out
        start = positions[0]
        self.leaf_iter_vars[start : start + len(args)] = [fused]
        return fused

    def reorder(self, *args):
        """Put the given leaf axes in this order (in the positions they occupy)."""
        self._check_compute("reorder")
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = tuple(args[0])
        positions = [self._leaf_index(a, "reorder") for a in args]
        if len(set(positions)) != len(positions):
            raise ScheduleError(f"reorder on stage {self.name}: an axis is given twice")
        for pos, ivar in zip(sorted(positions), args):
            self.leaf_iter_vars[pos] = ivar
        self._record("reorder", axes=[a.name for a in args])

    def tile(self, x_parent, y_parent, x_factor, y_factor):
        """Split two axes and order them ``(x.outer, y.outer, x.inner, y.inner)``."""
        xo, xi = self.split(x_parent, factor=x_factor)
        yo, yi = self.split(y_parent, factor=y_factor)
        self.reorder(xo, yo, xi, yi)
        # One recorded step reads better and replays the same.
        del self.schedule.steps[-3:]
        self._record(
            "tile", x=x_parent.name, y=y_parent.name, x_factor=int(x_factor), y_factor=int(y_factor)
        )
        return xo, yo, xi, yi

    # -- annotations -------------------------------------------------------------------------
    def _annotate(self, ivar, kind: str, primitive: str, **record):
        self._check_compute(primitive)
        self._leaf_index(ivar, primitive)
        if kind in ("vectorized", "parallel") and ivar.is_reduce:
            raise ScheduleError(
                f"{primitive} on stage {self.name}: {ivar.name} is a reduction axis; "
                f"{primitive} needs a data-parallel axis"
            )
        attr = self.iter_attrs.setdefault(ivar, IterAttr())
        attr.kind = kind
        self._record(primitive, axis=ivar.name, **record)
        return attr

    def unroll(self, ivar):
        """Unroll the loop of ``ivar``."""
        self._annotate(ivar, "unrolled", "unroll")

    def vectorize(self, ivar):
        """Make ``ivar`` a SIMD loop (it should be innermost and contiguous)."""
        self._annotate(ivar, "vectorized", "vectorize")

    def parallel(self, ivar):
        """Run the iterations of ``ivar`` on CPU threads."""
        self._annotate(ivar, "parallel", "parallel")

    def bind(self, ivar, thread_ivar):
        """Bind ``ivar`` to a GPU thread axis from ``te.thread_axis``."""
        if not isinstance(thread_ivar, E.IterVar) or thread_ivar.iter_type != "thread":
            raise ScheduleError(
                f"bind on stage {self.name}: expected te.thread_axis(...), got {thread_ivar!r}"
            )
        if isinstance(ivar, E.IterVar) and ivar.is_reduce and \
                not thread_ivar.thread_tag.startswith("threadIdx"):
            raise ScheduleError(
                f"bind on stage {self.name}: binding the reduction axis {ivar.name} to "
                f"{thread_ivar.thread_tag} is not supported; a reduction can be shared by the "
                "threads of a block (threadIdx), not by blocks or virtual threads"
            )
        attr = self._annotate(ivar, "thread_binding", "bind", thread=thread_ivar.thread_tag)
        attr.thread_tag = thread_ivar.thread_tag

    def pragma(self, ivar, pragma_type: str, pragma_value=None):
        """Attach a pragma (``pragma_type``, ``pragma_value``) to the loop of ``ivar``."""
        self._check_compute("pragma")
        self._leaf_index(ivar, "pragma")
        self.iter_attrs.setdefault(ivar, IterAttr()).pragmas.append((pragma_type, pragma_value))
        self._record("pragma", axis=ivar.name, type=str(pragma_type), value=pragma_value)

    # -- placement ---------------------------------------------------------------------------
    def compute_at(self, parent: "Stage", ivar):
        """Compute this stage inside the loop ``ivar`` of its consumer ``parent``."""
        self._check_compute("compute_at")
        if not isinstance(parent, Stage):
            parent = self.schedule[parent]
        where = f"compute_at of stage {self.name} at {parent.name}"
        if parent is self:
            raise ScheduleError(f"{where}: a stage cannot be computed inside itself")
        if self.is_output:
            raise ScheduleError(f"{where}: {self.name} is an output and must stay at the root")
        parent._leaf_index(ivar, "compute_at")
        if self not in self.schedule._producers_closure(parent):
            raise ScheduleError(
                f"{where}: {parent.name} does not read {self.name} (directly or through "
                "other stages), so it is not a consumer"
            )
        stage = parent
        while stage is not None:
            if stage is self:
                raise ScheduleError(f"{where}: this would attach {self.name} inside itself")
            stage = stage.attach_stage if stage.attach_type == "scope" else None
        self.attach_type, self.attach_stage, self.attach_ivar = "scope", parent, ivar
        self._record("compute_at", parent=parent.name, axis=ivar.name)

    def compute_inline(self):
        """Substitute this stage's expression into its consumers instead of storing it."""
        self._check_compute("compute_inline")
        if self.op.reduce_axis:
            raise ScheduleError(f"compute_inline: stage {self.name} is a reduction")
        if self.is_output:
            raise ScheduleError(f"compute_inline: stage {self.name} is an output")
        self.attach_type, self.attach_stage, self.attach_ivar = "inline", None, None
        self._record("compute_inline")

    def compute_root(self):
        """Compute this stage in its own loop nest at the top of the function (the default)."""
        self._check_compute("compute_root")
        self.attach_type, self.attach_stage, self.attach_ivar = "root", None, None
        self._record("compute_root")

    def set_scope(self, scope: str):
        """Storage scope of this stage's buffer ("global", "shared", "local")."""
        self.scope = str(scope)
        self._record("set_scope", scope=self.scope)

    def double_buffer(self):
        """Give this shared stage two buffers, so that a GPU block loads the next iteration's
        tile while it computes on the current one (one barrier per iteration, not two)."""
        self._check_compute("double_buffer")
        self.double_buffered = True
        self._record("double_buffer")

    def storage_align(self, axis, factor: int, offset: int):
        """Pad the buffer so that the stride of ``axis``'s dimension is ``k*factor + offset``."""
        self._check_compute("storage_align")
        dims = [n for n, iv in enumerate(self.op.axis) if iv is axis]
        if not dims:
            raise ScheduleError(
                f"storage_align on stage {self.name}: {getattr(axis, 'name', axis)} is not one "
                f"of its data axes ({', '.join(iv.name for iv in self.op.axis)})"
            )
        factor = _positive_int(factor, "factor", f"storage_align on {self.name}")
        self.storage_aligns.append((dims[0], factor, int(offset)))
        self._record("storage_align", axis=axis.name, factor=factor, offset=int(offset))


class Schedule:
    """The schedules of all stages of a computation; index it with a tensor: ``s[C]``."""

    def __init__(self, outputs: list):
        self.outputs = outputs
        self.stages: list[Stage] = []
        self._stage_of: dict[int, Stage] = {}
        self.steps: list[Step] = []
        names: set = set()
        for op in _topo_order(outputs):
            stage = Stage(self, op, _unique(op.name, names))
            stage.is_output = any(op is o for o in outputs)
            self.stages.append(stage)
            self._stage_of[id(op)] = stage

    def __getitem__(self, key) -> Stage:
        op = key.op if isinstance(key, Tensor) else key
        if isinstance(op, Stage):
            return op
        stage = self._stage_of.get(id(op))
        if stage is None:
            raise ScheduleError(f"{getattr(op, 'name', op)!r} is not part of this schedule")
        return stage

    def stage_by_name(self, name: str) -> Stage:
        for st in self.stages:
            if st.name == name:
                return st
        raise ScheduleError(f"this schedule has no stage named {name!r}")

    def _owner_of(self, ivar) -> Stage | None:
        for st in self.stages:
            if any(iv is ivar for iv in st.all_iter_vars):
                return st
        return None

    def _producers_closure(self, stage: Stage) -> list:
        """Every stage that ``stage`` reads from, directly or transitively."""
        out, todo = [], [stage]
        while todo:
            st = todo.pop()
            for t in st.op.input_tensors:
                prod = self[t]
                if prod not in out:
                    out.append(prod)
                    todo.append(prod)
        return out

    def __str__(self):
        lines = [f"schedule of {', '.join(o.name for o in self.outputs)}:"]
        lines += [f"  {st}" for st in self.steps] or ["  (no steps)"]
        return "\n".join(lines)

    def _insert_stage(self, op: Operation, before: Stage | None, after: Stage | None) -> Stage:
        names = {st.name for st in self.stages}
        stage = Stage(self, op, _unique(op.name, names))
        index = self.stages.index(before) if before else self.stages.index(after) + 1
        self.stages.insert(index, stage)
        self._stage_of[id(op)] = stage
        return stage

    def _replace_op(self, stage: Stage, new_op: ComputeOp):
        stage.op = new_op
        self._stage_of[id(new_op)] = stage

    # -- primitives that create stages ---------------------------------------------------------
    def cache_read(self, tensor: Tensor, scope: str, readers, layout=None, reindex=None):
        """A copy of ``tensor`` in ``scope`` that ``readers`` read instead of ``tensor``.

        ``layout=(src, dst)`` stores the copy in another layout (as ``te.ops.layout_transform``
        does, zero-padding partial blocks) and rewrites the readers' indices to match: e.g.
        ``("KN", "NK32n")`` packs B [K, N] into panels [N/32, K, 32], so that the 32 columns a
        register tile needs are contiguous for every k (array packing).

        ``reindex=[group, ...]`` (one reader; a group is a list of the reader's axes, data or
        reduction) indexes the copy by the reader's iterations instead (TIR's reindex): one
        dimension per group, its axes fused row-major, and the reader loads
        ``copy[fused(group0), ...]``.  For a convolution's input and the groups ``[[rc, ry,
        rx], [n, y, x]]`` the copy is the im2col matrix: a tile of it is a tile of the implicit
        GEMM, where a tile of the input itself would be a bounding box with halos."""
        producer = self[tensor]
        readers = readers if isinstance(readers, (list, tuple)) else [readers]
        reader_stages = [self[r] for r in readers]
        if not reader_stages:
            raise ScheduleError(f"cache_read of {tensor.name}: give at least one reader")
        from te.operation import compute

        name = f"{producer.name}.{scope}"
        if reindex is not None:
            if layout is not None or len(reader_stages) != 1:
                raise ScheduleError(f"cache_read of {tensor.name}: reindex needs exactly one "
                                    "reader and no layout")
            reindex = _groups(reader_stages[0], reindex, f"cache_read of {tensor.name}")
            cache, index = _reindexed_read(tensor, reader_stages[0], reindex, name)
        elif layout is None:
            cache = compute(tensor.shape, lambda *idx: tensor[idx], name=name)
            index = None
        else:
            cache, index = _relayout(tensor, layout, name)
        for st in reader_stages:
            if tensor not in st.op.input_tensors:
                raise ScheduleError(f"cache_read of {tensor.name}: {st.name} does not read it")
            body = tuple(_replace_loads(b, tensor, cache, index) for b in st.op.body)
            self._replace_op(st, st.op.with_body(body))
        stage = self._insert_stage(cache.op, None, producer)
        stage.scope = scope
        args = {"tensor": tensor.value_index, "scope": scope,
                "readers": [st.name for st in reader_stages]}
        if layout is not None:
            args["layout"] = list(layout)
        if reindex is not None:
            args["reindex"] = [[iv.name for iv in g] for g in reindex]
        self.steps.append(Step("cache_read", producer.name, args))
        return cache

    def cache_write(self, tensor, scope: str, reindex=None):
        """Compute ``tensor`` into a cache in ``scope``; the original stage copies it out.

        ``reindex=[group, ...]`` (groups of the stage's data axes, each axis in one) gives the
        cache one axis per group, its axes fused row-major: a convolution's ``[[f], [n, y, x]]``
        makes it the [channels, positions] product of the implicit GEMM, so that a tile of
        positions is a box of the cache (a tile of a fused axis is not a box of the axes)."""
        tensors = tensor if isinstance(tensor, (list, tuple)) else [tensor]
        stage = self[tensors[0]]
        where = f"cache_write of stage {stage.name}"
        stage._check_compute("cache_write")
        if stage.relations or stage.iter_attrs or stage.attach_type != "root":
            raise ScheduleError(
                f"{where}: call cache_write before splitting, annotating or attaching the stage"
            )
        op = stage.op
        groups = [[iv] for iv in op.axis] if reindex is None else _groups(stage, reindex, where)
        if reindex is not None and sorted(id(iv) for g in groups for iv in g) != \
                sorted(id(iv) for iv in op.axis):
            raise ScheduleError(f"{where}: reindex must hold each data axis of the stage once")
        new_axis = [
            E.IterVar(g[0].dom if len(g) == 1 else E.Range(0, _volume(g)),
                      E.Var(".".join(iv.name for iv in g) + ".c", g[0].var.dtype), "data_par")
            for g in groups
        ]
        mapping = {}
        for g, n in zip(groups, new_axis):
            mapping.update(_unfused(n.var, g))
        body = tuple(E.substitute(b, mapping) for b in op.body)
        cache_op = ComputeOp(f"{stage.name}.{scope}", op.tag, op.attrs, new_axis, body)
        outs = [cache_op.output(i) for i in range(cache_op.num_outputs)]
        copy_body = tuple(out[tuple(_fused(g) for g in groups)] for out in outs)
        self._replace_op(stage, op.with_body(copy_body))
        stage._reset_axes()
        cache_stage = self._insert_stage(cache_op, stage, None)
        cache_stage.scope = scope
        args = {"scope": scope}
        if reindex is not None:
            args["reindex"] = [[iv.name for iv in g] for g in groups]
        self.steps.append(Step("cache_write", stage.name, args))
        return outs if isinstance(tensor, (list, tuple)) else outs[0]

    def rfactor(self, tensor: Tensor, axis, factor_axis: int = 0) -> Tensor:
        """Factor the reduction: a new stage reduces over all but ``axis``, keeping ``axis``."""
        from .rfactor import rfactor

        stage = self[tensor]
        out = rfactor(self, stage, axis, factor_axis)
        self.steps.append(
            Step("rfactor", stage.name, {"axis": axis.name, "factor_axis": factor_axis})
        )
        return out


def _replace_loads(expr, old: Tensor, new: Tensor, index=None):
    """Loads of ``old`` become loads of ``new``, at ``index(indices)`` when given."""
    def fn(node):
        if isinstance(node, E.TensorLoad) and node.tensor == old:
            return E.TensorLoad(new, tuple(index(node.indices)) if index else node.indices)
        return None

    return E.post_order_rewrite(expr, fn)


def _relayout(tensor: Tensor, layout, name: str):
    """The copy of ``tensor`` in layout ``dst`` and the map from its indices in ``src`` to
    the copy's indices."""
    from te.errors import TetuneError as _Error
    from te.ops.layout import layout_transform, parse_layout

    where = f"cache_read of {tensor.name}"
    try:
        src, dst = layout
        copy = layout_transform(tensor, src, dst)
        src_axes, dst_axes = parse_layout(src), parse_layout(dst)
    except (TypeError, ValueError, _Error) as err:
        raise ScheduleError(f"{where}: layout must be (src, dst) layout strings: {err}") from None
    src_block = {n: f for n, f in src_axes if f is not None}
    dst_block = {n: f for n, f in dst_axes if f is not None}

    def index(indices):
        outer = {n: i for (n, f), i in zip(src_axes, indices) if f is None}
        inner = {n: i for (n, f), i in zip(src_axes, indices) if f is not None}
        value = {n: outer[n] * src_block[n] + inner[n] if n in inner else outer[n]
                 for n in outer}
        return [value[n] % f if f is not None
                else (value[n] // dst_block[n] if n in dst_block else value[n])
                for n, f in dst_axes]

    return copy.op.with_body(copy.op.body, name=name).output(0), index


def _groups(stage: Stage, groups, where: str) -> list:
    """``groups`` (lists of root axes of ``stage``, or of their names) as lists of IterVars;
    each axis must start at 0 and have a constant extent, so that groups can be fused."""
    axes = {iv.name: iv for iv in list(stage.op.axis) + list(stage.op.reduce_axis)}
    out = []
    for group in groups:
        ivs = []
        for a in group if isinstance(group, (list, tuple)) else [group]:
            iv = axes.get(a if isinstance(a, str) else getattr(a, "name", None))
            if iv is None or not (isinstance(a, str) or iv is a):
                raise ScheduleError(f"{where}: reindex: {getattr(a, 'name', a)!r} is not a root "
                                    f"axis of stage {stage.name}")
            if not (isinstance(iv.dom.min, E.Const) and iv.dom.min.value == 0
                    and isinstance(iv.dom.extent, E.Const)):
                raise ScheduleError(f"{where}: reindex: axis {iv.name} must start at 0 and have "
                                    "a constant extent")
            ivs.append(iv)
        if not ivs:
            raise ScheduleError(f"{where}: reindex: a group is empty")
        out.append(ivs)
    flat = [id(iv) for g in out for iv in g]
    if len(set(flat)) != len(flat):
        raise ScheduleError(f"{where}: reindex: an axis is in two groups")
    return out


def _volume(ivs) -> int:
    out = 1
    for iv in ivs:
        out *= iv.dom.extent.value
    return out


def _fused(ivs) -> E.Expr:
    """The row-major fused index of a group of axes (what ``fuse`` iterates)."""
    out = ivs[0].var
    for iv in ivs[1:]:
        out = out * iv.dom.extent + iv.var
    return out


def _unfused(var, ivs) -> dict:
    """Each axis of a group at the fused index ``var`` (the values ``fuse`` gives them)."""
    values, rest = {}, var
    for iv in reversed(ivs[1:]):
        values[iv.var] = rest % iv.dom.extent
        rest = rest // iv.dom.extent
    values[ivs[0].var] = rest
    return values


def _reindexed_read(tensor: Tensor, reader: Stage, groups, name: str):
    """The copy of ``tensor`` indexed by ``groups`` (from ``_groups``) of ``reader``'s axes,
    and the reader's index into it (see ``cache_read``)."""
    where = f"cache_read of {tensor.name}"
    loads = {ld.key: ld for b in reader.op.body for ld in E.walk(b)
             if isinstance(ld, E.TensorLoad) and ld.tensor == tensor}
    if len(loads) != 1:
        raise ScheduleError(f"{where}: reindex needs {reader.name} to read it at one index, "
                            f"not {len(loads)}")
    (load,) = loads.values()
    grouped = {iv.var.uid for g in groups for iv in g}
    stray = sorted({iv.name for iv in list(reader.op.axis) + list(reader.op.reduce_axis)
                    for idx in load.indices for v in E.free_vars(idx)
                    if v.uid == iv.var.uid and v.uid not in grouped})
    if stray:
        raise ScheduleError(f"{where}: reindex: its index uses {', '.join(stray)}, which no "
                            "group holds")
    from te.operation import compute

    def body(*idx):
        mapping = {}
        for v, g in zip(idx, groups):
            mapping.update(_unfused(v, g))
        return tensor[tuple(E.substitute(i, mapping) for i in load.indices)]

    cache = compute([_volume(g) for g in groups], body, name=name)
    fused = tuple(_fused(g) for g in groups)
    return cache, lambda _indices: fused


def _unique(name: str, taken: set) -> str:
    out, n = name, 1
    while out in taken:
        out, n = f"{name}_{n}", n + 1
    taken.add(out)
    return out


def _topo_order(outputs: list) -> list:
    order, seen = [], set()

    def visit(op):
        if id(op) in seen:
            return
        seen.add(id(op))
        for t in op.input_tensors:
            visit(t.op)
        order.append(op)

    for op in outputs:
        visit(op)
    return order


def create_schedule(ops) -> Schedule:
    """A default schedule (every stage at the root, loops in definition order) for ``ops``."""
    items = ops if isinstance(ops, (list, tuple)) else [ops]
    out_ops = []
    for item in items:
        op = item.op if isinstance(item, Tensor) else item
        if not isinstance(op, Operation):
            raise ScheduleError(f"create_schedule expects operations or tensors, got {item!r}")
        if isinstance(op, PlaceholderOp):
            raise ScheduleError(f"create_schedule: {op.name} is a placeholder, not a computation")
        if all(op is not o for o in out_ops):
            out_ops.append(op)
    return Schedule(out_ops)

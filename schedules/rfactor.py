"""``rfactor``: split a reduction into a stage of partial results and a stage that combines
them, so the partial reductions can run in parallel or vectorized (TVM's ``s.rfactor``)."""

from __future__ import annotations

from te import expr as E
from te.tensor import ComputeOp

from .bound import LoopVars, leaf_structure
from .schedule import ScheduleError


def rfactor(s, stage, axis, factor_axis: int):
    """Make ``axis`` (a leaf derived from the reduction axes) a data axis of a new stage."""
    op = stage.op
    where = f"rfactor of stage {stage.name}"
    if not isinstance(op, ComputeOp) or not op.reduce_axis:
        raise ScheduleError(f"{where}: the stage is not a reduction")
    if op.num_outputs != 1 or op.body[0].init:
        raise ScheduleError(f"{where}: only single-output reductions without init= are supported")
    stage._leaf_index(axis, "rfactor")
    if not axis.is_reduce:
        raise ScheduleError(f"{where}: {axis.name} is not a reduction axis")
    if not 0 <= factor_axis <= len(op.axis):
        raise ScheduleError(f"{where}: factor_axis must be in [0, {len(op.axis)}]")

    roots = {iv: iv.dom.extent for iv in list(op.axis) + list(op.reduce_axis)}
    extents, values, guards = leaf_structure(stage, roots, LoopVars())
    reduce_leaves = [lv for lv in stage.leaf_iter_vars if lv.is_reduce]

    # The factored stage: the data axes, plus `axis` as a data axis; the other reduce leaves
    # stay reductions.
    spatial = [E.IterVar(iv.dom, E.Var(iv.name, iv.var.dtype), "data_par") for iv in op.axis]
    factored = E.IterVar(E.Range(0, extents[axis]), E.Var(axis.name), "data_par")
    new_axes = spatial[:factor_axis] + [factored] + spatial[factor_axis:]
    kept = [
        E.IterVar(E.Range(0, extents[lv]), E.Var(lv.name), "comm_reduce")
        for lv in reduce_leaves if lv is not axis
    ]
    leaf_map = {axis.var: factored.var}
    leaf_map.update({lv.var: k.var for lv, k in zip([x for x in reduce_leaves if x is not axis],
                                                     kept)})
    mapping = {iv.var: n.var for iv, n in zip(op.axis, spatial)}
    for iv in op.reduce_axis:
        mapping[iv.var] = E.substitute(iv.dom.min + values[iv], leaf_map)
    reduce_uids = {lv.var.uid for lv in reduce_leaves}
    conds = [
        E.substitute(g, leaf_map) for g in guards
        if any(v.uid in reduce_uids for v in E.free_vars(g))
    ]
    first = op.body[0]
    comm = first.combiner
    condition = E.substitute(first.condition, mapping)
    for c in conds:
        condition = E.And(condition, c)
    sources = tuple(E.substitute(x, mapping) for x in first.source)
    if kept:
        body = E.Reduce(comm, sources, kept, condition, first.value_index)
    else:
        identity = comm.identity[first.value_index]
        body = E.select(condition, sources[first.value_index], identity)
    rf_op = ComputeOp(f"{stage.name}.rf", op.tag, op.attrs, new_axes, [body])
    rf = rf_op.output(0)

    # The original stage now reduces the partial results over the factored axis.
    kr = E.IterVar(E.Range(0, extents[axis]), E.Var(f"{axis.name}.v"), "comm_reduce")
    spatial_vars = [iv.var for iv in op.axis]
    index = spatial_vars[:factor_axis] + [kr.var] + spatial_vars[factor_axis:]
    reduce = E.Reduce(comm, (rf[tuple(index)],), (kr,), E.const(True), 0)
    s._replace_op(stage, op.with_body((reduce,)))
    stage._reset_axes()
    s._insert_stage(rf_op, stage, None)
    return rf

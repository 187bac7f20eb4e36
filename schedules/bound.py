"""Bound inference: which region of each attached stage its consumers need, and the extents
and index expressions of every stage's loops."""

from __future__ import annotations

from te import arith
from te import expr as E

from .schedule import Fuse, Split


class LoopVars:
    """Inclusive constant bounds of every loop variable seen so far (for simplification)."""

    def __init__(self):
        self.bounds: dict = {}  # Var -> (lo, hi)

    def add(self, var: E.Var, extent: E.Expr):
        _, hi = arith.bounds_of(extent, self.bounds)
        self.bounds[var] = (0, None if hi is None else hi - 1)

    def simplify(self, e):
        return arith.simplify(e, self.bounds)


def leaf_structure(stage, root_extents: dict, loop_vars: LoopVars):
    """Extents of all axes and root values in terms of the leaves, plus the guards needed.

    ``root_extents`` maps each root IterVar (op axes and reduce axes) to its extent. Returns
    ``(extents, values, guards)``: ``extents`` maps IterVar -> extent, ``values`` maps each root
    IterVar to an expression of leaf variables (relative to the root's minimum), ``guards`` is
    the list of conditions under which a point of the leaf loops is a real point.
    """
    extents = dict(root_extents)
    for rel in stage.relations:
        if isinstance(rel, Split):
            ext = extents[rel.parent]
            if rel.factor is not None:
                inner = E.Const(rel.factor, "int32")
                outer = loop_vars.simplify((ext + rel.factor - 1) // rel.factor)
            else:
                outer = E.Const(rel.nparts, "int32")
                inner = loop_vars.simplify((ext + rel.nparts - 1) // rel.nparts)
            extents[rel.outer], extents[rel.inner] = outer, inner
        elif isinstance(rel, Fuse):
            extents[rel.fused] = loop_vars.simplify(extents[rel.outer] * extents[rel.inner])
    for leaf in stage.leaf_iter_vars:
        loop_vars.add(leaf.var, extents[leaf])

    values = {leaf: _leaf_value(leaf, extents) for leaf in stage.leaf_iter_vars}
    guards = []
    for rel in reversed(stage.relations):
        if isinstance(rel, Split):
            value = values[rel.outer] * extents[rel.inner] + values[rel.inner]
            values[rel.parent] = loop_vars.simplify(value)
            covered = loop_vars.simplify(extents[rel.outer] * extents[rel.inner])
            if arith.prove(covered <= extents[rel.parent], loop_vars.bounds) is not True:
                guards.append(values[rel.parent] < extents[rel.parent])
        elif isinstance(rel, Fuse):
            values[rel.outer], values[rel.inner] = _fuse_parts(rel, values, extents, loop_vars)
    return extents, values, guards


def _fuse_parts(rel, values, extents, loop_vars):
    """The values of a fuse's outer and inner axes at its fused value.

    Where the outer axis has one iteration, it is 0 and the inner is the fused value itself:
    at every point the stage runs, the fused value is below its extent (its loop, or the guard
    of a split that overshoots, says so), which ``fused // inner`` and ``fused % inner`` cannot
    show on their own.  That matters when a consumer indexes a size-1 axis by a constant (a
    broadcast reads ``x[0, c, y, x]``): its index ``(0 * H + y) * W + x`` then recombines into
    the fused value (a tile of it), not ``fused % (H * W)`` (the whole range)."""
    fused, outer_ext, inner_ext = values[rel.fused], extents[rel.outer], extents[rel.inner]
    if isinstance(outer_ext, E.Const) and outer_ext.value == 1:
        return E.Const(0, "int32"), fused
    return loop_vars.simplify(fused // inner_ext), loop_vars.simplify(fused % inner_ext)


def _leaf_value(leaf, extents):
    ext = extents[leaf]
    if isinstance(ext, E.Const) and ext.value == 1:
        return E.Const(0, "int32")  # a loop of one iteration is not emitted
    return leaf.var


def relaxed_interval(e: E.Expr, relaxed: dict, all_bounds: dict):
    """Bounds ``(lo, hi)`` of ``e`` as expressions of the fixed variables, when the variables in
    ``relaxed`` (Var -> (lo, hi) constants) take every value of their range. None if unknown."""
    e = arith.simplify(e)
    relaxed_uids = {v.uid for v in relaxed}
    if not any(v.uid in relaxed_uids for v in E.free_vars(e)):
        return e, e
    aff = arith.Affine.of(e)
    lo = arith.Affine(e.dtype, aff.const)
    hi = arith.Affine(e.dtype, aff.const)
    for term, coeff in aff.terms.values():
        got = _term_interval(term, relaxed, relaxed_uids, all_bounds)
        if got is None:
            return None
        tlo, thi = got
        if coeff < 0:
            tlo, thi = thi, tlo
        lo = lo.plus(arith.Affine.of(tlo).scaled(coeff))
        hi = hi.plus(arith.Affine.of(thi).scaled(coeff))
    return lo.to_expr(), hi.to_expr()


def _term_interval(term, relaxed, relaxed_uids, all_bounds):
    if not any(v.uid in relaxed_uids for v in E.free_vars(term)):
        return term, term
    if isinstance(term, E.Var):
        lo, hi = relaxed[term]
        if lo is None or hi is None:
            return None
        return E.Const(lo, term.dtype), E.Const(hi, term.dtype)
    if isinstance(term, E.FloorDiv) and isinstance(term.b, E.Const) and term.b.value > 0:
        inner = relaxed_interval(term.a, relaxed, all_bounds)
        if inner is not None:
            return (arith.simplify(inner[0] // term.b), arith.simplify(inner[1] // term.b))
    # Anything else: constant bounds over the whole ranges of every variable.
    lo, hi = arith.bounds_of(term, {**all_bounds, **relaxed})
    if lo is None or hi is None:
        return None
    return E.Const(lo, term.dtype), E.Const(hi, term.dtype)


def union_region(intervals: list, domain: tuple, all_bounds: dict):
    """(min, extent) per dimension covering every ``(lo, hi)`` interval; the full ``domain``
    (extents) where a dimension cannot be bounded."""
    region = []
    for dim, dom_ext in enumerate(domain):
        per_dim = [iv[dim] for iv in intervals]
        if not per_dim or any(iv is None for iv in per_dim):
            region.append((E.Const(0, "int32"), dom_ext))
            continue
        lo = per_dim[0][0]
        hi = per_dim[0][1]
        for a, b in per_dim[1:]:
            lo = E.min_expr(lo, a)
            hi = E.max_expr(hi, b)
        lo = arith.simplify(lo, all_bounds)
        extent = arith.simplify(hi - lo + 1, all_bounds)
        if not isinstance(extent, E.Const):
            # The extent depends on outer loops: allocate for its largest value.
            _, ext_hi = arith.bounds_of(extent, all_bounds)
            if ext_hi is None:
                region.append((E.Const(0, "int32"), dom_ext))
                continue
            extent = E.Const(ext_hi, "int32")
        region.append((lo, extent))
    return region

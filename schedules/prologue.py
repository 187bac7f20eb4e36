"""Constant prologues: the stages of a schedule that read nothing but constants (the packed
copy of a network's weights) run once, when a network is loaded, not on every call.

TVM gets this from Relay: AlterOpLayout rewrites a conv to take its weights in the packed
layout and FoldConstant packs them at compile time. Here the schedule itself says how the
weights are packed (a ``cache_read`` with a layout, shaped by the tuning config), so the split
happens after scheduling::

    split = split_prologue(s, [data, weight, out], constants=[weight])
    split.prologue   # PrimFunc(weight, weight_packed): run once per set of weights
    split.main       # PrimFunc(data, weight, out, weight_packed): reads the packed copy

Only ``"global"`` stages move (a GPU's shared or local copies belong to their block); one
that was computed inside its consumer's loops (a panel packed just before its tiles) is
computed whole instead, which is the same values in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from te.tensor import ComputeOp, PlaceholderOp, Tensor

from . import ir
from .lower import Inliner, Lowering
from .schedule import Schedule


TARGETS = ("cpu", "llvm", "python")  # where the kernel's own copies of constants are global


def hoists_on(target: str) -> bool:
    """Whether kernels for ``target`` get constant prologues (a GPU kernel's copies of its
    weights are per block, in shared memory)."""
    return str(target).split()[0] in TARGETS if target else False


@dataclass
class PrologueSplit:
    """``main`` takes the original args followed by ``prepared``, the tensors ``prologue``
    computes; ``prologue`` takes the constants it reads (``prologue_inputs``, positions in
    the original args) followed by ``prepared``. ``prologue`` is None when nothing moved."""

    main: ir.PrimFunc
    prologue: ir.PrimFunc | None
    prepared: list
    prologue_inputs: list


def constant_stages(s: Schedule, constants) -> list:
    """The computed ``"global"`` stages (not outputs) whose values follow from ``constants``
    alone, in schedule order."""
    const_ops = {id(t.op) for t in constants}
    inliner = Inliner(s)
    found: list = []
    found_ids: set = set()
    for st in s.stages:
        if not isinstance(st.op, ComputeOp) or st.attach_type == "inline" or st.is_output \
                or st.scope != "global":
            continue
        reads = inliner.reads(st)
        if reads and all(id(t.op) in const_ops or id(s[t]) in found_ids for t in reads):
            found.append(st)
            found_ids.add(id(st))
    return found


def split_prologue(s: Schedule, args: list, constants, name: str = "main") -> PrologueSplit:
    """Lower ``s`` as a main function and a prologue that computes its constant stages.

    ``constants`` are placeholders among ``args`` whose values do not change between calls.
    The schedule is changed: a moved stage attached inside a kept one becomes a root stage.
    """
    args = list(args)
    constants = [t for t in constants if isinstance(t.op, PlaceholderOp)]
    moved = constant_stages(s, constants)
    if not moved:
        return PrologueSplit(Lowering(s, args, name).run(), None, [], [])
    moved_ids = {id(st) for st in moved}
    inliner = Inliner(s)
    kept = [st for st in s.stages if isinstance(st.op, ComputeOp)
            and st.attach_type != "inline" and id(st) not in moved_ids]
    prepared: list = []  # the moved tensors a kept stage reads: the prologue's results
    for st in kept:
        for t in inliner.reads(st):
            if id(s[t]) in moved_ids and not any(_same(t, p) for p in prepared):
                prepared.append(t)
    for st in moved:
        if st.attach_type == "scope" and id(st.attach_stage) not in moved_ids:
            st.compute_root()
    moved_reads = [t for st in moved for t in inliner.reads(st)]
    inputs = [k for k, a in enumerate(args) if isinstance(a, Tensor)
              and any(_same(a, t) for t in moved_reads)]
    main = Lowering(s, args + prepared, name, moved_ids).run()
    prologue = Lowering(s, [args[k] for k in inputs] + prepared, f"{name}_prologue",
                        {id(st) for st in kept}).run()
    return PrologueSplit(main, prologue, prepared, inputs)


def _same(a: Tensor, b: Tensor) -> bool:
    return a.op is b.op and a.value_index == b.value_index

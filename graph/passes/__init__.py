"""Graph passes: plain functions ``Graph -> Graph`` that fold, simplify and fuse a network
before it is compiled, the memory planner of the executor, and the pass manager that runs
the default pipeline and records what each pass did.

=====================  =================================================================
module                 passes
=====================  =================================================================
``cleanup``            fold_constants, eliminate_dead_nodes, eliminate_common_subexpressions
``simplify``           simplify (rule table: Identity/Dropout, x*1, x+0, transposes,
                       reshape chains, x-c, x/c, x**2, Pad into Conv, ...)
``fold_scale``         fold_batch_norm, fold_scale_axis (into Conv/Gemm/MatMul weights)
``horizontal``         fuse_siblings (sibling MatMuls/Convs on one input -> one op + slices)
``layout``             convert_layout (convolutions in NCHW{c}c, weights blocked at compile
                       time, activations transformed at the region's boundary)
``fuse``               fuse_ops (FuseOps: anchor + epilogue, reductions, injective chains)
``memory``             plan_memory (buffer reuse by liveness; concat/reshape/slice as views)
``manager``            optimize, default_passes, run_passes, PassReport
=====================  =================================================================
"""

from .cleanup import eliminate_common_subexpressions, eliminate_dead_nodes, fold_constants
from .fold_scale import fold_batch_norm, fold_scale_axis
from .fuse import Kind, fuse_ops, node_kind
from .horizontal import fuse_siblings
from .layout import convert_layout
from .manager import PassRecord, PassReport, default_passes, optimize, run_passes
from .memory import MemoryPlan, plan_memory
from .simplify import simplify

__all__ = ["Kind", "MemoryPlan", "PassRecord", "PassReport", "convert_layout", "default_passes",
           "eliminate_common_subexpressions", "eliminate_dead_nodes", "fold_batch_norm",
           "fold_constants", "fold_scale_axis", "fuse_ops", "fuse_siblings", "node_kind",
           "optimize", "plan_memory", "run_passes", "simplify"]

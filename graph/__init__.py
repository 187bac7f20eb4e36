"""Network front end: ONNX import (``from_onnx``), the network IR (``Graph``, ``Node``), graph
passes (``graph.passes``) and the graph executor (``compile`` -> ``GraphModule``).

Each node, or fused group of nodes, becomes one tensor-expression kernel, scheduled with
``schedules.schedule_for`` (the best tuned config when a tuning log is given) and run in
topological order over preallocated buffers.
"""

from . import testing  # networks built in code: graph.testing.resnet50(), ...
from .compile import compile, default_passes, extract_tasks, optimize_graph  # noqa: A004
from .convert import lower, sanitize, supported_ops
from .errors import (
    ConversionError,
    DynamicShapeError,
    GraphError,
    ModelError,
    UnsupportedOpError,
)
from .executor import GraphModule, ProfileTable
from .ir import FUSED, Graph, Node, TensorType, fuse_nodes, toposort
from .onnx_import import from_onnx, load_model
from .passes import PassReport, optimize
from .visualize import visualize


def load(path) -> GraphModule:
    """A ``GraphModule`` from an artifact written by ``GraphModule.save`` (its kernels are
    Python sources: load only artifacts you trust, as with any code)."""
    from .artifact import load as _load

    return _load(path)

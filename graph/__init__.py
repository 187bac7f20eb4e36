"""Network front end: ONNX import, shape inference and graph passes (constant folding,
simplification, operator fusion, layout).

Each fused group becomes a tensor expression that is compiled with its best tuned config and
run by the runtime's graph executor.
"""

from .errors import (
    ConversionError,
    DynamicShapeError,
    GraphError,
    ModelError,
    UnsupportedOpError,
)
from .ir import FUSED, Graph, Node, TensorType, fuse_nodes, toposort

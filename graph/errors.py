"""The errors of the network front end; each names the node, value or op at fault."""

from __future__ import annotations

from te.errors import TetuneError


class GraphError(TetuneError, ValueError):
    """A graph breaks the IR's invariants (undefined value, cycle, missing type, ...)."""


class ModelError(GraphError):
    """An ONNX model cannot be read: truncated or malformed file, dangling inputs, cycles,
    shapes that contradict each other, an opset this onnx does not know."""


class UnsupportedOpError(GraphError):
    """The model uses op types tetune has no converter for; ``ops`` maps each op type to the
    names of the nodes that use it (all of them, in one error)."""

    def __init__(self, ops: dict):
        self.ops = {k: list(v) for k, v in ops.items()}
        lines = [f"  {op}: {', '.join(map(repr, names[:8]))}"
                 + (f" and {len(names) - 8} more" if len(names) > 8 else "")
                 for op, names in sorted(self.ops.items())]
        super().__init__(f"the model uses {len(self.ops)} op type(s) tetune does not "
                         "support:\n" + "\n".join(lines))


class DynamicShapeError(GraphError):
    """tetune compiles static shapes only: a shape (or a value that must be known at compile
    time, such as Reshape's target shape) depends on run-time data. ``inputs`` names the
    graph inputs involved; pass their shapes (``input_shapes=``) or values (``constants=``)."""

    def __init__(self, message: str, inputs=()):
        self.inputs = tuple(inputs)
        super().__init__(message)


class ConversionError(GraphError):
    """A supported op has attributes or input types tetune cannot handle."""

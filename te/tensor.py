"""Tensors and the operations that produce them (placeholders and computes)."""

from __future__ import annotations

from . import dtypes
from .errors import TEValueError
from .expr import Reduce, TensorLoad, check_index, walk


class Tensor:
    """The ``value_index``-th output of an operation; index it as ``A[i, j]``."""

    __slots__ = ("op", "value_index")

    def __init__(self, op: "Operation", value_index: int = 0):
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "value_index", value_index)

    def __setattr__(self, name, value):
        raise AttributeError("Tensor is immutable")

    @property
    def shape(self) -> tuple:
        return self.op.output_shape(self.value_index)

    @property
    def dtype(self) -> str:
        return self.op.output_dtype(self.value_index)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def name(self) -> str:
        if self.op.num_outputs == 1:
            return self.op.name
        return f"{self.op.name}.v{self.value_index}"

    def __getitem__(self, indices) -> TensorLoad:
        if not isinstance(indices, tuple):
            indices = (indices,)
        if len(indices) != self.ndim:
            raise TEValueError(
                f"tensor {self.name} has {self.ndim} dimension(s) but was indexed with "
                f"{len(indices)} index(es)"
            )
        return TensorLoad(self, tuple(check_index(x, self.name, n) for n, x in enumerate(indices)))

    def __eq__(self, other):
        return isinstance(other, Tensor) and self.op is other.op and (
            self.value_index == other.value_index
        )

    def __hash__(self):
        return hash((id(self.op), self.value_index))

    def __bool__(self):
        return True

    def __repr__(self):
        shape = ", ".join(str(s) for s in self.shape)
        return f"Tensor(name={self.name}, shape=({shape}), dtype={self.dtype})"

    def __iter__(self):
        raise TypeError(f"tensor {self.name} is not iterable; index it as {self.name}[i, ...]")


class Operation:
    """Base of the nodes of the dataflow graph; ``op.output(i)`` is its i-th tensor."""

    name: str
    tag: str = ""
    attrs: dict

    @property
    def num_outputs(self) -> int:
        return 1

    def output(self, index: int = 0) -> Tensor:
        if not 0 <= index < self.num_outputs:
            raise TEValueError(f"{self.name} has {self.num_outputs} output(s), asked for {index}")
        return Tensor(self, index)

    @property
    def input_tensors(self) -> list:
        return []

    def output_shape(self, index: int) -> tuple:
        raise NotImplementedError

    def output_dtype(self, index: int) -> str:
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.name})"


class PlaceholderOp(Operation):
    """An input tensor whose data is supplied at call time."""

    def __init__(self, name: str, shape: tuple, dtype: str):
        self.name = name
        self.shape = shape
        self.dtype = dtypes.canonical(dtype)
        self.tag = ""
        self.attrs = {}

    def output_shape(self, index):
        return self.shape

    def output_dtype(self, index):
        return self.dtype


class ComputeOp(Operation):
    """``out[axis] = body`` for every point of the axes; a body may be a top-level reduction."""

    def __init__(self, name, tag, attrs, axis, body):
        self.name = name
        self.tag = tag
        self.attrs = dict(attrs or {})
        self.axis = list(axis)
        self.body = tuple(body)
        first = self.body[0]
        self.reduce_axis = list(first.axis) if isinstance(first, Reduce) else []

    @property
    def num_outputs(self):
        return len(self.body)

    def output_shape(self, index):
        return tuple(iv.dom.extent for iv in self.axis)

    def output_dtype(self, index):
        return self.body[index].dtype

    @property
    def input_tensors(self) -> list:
        seen, out = set(), []
        for b in self.body:
            for node in walk(b):
                if isinstance(node, TensorLoad):
                    t = node.tensor
                    if t not in seen:
                        seen.add(t)
                        out.append(t)
        return out

    def with_body(self, body, name=None) -> "ComputeOp":
        """The same axes and attributes with a new body (used by cache_read and friends)."""
        return ComputeOp(name or self.name, self.tag, self.attrs, self.axis, body)


def body_reductions(body: tuple) -> list:
    """The Reduce nodes of a compute body that are not at the top level (an error)."""
    bad = []
    for b in body:
        top = b if isinstance(b, Reduce) else None
        for node in walk(b):
            if isinstance(node, Reduce) and node is not top:
                bad.append(node)
    return bad

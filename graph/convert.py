"""ONNX node -> tensor expression: the converter table and the lowering of a node (or a fused
group) to a te graph over placeholders.

A converter is a function ``fn(ctx) -> list of te tensors`` (one per node output)
registered for one or more ONNX op types with ``@converter("Relu", ...)``. It reads
attributes with ``ctx.attr`` and inputs with ``ctx.input(i)`` (a te tensor) or
``ctx.const(i)`` (a numpy array known at compile time: Reshape's shape, Slice's starts...).
The inputs a converter reads with ``const`` are declared (``const_inputs=``) so the importer
can fold the subgraphs that compute them before anything is lowered. Converters live in
``graph/ops_*.py``, one module per family.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import te
from te import dtypes
from te.errors import TetuneError

from .errors import ConversionError
from .ir import Graph, Node, TensorType

_REQUIRED = object()


@dataclass(frozen=True)
class Converter:
    op_type: str
    fn: Callable
    const_inputs: tuple  # input positions that must be known at compile time


CONVERTERS: dict = {}


def converter(*op_types: str, const_inputs=()):
    """Register ``fn(ctx)`` as the converter of ``op_types``."""

    def register(fn):
        for op in op_types:
            CONVERTERS[op] = Converter(op, fn, tuple(const_inputs))
        return fn

    return register


def supported_ops() -> list:
    """The ONNX op types with a converter (not the compiler's own ``tetune.*`` ops that
    graph passes create, such as the NCHW{c}c convolution)."""
    _load_converters()
    return sorted(op for op in CONVERTERS if not op.startswith("tetune."))


def get_converter(op_type: str) -> Converter | None:
    _load_converters()
    return CONVERTERS.get(op_type)


def _load_converters():
    if not CONVERTERS:
        from . import ops_elemwise, ops_nn, ops_tensor  # noqa: F401 - they register themselves


# -- names ---------------------------------------------------------------------------------

_IDENT = re.compile(r"[^A-Za-z0-9_]+")


def sanitize(name: str, prefix: str = "t", max_len: int = 32) -> str:
    """An identifier made from an arbitrary (ONNX) name: ASCII letters, digits and ``_``
    only, never starting with a digit, at most ``max_len`` characters. The code generators
    sanitize again; this keeps te tensor names readable and safe on their own."""
    base = _IDENT.sub("_", str(name)).strip("_")[:max_len].strip("_")
    if not base:
        return prefix
    return f"{prefix}_{base}" if base[0].isdigit() else base


# -- the context a converter sees ----------------------------------------------------------


class Ctx:
    """One node being converted: its attributes, te inputs, constants and output types."""

    def __init__(self, node: Node, opset: int, tensor_of: Callable, const_of: Callable,
                 type_of: Callable):
        self.node = node
        self.opset = opset
        self._tensor_of = tensor_of
        self._const_of = const_of
        self._type_of = type_of

    # -- attributes
    def attr(self, name: str, default=_REQUIRED):
        if name in self.node.attrs:
            return self.node.attrs[name]
        if default is _REQUIRED:
            self.fail(f"attribute {name!r} is required")
        return default

    def has_attr(self, name: str) -> bool:
        return name in self.node.attrs

    # -- inputs
    @property
    def n_inputs(self) -> int:
        return len(self.node.inputs)

    def has_input(self, i: int) -> bool:
        return i < len(self.node.inputs) and bool(self.node.inputs[i])

    def input(self, i: int) -> te.Tensor:
        if not self.has_input(i):
            self.fail(f"input {i} is required")
        return self._tensor_of(self.node.inputs[i])

    def inputs(self) -> list:
        return [self.input(i) for i in range(self.n_inputs) if self.has_input(i)]

    def const(self, i: int, default=_REQUIRED):
        """Input ``i`` as a numpy array (it must be known at compile time)."""
        if not self.has_input(i):
            if default is _REQUIRED:
                self.fail(f"input {i} is required")
            return default
        value = self._const_of(self.node.inputs[i])
        if value is None:
            self.fail(f"input {i} ({self.node.inputs[i]!r}) must be a compile-time constant")
        return value

    def is_const(self, i: int) -> bool:
        """Whether input ``i`` is given and known at compile time."""
        return self.has_input(i) and self._const_of(self.node.inputs[i]) is not None

    def const_ints(self, i: int, default=_REQUIRED):
        value = self.const(i, default)
        return value if value is None or value is default else [int(v) for v in
                                                                 np.ravel(value)]

    def type(self, i: int) -> TensorType:
        return self._type_of(self.node.inputs[i])

    @property
    def n_outputs(self) -> int:
        return len(self.node.outputs)

    def wants_output(self, k: int) -> bool:
        return k < len(self.node.outputs) and bool(self.node.outputs[k])

    # -- errors
    def fail(self, message: str):
        raise ConversionError(f"{self.node.op_type} node {self.node.name!r}: {message}")

    def check(self, condition: bool, message: str):
        if not condition:
            self.fail(message)


def onnx_dtype(elem_type: int) -> str:
    """The numpy dtype name of an ONNX element type (whatever te supports or not)."""
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except Exception:
        from onnx import TensorProto

        return TensorProto.DataType.Name(elem_type).lower()


def te_dtype(dtype: str, what: str) -> str:
    """``dtype`` if te supports it, else a ConversionError naming ``what``."""
    if dtype not in dtypes.ALL_TYPES:
        raise ConversionError(f"{what} has dtype {dtype}, which tetune does not support "
                              f"(supported: {', '.join(dtypes.ALL_TYPES)})")
    return dtype


# -- lowering a node or a fused group --------------------------------------------------------


@dataclass
class Lowered:
    """The te graph of one kernel: ``params`` (value name, placeholder) in argument order,
    then ``results`` (value name, tensor)."""

    params: list
    results: list

    @property
    def tensors(self) -> list:
        return [t for _, t in self.params] + [t for _, t in self.results]


def convert_node(node: Node, opset: int, const_of: Callable, type_of: Callable,
                 tensor_of: Callable) -> list:
    """Run the converter of ``node``; returns one te tensor per output (None for an output
    name that is empty). Errors name the node."""
    conv = get_converter(node.op_type)
    if conv is None:
        raise ConversionError(f"node {node.name!r}: op type {node.op_type!r} has no converter")
    ctx = Ctx(node, opset, tensor_of, const_of, type_of)
    try:
        outs = conv.fn(ctx)
    except ConversionError:
        raise
    except TetuneError as err:
        raise ConversionError(f"{node.op_type} node {node.name!r}: {err}") from None
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    if len(outs) < len(node.outputs):
        outs += [None] * (len(node.outputs) - len(outs))
    for k, (name, t) in enumerate(zip(node.outputs, outs)):
        if name and t is None:
            ctx.fail(f"output {k} ({name!r}) is not supported")
    return outs[:len(node.outputs)]


def lower(graph: Graph, node: Node, opset: int | None = None,
          consts_read: dict | None = None) -> Lowered:
    """The te graph of ``node`` (a plain node or a ``"Fused"`` group) of ``graph``: inputs
    become placeholders named after their values (sanitized), in the order of the node's
    inputs; constant inputs a converter reads with ``ctx.const`` are baked in and need no
    argument (they are recorded in ``consts_read``, value -> array)."""
    opset = graph.opset if opset is None else opset
    consts_read = {} if consts_read is None else consts_read
    sub = node.subgraph if node.is_fused else None
    nodes = sub.nodes if sub is not None else (node,)
    consts = dict(graph.initializers)
    if sub is not None:
        consts.update(sub.initializers)
    types = dict(graph.values)
    if sub is not None:
        types.update(sub.values)
    env: dict = {}
    params: list = []
    used: set = set()

    def type_of(value):
        try:
            return types[value]
        except KeyError:
            raise ConversionError(f"node {node.name!r}: value {value!r} has no type") from None

    def tensor_of(value):
        if value not in env:
            ty = type_of(value)
            name = sanitize(value, "v")
            while name in used:
                name += "_"
            used.add(name)
            ph = te.placeholder(ty.shape, te_dtype(ty.dtype, f"value {value!r}"), name=name)
            env[value] = ph
            params.append((value, ph))
        return env[value]

    def const_of(value):
        found = consts.get(value)
        if found is not None:
            consts_read[value] = found
        return found

    for n in nodes:
        outs = convert_node(n, opset, const_of, type_of, tensor_of)
        for name, t in zip(n.outputs, outs):
            if name:
                env[name] = t
    results = []
    seen: set = set()
    for k, value in enumerate(node.outputs):
        t = env[value]
        # A kernel cannot return one of its own arguments (Identity, a no-op Reshape) or
        # the same tensor twice: such outputs get a copy stage.
        if isinstance(t.op, te.PlaceholderOp) or id(t) in seen:
            t = _copy(t, f"{sanitize(value, 'v')}_copy")
        seen.add(id(t))
        results.append((value, t))
    # Only the placeholders the results read are arguments (a converter may look at an
    # input and not use it, e.g. a reduction over an empty axis). They come in the order of
    # the node's inputs, so equal nodes lower to equal signatures.
    read = _placeholders_read([t for _, t in results])
    order = {v: k for k, v in enumerate(node.inputs)}
    params = sorted((p for p in params if id(p[1].op) in read),
                    key=lambda p: order.get(p[0], len(order)))
    return Lowered(params, results)


def _placeholders_read(tensors) -> set:
    seen, found, stack = set(), set(), [t.op for t in tensors]
    while stack:
        op = stack.pop()
        if id(op) in seen:
            continue
        seen.add(id(op))
        if isinstance(op, te.PlaceholderOp):
            found.add(id(op))
        stack.extend(t.op for t in op.input_tensors)
    return found


def _copy(t: te.Tensor, name: str) -> te.Tensor:
    from te.ops import tags

    return te.compute(t.shape, lambda *i: t[i], name=name, tag=tags.ELEMWISE,
                      attrs={"op": "copy"})

"""Layout transformation (Relay's AlterOpLayout for x86): 2-D convolutions run in the
channel-blocked layout ``NCHW{c}c``, whose cpu schedule holds a whole block of output
channels in one vector register and needs no weight packing at run time.

Not in the default pipeline (``optimize(level=3)`` or ``passes=default_passes(target, 3)``):
it is not yet a win everywhere. Measured with the default configs of
``schedules/cpu/conv2d.py`` (conv + bias + relu, 2 threads, min of 15-20 turns, a busy
machine), NCHW -> NCHW16c: ResNet 3x3 64ch 56x56 1.22 -> 1.23 ms, 1x1 256->64 56x56 0.58
-> 0.55, 3x3 128ch 28x28 1.37 -> 1.19, 1x1 1024->256 14x14 0.85 -> 0.63, 3x3 512ch 7x7
3.31 -> 1.64 (the NCHW kernel repacks 9.4 MB of weights on every call); but 1x1 64->256
56x56 with a residual add 0.87 -> 1.44 (1.07 with 32-channel blocks), and the boundary
transforms (generic schedule, strided) take 0.9-1.5 ms at 56x56, so a whole bottleneck
block ran 3.0 ms in NCHW and 5.4 ms with this pass. numba builds the NCHWc kernels 2-3x
faster.

* Weights are transformed here, at compile time (``OIHW -> OIHW{i}i{o}o``), and a conv bias
  becomes an Add of a ``[O/o, 1, 1, o]`` constant (a broadcast epilogue that fuses).
* Activations stay blocked between convs: elementwise ops (Relu, Clip, a residual Add, a
  per-channel constant, which is blocked as well), max/average/global-average pools and
  channel concats run on blocked values directly.
* A value is transformed back to NCHW only where an op needs it so (Flatten before the
  classifier, a graph output), once, and input values are blocked once: the transforms
  sit at the region's boundary.

The pass converts a graph only when every 2-D convolution in it can be converted (plain or
depthwise, constant weights, explicit padding) and there are at least ``MIN_CONVS``, so a
lone conv never pays for two transforms. The block of a channel count ``C`` is ``C`` itself
when ``C <= block``, else its largest divisor up to ``block`` (at least ``MIN_BLOCK``).
"""

from __future__ import annotations

import numpy as np

from te import ops as O

from ..convert import converter, get_converter
from ..ir import Graph, Node, TensorType
from .rewrite import Rewriter

BLOCK = 16  # float32 lanes of one 512-bit register
MIN_BLOCK = 4
MIN_CONVS = 2

TRANSFORM = "tetune.LayoutTransform"
CONV = "tetune.Conv2dNCHWc"
MAX_POOL = "tetune.MaxPool2dNCHWc"
AVG_POOL = "tetune.AveragePool2dNCHWc"
GLOBAL_AVG_POOL = "tetune.GlobalAveragePool2dNCHWc"

# -- the converters of the blocked ops (the ONNX table is loaded first: it loads itself
# -- only while empty) ---------------------------------------------------------------------

get_converter("Conv")


@converter(TRANSFORM)
def _transform(ctx):
    return O.layout_transform(ctx.input(0), ctx.attr("src"), ctx.attr("dst"))


@converter(CONV)
def _conv(ctx):
    return O.conv2d(ctx.input(0), ctx.input(1), stride=tuple(ctx.attr("strides")),
                    padding=tuple(ctx.attr("pads")), dilation=tuple(ctx.attr("dilations")),
                    groups=int(ctx.attr("group")), layout=ctx.attr("layout"))


@converter(MAX_POOL)
def _max_pool(ctx):
    return O.max_pool2d(ctx.input(0), tuple(ctx.attr("kernel_shape")),
                        tuple(ctx.attr("strides")), tuple(ctx.attr("pads")),
                        tuple(ctx.attr("dilations")), bool(ctx.attr("ceil_mode")),
                        layout=ctx.attr("layout"))


@converter(AVG_POOL)
def _avg_pool(ctx):
    return O.avg_pool2d(ctx.input(0), tuple(ctx.attr("kernel_shape")),
                        tuple(ctx.attr("strides")), tuple(ctx.attr("pads")),
                        tuple(ctx.attr("dilations")), bool(ctx.attr("ceil_mode")),
                        bool(ctx.attr("count_include_pad")), layout=ctx.attr("layout"))


@converter(GLOBAL_AVG_POOL)
def _global_avg_pool(ctx):
    return O.global_avg_pool2d(ctx.input(0), layout=ctx.attr("layout"))


# -- which ops run on blocked values ---------------------------------------------------------

_UNARY = frozenset({"Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "HardSigmoid",
                    "HardSwish", "Softplus", "Exp", "Neg", "Abs", "Sqrt", "Erf", "Gelu",
                    "Identity", "Clip"})  # Clip's bounds are scalars
_BINARY = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Pow", "PRelu"})


def block_of(channels: int, block: int = BLOCK) -> int | None:
    """The channel block for ``channels`` (see the module docstring), None if none fits."""
    if channels <= block:
        return channels
    b = max(d for d in range(1, block + 1) if channels % d == 0)
    return b if b >= MIN_BLOCK else None


def convert_layout(graph: Graph, block: int = BLOCK) -> Graph:
    """Run every 2-D convolution (and the ops between them) in ``NCHW{c}c`` when all of
    them can be converted (see the module docstring); else the graph as it is."""
    convs = [n for n in graph.nodes if n.op_type == "Conv"
             and len(graph.values[n.inputs[0]].shape) == 4]
    if len(convs) < MIN_CONVS or not all(_conv_blocks(graph, n, block) for n in convs):
        return graph
    return _Converter(graph, block).run()


def _conv_blocks(graph: Graph, node: Node, block: int):
    """(input block, weight input block, output block) of a convertible conv, else None."""
    w = graph.initializers.get(node.inputs[1])
    bias_ok = len(node.inputs) < 3 or not node.inputs[2] or node.inputs[2] in graph.initializers
    if w is None or not bias_ok or node.attrs.get("auto_pad", "NOTSET") != "NOTSET":
        return None
    channels = graph.values[node.inputs[0]].shape[1]
    out_channels, cg = w.shape[0], w.shape[1]
    groups = int(node.attrs.get("group", 1))
    ib, ob = block_of(channels, block), block_of(out_channels, block)
    if ib is None or ob is None:
        return None
    if groups == 1:
        return ib, ib, ob
    if cg == 1 and groups == channels == out_channels and ib == ob:
        return ib, 1, ob  # depthwise: output block k reads input block k
    return None


def _blocked_shape(shape, b: int) -> tuple:
    n, c, *rest = shape
    return (n, c // b, *rest, b)


def _block_array(arr: np.ndarray, b: int) -> np.ndarray:
    """An NCHW-broadcastable constant ([C,1,1] or [1,C,1,1]) in the blocked layout."""
    full = arr.reshape((1,) * (4 - arr.ndim) + arr.shape)
    n, c, h, w = full.shape
    return full.reshape(n, c // b, b, h, w).transpose(0, 1, 3, 4, 2)


class _Converter:
    """One walk over the graph in order (see ``convert_layout``)."""

    def __init__(self, graph: Graph, block: int):
        self.graph, self.block = graph, block
        self.rw = Rewriter(graph)
        self.blocked: dict = {}  # NCHW value -> (its blocked value, block)
        self.plain = set(graph.inputs) | set(graph.initializers)  # values present as NCHW

    def run(self) -> Graph:
        for node in self.graph.nodes:
            if not self._convert(node):
                inputs = tuple(self.as_plain(v) if v else v for v in node.inputs)
                self.rw.emit(node.replace(inputs=inputs))
                self.plain.update(v for v in node.outputs if v)
        for v in self.graph.outputs:
            self.as_plain(v)
        return self.rw.finish()

    # -- moving values between layouts
    def as_plain(self, v: str) -> str:
        if v in self.plain or v not in self.blocked:
            return v
        vb, b = self.blocked[v]
        self.rw.new_node(TRANSFORM, (vb,), (v,), {"src": f"NCHW{b}c", "dst": "NCHW"},
                         f"{v}_to_nchw")
        self.plain.add(v)
        return v

    def as_blocked(self, v: str, b: int) -> str:
        if v in self.blocked:
            vb, have = self.blocked[v]
            if have == b:
                return vb
            src = f"NCHW{have}c"
        else:
            vb, src = v, "NCHW"
        ty = self.graph.values[v]
        out = self.rw.fresh_value(f"{v}_nchw{b}c", TensorType(_blocked_shape(ty.shape, b),
                                                                 ty.dtype))
        self.rw.new_node(TRANSFORM, (vb,), (out,), {"src": src, "dst": f"NCHW{b}c"},
                         f"{v}_to_nchw{b}c")
        if v not in self.blocked:
            self.blocked[v] = (out, b)
        return out

    def _output(self, node: Node, b: int) -> str:
        v = node.outputs[0]
        ty = self.rw.types[v]
        vb = self.rw.fresh_value(f"{v}_nchw{b}c", TensorType(_blocked_shape(ty.shape, b),
                                                               ty.dtype))
        self.blocked[v] = (vb, b)
        return vb

    # -- the ops
    def _convert(self, node: Node) -> bool:
        if node.op_type == "Conv" and len(self.graph.values[node.inputs[0]].shape) == 4:
            return self._conv(node)
        if len([v for v in node.outputs if v]) != 1:
            return False
        if not any(v in self.blocked for v in node.inputs):
            return False  # nothing blocked flows in: the op stays as it is
        if node.op_type in _UNARY or node.op_type in _BINARY:
            return self._elementwise(node)
        if node.op_type in ("MaxPool", "AveragePool", "GlobalAveragePool"):
            return self._pool(node)
        if node.op_type == "Concat":
            return self._concat(node)
        return False

    def _conv(self, node: Node) -> bool:
        ib, wb, ob = _conv_blocks(self.graph, node, self.block)
        w = self.rw.const(node.inputs[1])
        o, cg, kh, kw = w.shape
        packed = w.reshape(o // ob, ob, cg // wb, wb, kh, kw).transpose(0, 2, 4, 5, 3, 1)
        w_name = self.rw.add_const(np.ascontiguousarray(packed), f"{node.name}_w_oihw{wb}i{ob}o")
        xb = self.as_blocked(node.inputs[0], ib)
        attrs = {"strides": tuple(node.attrs.get("strides", (1, 1))),
                 "pads": tuple(node.attrs.get("pads", (0, 0, 0, 0))),
                 "dilations": tuple(node.attrs.get("dilations", (1, 1))),
                 "group": int(node.attrs.get("group", 1)), "layout": f"NCHW{ib}c"}
        out = self._output(node, ob)
        has_bias = len(node.inputs) > 2 and node.inputs[2]
        conv_out = out if not has_bias else self.rw.fresh_value(
            f"{out}_nobias", self.rw.types[out])
        self.rw.new_node(CONV, (xb, w_name), (conv_out,), attrs, node.name)
        if has_bias:
            bias = self.rw.const(node.inputs[2]).reshape(o // ob, 1, 1, ob)
            b_name = self.rw.add_const(bias, f"{node.name}_bias_nchw{ob}c")
            self.rw.new_node("Add", (conv_out, b_name), (out,), name=f"{node.name}_bias")
        return True

    def _operand(self, v: str, out_shape: tuple, b: int):
        """``v`` as an operand of a blocked elementwise op, or None if it cannot be one."""
        if v in self.blocked:
            return self.as_blocked(v, b)
        ty = self.graph.values[v]
        c = self.rw.const(v)
        if ty.size == 1:
            return v  # a scalar broadcasts against any layout
        shape = (1,) * (4 - len(ty.shape)) + ty.shape if len(ty.shape) <= 4 else None
        if shape is None or shape[1] != out_shape[1] or shape[1] % b:
            return None
        if c is not None:
            if any(d != 1 for k, d in enumerate(shape) if k != 1):
                return None
            return self.rw.add_const(np.ascontiguousarray(_block_array(c, b)), f"{v}_nchw{b}c")
        if len(ty.shape) != 4 or any(d not in (1, full) for d, full in zip(ty.shape, out_shape)):
            return None
        return self.as_blocked(v, b)

    def _elementwise(self, node: Node) -> bool:
        out_shape = self.graph.values[node.outputs[0]].shape
        if len(out_shape) != 4:
            return False
        b = next(self.blocked[v][1] for v in node.inputs if v in self.blocked)
        if out_shape[1] % b:
            return False
        inputs = [self._operand(v, out_shape, b) if v else v for v in node.inputs]
        if any(v is None for v in inputs):
            return False
        out = self._output(node, b)
        self.rw.new_node(node.op_type, inputs, (out,), node.attrs, node.name)
        return True

    def _pool(self, node: Node) -> bool:
        x = node.inputs[0]
        if len(self.graph.values[x].shape) != 4:
            return False
        b = self.blocked[x][1]
        if node.op_type == "GlobalAveragePool":
            op, attrs = GLOBAL_AVG_POOL, {}
        else:
            a = node.attrs
            kernel = [int(k) for k in a.get("kernel_shape", ())]
            pads = [int(p) for p in a.get("pads", (0, 0, 0, 0))]
            dil = [int(d) for d in a.get("dilations", (1, 1))]
            if len(kernel) != 2 or a.get("auto_pad", "NOTSET") != "NOTSET" \
                    or int(a.get("storage_order", 0)) \
                    or any(p >= (k - 1) * d + 1 for p, k, d in zip(pads, kernel * 2, dil * 2)):
                return False
            op = MAX_POOL if node.op_type == "MaxPool" else AVG_POOL
            attrs = {"kernel_shape": tuple(kernel), "strides": tuple(a.get("strides", (1, 1))),
                     "pads": tuple(pads), "dilations": tuple(dil),
                     "ceil_mode": int(a.get("ceil_mode", 0))}
            if op == AVG_POOL:
                attrs["count_include_pad"] = int(a.get("count_include_pad", 0))
        attrs["layout"] = f"NCHW{b}c"
        xb = self.as_blocked(x, b)
        self.rw.new_node(op, (xb,), (self._output(node, b),), attrs, node.name)
        return True

    def _concat(self, node: Node) -> bool:
        shape = self.graph.values[node.outputs[0]].shape
        axis = int(node.attrs.get("axis", 0))
        if len(shape) != 4 or axis not in (1, -3):
            return False
        b = next(self.blocked[v][1] for v in node.inputs if v in self.blocked)
        if any(self.graph.values[v].shape[1] % b for v in node.inputs):
            return False
        inputs = [self.as_blocked(v, b) for v in node.inputs]
        self.rw.new_node("Concat", inputs, (self._output(node, b),), {"axis": 1}, node.name)
        return True


__all__ = ["BLOCK", "block_of", "convert_layout"]

"""Batch-norm and scale folding (Relay's SimplifyInference + FoldScaleAxis).

``fold_batch_norm`` rewrites every inference BatchNormalization as ``x * s + t`` with
per-channel constants (``s = gamma / sqrt(var + eps)``, ``t = beta - mean * s``) and then
runs ``fold_scale_axis``, which moves such per-channel constants into the weights of the
linear op next to them:

* backward: ``Conv(x, W, b) * c -> Conv(x, W * c[o], b * c)``, ``Conv(...) + c -> Conv(x, W,
  b + c)``; the same for Gemm (per output column, into B and C) and for the Mul after a
  MatMul with a constant right operand (into its columns). The op's output must have no
  other reader: its weights change.
* forward: ``Conv(x * c, W) -> Conv(x, W * c[i])`` for a per-input-channel ``c`` (exact
  with zero padding too: padding a scaled input pads with scaled zeros).

Constants are combined in float64 and rounded once to the weight's dtype.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from .rewrite import Rewriter


def fold_batch_norm(graph: Graph) -> Graph:
    """Inference batch norms become per-channel Mul + Add, which ``fold_scale_axis`` then
    folds into a preceding Conv/Gemm/MatMul when there is one (else they stay as two
    broadcast ops, which fuse with their neighbours)."""
    rw = Rewriter(graph)
    for node in graph.nodes:
        rw.release(node.name)
        if node.op_type != "BatchNormalization" or not _decompose_bn(rw, node):
            rw.emit(node)
    graph = rw.finish() if rw.changed else graph
    return fold_scale_axis(graph)


def _decompose_bn(rw: Rewriter, node: Node) -> bool:
    if any(node.outputs[1:]) or int(node.attrs.get("training_mode", 0)):
        return False
    if int(node.attrs.get("spatial", 1)) != 1:
        return False
    x = node.inputs[0]
    params = [rw.const(v) for v in node.inputs[1:5]]
    if any(p is None for p in params):
        return False
    gamma, beta, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
    eps = float(node.attrs.get("epsilon", 1e-5))
    scale = gamma / np.sqrt(var + eps)
    shift = beta - mean * scale
    ty = rw.type(x)
    shape = (-1,) + (1,) * (len(ty.shape) - 2)
    s = rw.add_const(scale.astype(ty.dtype).reshape(shape), f"{node.name}_scale")
    t = rw.add_const(shift.astype(ty.dtype).reshape(shape), f"{node.name}_shift")
    scaled = rw.fresh_value(f"{node.outputs[0]}_scaled", ty)
    rw.new_node("Mul", (x, s), (scaled,), name=f"{node.name}_mul")
    rw.new_node("Add", (scaled, t), node.outputs[:1], name=f"{node.name}_add")
    return True


def fold_scale_axis(graph: Graph) -> Graph:
    """Fold per-channel Mul/Add constants into the weights and biases of the Conv, Gemm or
    MatMul next to them (see the module docstring)."""
    rw = Rewriter(graph)
    uses = rw.uses
    for node in graph.nodes:
        rw.release(node.name)
        node = rw.renamed(node)
        done = False
        if node.op_type in ("Mul", "Add"):
            done = _fold_backward(rw, node, uses)
        elif node.op_type == "Conv":
            done = _fold_forward(rw, node, uses)
        if not done:
            rw.emit(node)
    return rw.finish() if rw.changed else graph


# -- per-channel constants -------------------------------------------------------------------


def _channel_vector(c: np.ndarray, out_shape: tuple, axis: int):
    """``c`` as a vector along ``axis`` of an output of ``out_shape`` (length 1 for a
    scalar), when ``c`` broadcasts against that output along that axis only; else None."""
    rank = len(out_shape)
    if c.ndim > rank:
        return None
    full = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if any(d != 1 for k, d in enumerate(full.shape) if k != axis):
        return None
    if full.shape[axis] not in (1, out_shape[axis]):
        return None
    return full.reshape(-1).astype(np.float64)


def _single_reader(rw: Rewriter, value: str, uses: dict) -> bool:
    return uses.get(value, 0) == 1 and value not in rw.graph.outputs


def _fold_backward(rw: Rewriter, node: Node, uses: dict) -> bool:
    y, c_name = node.inputs
    if rw.const(y) is not None:  # the constant may come first: both ops commute
        y, c_name = c_name, y
    c = rw.const(c_name)
    producer = rw.produced_by(y)
    if c is None or producer is None or not _single_reader(rw, y, uses):
        return False
    if rw.types[node.outputs[0]] != rw.type(y):  # the constant must not broadcast y up
        return False
    fold = {"Conv": _into_conv, "Gemm": _into_gemm, "MatMul": _into_matmul}.get(
        producer.op_type)
    new = fold(rw, producer, node.op_type, c, rw.type(y).shape) if fold else None
    if new is None:
        return False
    rw.retract(producer)
    rw.new_node(producer.op_type, new[0], node.outputs, new[1], producer.name)
    return True


def _into_conv(rw: Rewriter, conv: Node, op: str, c, out_shape):
    """(inputs, attrs) of the conv that computes ``conv <op> c``, or None."""
    vec = _channel_vector(c, out_shape, 1)
    w = rw.const(conv.inputs[1])
    if vec is None or w is None:
        return None
    o = w.shape[0]
    vec = np.broadcast_to(vec, (o,))
    b = rw.const(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] else None
    if len(conv.inputs) > 2 and conv.inputs[2] and b is None:
        return None  # a run-time bias
    bias = np.zeros(o) if b is None else b.astype(np.float64)
    if op == "Mul":
        w = w.astype(np.float64) * vec.reshape((o,) + (1,) * (w.ndim - 1))
        bias = bias * vec
    else:
        bias = bias + vec
    w_name = rw.add_const(w.astype(rw.type(conv.inputs[1]).dtype), f"{conv.name}_w")
    b_name = rw.add_const(bias.astype(rw.type(conv.inputs[1]).dtype), f"{conv.name}_b")
    return (conv.inputs[0], w_name, b_name), conv.attrs


def _into_gemm(rw: Rewriter, gemm: Node, op: str, c, out_shape):
    vec = _channel_vector(c, out_shape, 1)
    b = rw.const(gemm.inputs[1])
    if vec is None or b is None:
        return None
    n = out_shape[1]
    vec = np.broadcast_to(vec, (n,))
    alpha, beta = float(gemm.attrs.get("alpha", 1.0)), float(gemm.attrs.get("beta", 1.0))
    trans_b = bool(gemm.attrs.get("transB", 0))
    has_c = len(gemm.inputs) > 2 and bool(gemm.inputs[2])
    bias = rw.const(gemm.inputs[2]) if has_c else None
    if has_c and bias is None:
        return None
    bias = np.zeros(n) if bias is None else beta * bias.astype(np.float64)  # now beta = 1
    dtype = rw.type(gemm.inputs[1]).dtype
    w = b.astype(np.float64) * alpha  # now alpha = 1
    if op == "Mul":
        w = w * (vec[:, None] if trans_b else vec[None, :])
        bias = bias * vec
    else:
        bias = bias + vec
    attrs = {k: v for k, v in gemm.attrs.items() if k not in ("alpha", "beta")}
    w_name = rw.add_const(w.astype(dtype), f"{gemm.name}_w")
    b_name = rw.add_const(bias.astype(dtype), f"{gemm.name}_c")
    return (gemm.inputs[0], w_name, b_name), attrs


def _into_matmul(rw: Rewriter, matmul: Node, op: str, c, out_shape):
    """Only a Mul folds (MatMul has no bias), into a constant 2-D right operand."""
    b = rw.const(matmul.inputs[1])
    if op != "Mul" or b is None or b.ndim != 2 or len(out_shape) < 2:
        return None
    vec = _channel_vector(c, out_shape, len(out_shape) - 1)
    if vec is None:
        return None
    w = b.astype(np.float64) * np.broadcast_to(vec, (b.shape[1],))[None, :]
    w_name = rw.add_const(w.astype(b.dtype), f"{matmul.name}_w")
    return (matmul.inputs[0], w_name), matmul.attrs


def _fold_forward(rw: Rewriter, conv: Node, uses: dict) -> bool:
    """Conv(x * c, W) -> Conv(x, W scaled along its input channels)."""
    y = conv.inputs[0]
    mul = rw.produced_by(y)
    w = rw.const(conv.inputs[1])
    if mul is None or mul.op_type != "Mul" or w is None or not _single_reader(rw, y, uses):
        return False
    x, c_name = mul.inputs
    c = rw.const(c_name)
    if c is None or rw.const(x) is not None or rw.type(x) != rw.type(y):
        return False
    shape = rw.type(y).shape
    vec = _channel_vector(c, shape, 1)
    if vec is None:
        return False
    channels, cg = shape[1], w.shape[1]
    vec = np.broadcast_to(vec, (channels,))
    groups = int(conv.attrs.get("group", 1))
    og = w.shape[0] // groups
    # weight [o, j] reads input channel (o // og) * cg + j
    index = (np.arange(w.shape[0]) // og)[:, None] * cg + np.arange(cg)[None, :]
    scale = vec[index].reshape(w.shape[:2] + (1,) * (w.ndim - 2))
    w_name = rw.add_const((w.astype(np.float64) * scale).astype(w.dtype), f"{conv.name}_w")
    rw.new_node("Conv", (x, w_name, *conv.inputs[2:]), conv.outputs, conv.attrs, conv.name)
    return True


__all__ = ["fold_batch_norm", "fold_scale_axis"]

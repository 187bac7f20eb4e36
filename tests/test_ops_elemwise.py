"""te.ops elementwise, reduction and normalization ops against numpy / ONNX, on the python
target with tiny shapes (every case alone) and on the cpu target (default schedules, several
cases per kernel)."""

import math

import numpy as np
import pytest
from ops_check import (
    OpCase,
    bools,
    check,
    check_group,
    cpu_groups,
    f32,
    ints,
    onnx_ref,
    params,
    pos,
)

from te import ops

_erf = np.vectorize(math.erf)

ELEMWISE = [
    OpCase("add_same", ops.add, np.add, [f32(3, 5), f32(3, 5)]),
    OpCase("add_broadcast", ops.add, np.add, [f32(2, 1, 7), f32(3, 1)]),
    OpCase("add_scalar_left", lambda a: ops.add(2.5, a), lambda a: 2.5 + a, [f32(4, 3)]),
    OpCase("add_int", ops.add, np.add, [ints(3, 4), ints(4)]),
    OpCase("subtract_broadcast", ops.subtract, np.subtract, [f32(5), f32(3, 1)]),
    OpCase("subtract_scalar", lambda a: ops.subtract(a, 1), lambda a: a - 1, [f32(7)]),
    OpCase("multiply_rank0", ops.multiply, np.multiply, [f32(2, 3), f32()]),
    OpCase("divide_broadcast", ops.divide, np.divide, [f32(3, 4), pos(1, 4)]),
    OpCase("divide_scalar_left", lambda a: ops.divide(1.0, a), lambda a: 1.0 / a, [pos(13)]),
    OpCase("maximum", ops.maximum, np.maximum, [f32(4, 1), f32(1, 5)]),
    OpCase("minimum_int", ops.minimum, np.minimum, [ints(6), ints(1)]),
    OpCase("power", ops.power, np.power, [pos(3, 4), f32(4)], rtol=1e-5),
    OpCase("power_scalar", lambda a: ops.power(a, 2.0), lambda a: a ** 2, [f32(5)]),
    OpCase("relu", ops.relu, lambda a: np.maximum(a, 0), [f32(2, 7)]),
    OpCase("leaky_relu", lambda a: ops.leaky_relu(a, 0.2),
           onnx_ref("LeakyRelu", alpha=0.2), [f32(13)]),
    OpCase("clip", lambda a: ops.clip(a, -0.5, 0.7), lambda a: np.clip(a, -0.5, 0.7), [f32(9)]),
    OpCase("clip_min_only", lambda a: ops.clip(a, a_min=0.1), lambda a: np.maximum(a, 0.1),
           [f32(9)]),
    OpCase("clip_int", lambda a: ops.clip(a, -2, 3), lambda a: np.clip(a, -2, 3), [ints(8)]),
    OpCase("sigmoid", ops.sigmoid, lambda a: 1 / (1 + np.exp(-a)), [f32(3, 3)]),
    OpCase("tanh", ops.tanh, np.tanh, [f32(7)]),
    OpCase("exp", ops.exp, np.exp, [f32(7)]),
    OpCase("log", ops.log, np.log, [pos(7)]),
    OpCase("sqrt", ops.sqrt, np.sqrt, [pos(1, 7)]),
    OpCase("rsqrt", ops.rsqrt, lambda a: 1 / np.sqrt(a), [pos(5)]),
    OpCase("erf", ops.erf, lambda a: _erf(a).astype("float32"), [f32(7)]),
    OpCase("abs", ops.abs, np.abs, [f32(7)]),
    OpCase("abs_int", ops.abs, np.abs, [ints(7)]),
    OpCase("neg", ops.neg, np.negative, [f32(2, 2)]),
    OpCase("floor_ceil", lambda a: (ops.floor(a), ops.ceil(a)),
           lambda a: (np.floor(a), np.ceil(a)), [f32(9)]),
    OpCase("gelu", ops.gelu, onnx_ref("Gelu", opset=20), [f32(3, 7)]),
    OpCase("gelu_tanh", lambda a: ops.gelu(a, approximate="tanh"),
           onnx_ref("Gelu", opset=20, approximate="tanh"), [f32(3, 7)]),
    OpCase("where", ops.where, np.where, [bools(3, 1), f32(4), f32(3, 4)]),
    OpCase("where_scalars", lambda c, a: ops.where(c, a, 0.0),
           lambda c, a: np.where(c, a, np.float32(0)), [bools(5), f32(5)]),
    OpCase("where_only_condition", lambda c: ops.where(c, 1.0, -2.0),
           lambda c: np.where(c, 1.0, -2.0).astype("float32"), [bools(2, 3)]),
    OpCase("cast_to_int", lambda a: ops.cast(a, "int32"),
           lambda a: a.astype("int32"), [f32(9, lo=-9, hi=9)]),
    OpCase("cast_to_float", lambda a: ops.cast(a, "float32"), lambda a: a.astype("float32"),
           [ints(9)]),
    OpCase("cast_to_bool", lambda a: ops.cast(a, "bool"), lambda a: a.astype(bool),
           [ints(9, lo=-1, hi=2)]),
]

REDUCE = [
    OpCase("sum_all", ops.reduce_sum, lambda a: np.sum(a), [f32(3, 4)]),
    OpCase("sum_axis_neg", lambda a: ops.reduce_sum(a, axis=-1), lambda a: a.sum(-1),
           [f32(2, 3, 7)]),
    OpCase("sum_tuple_keepdims", lambda a: ops.reduce_sum(a, axis=(0, 2), keepdims=True),
           lambda a: a.sum((0, 2), keepdims=True), [f32(2, 3, 5)]),
    OpCase("sum_int", lambda a: ops.reduce_sum(a, axis=1), lambda a: a.sum(1).astype("int32"),
           [ints(3, 4)]),
    OpCase("mean", lambda a: ops.reduce_mean(a, axis=(1, -1)), lambda a: a.mean((1, 2)),
           [f32(2, 3, 5)]),
    OpCase("mean_all_keepdims", lambda a: ops.reduce_mean(a, keepdims=True),
           lambda a: a.mean(keepdims=True), [f32(13)]),
    OpCase("max", lambda a: ops.reduce_max(a, axis=0), lambda a: a.max(0), [f32(7, 3)]),
    OpCase("min_keepdims", lambda a: ops.reduce_min(a, axis=1, keepdims=True),
           lambda a: a.min(1, keepdims=True), [f32(3, 7, 1)]),
    OpCase("prod", lambda a: ops.reduce_prod(a, axis=-2), lambda a: a.prod(-2),
           [f32(2, 5, 3, lo=0.5, hi=1.5)]),
    OpCase("argmax_axis", lambda a: ops.argmax(a, axis=1), lambda a: a.argmax(1),
           [f32(3, 7)]),
    OpCase("argmax_none", ops.argmax, lambda a: np.array(a.argmax()), [f32(3, 5)]),
    OpCase("argmax_keepdims_neg", lambda a: ops.argmax(a, axis=-1, keepdims=True),
           onnx_ref("ArgMax", axis=-1, keepdims=1), [f32(2, 3, 5)]),
    OpCase("argmax_ties_first", lambda a: ops.argmax(a, axis=0), lambda a: a.argmax(0),
           [ints(13, 3, lo=0, hi=3)]),
    OpCase("argmax_tuple", lambda a: ops.argmax(a, axis=(0, 2)),
           lambda a: a.transpose(1, 0, 2).reshape(4, -1).argmax(1), [f32(2, 4, 3)]),
    OpCase("argmin", lambda a: ops.argmin(a, axis=0), lambda a: a.argmin(0), [f32(7, 2)]),
]


def _softmax(a, axis):
    e = np.exp(a - a.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


NORM = [
    OpCase("softmax_last", ops.softmax, lambda a: _softmax(a, -1), [f32(3, 7)]),
    OpCase("softmax_axis0", lambda a: ops.softmax(a, axis=0), onnx_ref("Softmax", axis=0),
           [f32(5, 3)]),
    OpCase("softmax_mid_neg", lambda a: ops.softmax(a, axis=-2), lambda a: _softmax(a, 1),
           [f32(2, 5, 3)]),
    OpCase("log_softmax", lambda a: ops.log_softmax(a, axis=1), onnx_ref("LogSoftmax", axis=1),
           [f32(2, 7)]),
    OpCase("layer_norm", lambda x, g, b: ops.layer_norm(x, g, b, eps=1e-5),
           onnx_ref("LayerNormalization", axis=-1, epsilon=1e-5), [f32(3, 7), f32(7), f32(7)],
           rtol=1e-4, atol=1e-5),
    OpCase("layer_norm_axis1", lambda x, g, b: ops.layer_norm(x, g, b, axis=1, eps=1e-3),
           onnx_ref("LayerNormalization", axis=1, epsilon=1e-3),
           [f32(2, 3, 5), f32(3, 5), f32(3, 5)], rtol=1e-4, atol=1e-5),
    OpCase("layer_norm_tuple_no_affine", lambda x: ops.layer_norm(x, axis=(0, 2)),
           lambda x: (x - x.mean((0, 2), keepdims=True))
           / np.sqrt(x.var((0, 2), keepdims=True) + 1e-5), [f32(2, 3, 5)],
           rtol=1e-4, atol=1e-5),
    OpCase("batch_norm", lambda x, g, b, m, v: ops.batch_norm_inference(x, m, v, g, b, 1e-3),
           onnx_ref("BatchNormalization", epsilon=1e-3),
           [f32(2, 3, 4, 5), f32(3), f32(3), f32(3), pos(3)], rtol=1e-4),
    OpCase("batch_norm_axis_last", lambda x, m, v: ops.batch_norm_inference(x, m, v, axis=-1),
           lambda x, m, v: (x - m) / np.sqrt(v + 1e-5), [f32(4, 3), f32(3), pos(3)], rtol=1e-5),
]


@pytest.mark.parametrize("case", params(ELEMWISE))
def test_elemwise(case):
    check(case)


@pytest.mark.parametrize("case", params(REDUCE))
def test_reduce(case):
    check(case)


@pytest.mark.parametrize("case", params(NORM))
def test_norm(case):
    check(case)


@pytest.mark.parametrize("group", cpu_groups(ELEMWISE + REDUCE))
def test_cpu(group):
    check_group(group)


@pytest.mark.parametrize("group", cpu_groups(NORM))
def test_norm_cpu(group):
    check_group(group, parallel=True)


def test_elemwise_chain_inlined():
    case = OpCase("relu_of_add", lambda a, b: ops.relu(ops.multiply(ops.add(a, b), 2.0)),
                  lambda a, b: np.maximum((a + b) * 2, 0), [f32(3, 1), f32(4)])
    assert check(case, inline=True) == ["add", "multiply"]


def test_reduce_of_elemwise_inlined():
    case = OpCase("mean_of_exp", lambda a: ops.reduce_mean(ops.exp(a), axis=1),
                  lambda a: np.exp(a).mean(1), [f32(3, 5)])
    assert check(case, inline=True) == ["exp"]


def test_softmax_inlined():
    case = OpCase("softmax", lambda a: ops.softmax(a, axis=0), lambda a: _softmax(a, 0),
                  [f32(5, 3)])
    assert check(case, inline=True) == ["softmax_exp"]

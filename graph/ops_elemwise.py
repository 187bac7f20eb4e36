"""Converters of the elementwise ONNX ops: arithmetic, math functions, activations,
comparisons, logic, Cast, Clip, Where, Identity, Dropout."""

from __future__ import annotations

import numpy as np

from te import dtypes
from te import ops as O

from .convert import converter, onnx_dtype, te_dtype


def _unary(op_type: str, fn):
    converter(op_type)(lambda ctx: fn(ctx.input(0)))


for _op, _fn in {
    "Relu": O.relu, "Sigmoid": O.sigmoid, "Tanh": O.tanh, "Exp": O.exp, "Log": O.log,
    "Sqrt": O.sqrt, "Abs": O.abs, "Neg": O.negative, "Erf": O.erf, "Floor": O.floor,
    "Ceil": O.ceil, "HardSwish": O.hard_swish, "Not": O.logical_not,
}.items():
    _unary(_op, _fn)


def _binary(op_type: str, fn):
    converter(op_type)(lambda ctx: fn(ctx.input(0), ctx.input(1)))


for _op, _fn in {
    "Add": O.add, "Sub": O.subtract, "Mul": O.multiply, "Equal": O.equal, "Less": O.less,
    "Greater": O.greater, "LessOrEqual": O.less_equal, "GreaterOrEqual": O.greater_equal,
    "And": O.logical_and, "Or": O.logical_or, "Xor": O.logical_xor,
}.items():
    _binary(_op, _fn)


@converter("Div")
def _div(ctx):
    a, b = ctx.input(0), ctx.input(1)
    if dtypes.is_int(a.dtype):
        return O.trunc_divide(a, b)  # ONNX integer division truncates toward zero
    return O.divide(a, b)


@converter("Pow")
def _pow(ctx):
    base, exponent = ctx.input(0), ctx.input(1)
    if dtypes.is_float(base.dtype):
        if exponent.dtype != base.dtype:  # Pow allows any numeric exponent type
            exponent = O.cast(exponent, base.dtype)
        return O.power(base, exponent)
    # integer base: numpy's power in float64, truncated back (as the ONNX reference)
    out = O.power(O.cast(base, "float64"), O.cast(exponent, "float64"))
    return O.cast(out, base.dtype)


@converter("Reciprocal")
def _reciprocal(ctx):
    return O.divide(1.0, ctx.input(0))


def _variadic(fn):
    def convert(ctx):
        xs = ctx.inputs()
        out = xs[0]
        for x in xs[1:]:
            out = fn(out, x)
        return out

    return convert


converter("Sum")(_variadic(O.add))
converter("Max")(_variadic(O.maximum))
converter("Min")(_variadic(O.minimum))


@converter("Mean")
def _mean(ctx):
    xs = ctx.inputs()
    total = _variadic(O.add)(ctx)
    return O.divide(total, float(len(xs))) if len(xs) > 1 else total


@converter("LeakyRelu")
def _leaky_relu(ctx):
    return O.leaky_relu(ctx.input(0), float(ctx.attr("alpha", 0.01)))


@converter("PRelu")
def _prelu(ctx):
    return O.prelu(ctx.input(0), ctx.input(1))


@converter("Elu")
def _elu(ctx):
    return O.elu(ctx.input(0), float(ctx.attr("alpha", 1.0)))


@converter("Selu")
def _selu(ctx):
    return O.selu(ctx.input(0), float(ctx.attr("alpha", 1.67326319217681884765625)),
                  float(ctx.attr("gamma", 1.05070102214813232421875)))


@converter("HardSigmoid")
def _hard_sigmoid(ctx):
    return O.hard_sigmoid(ctx.input(0), float(ctx.attr("alpha", 0.2)),
                          float(ctx.attr("beta", 0.5)))


@converter("Gelu")
def _gelu(ctx):
    return O.gelu(ctx.input(0), ctx.attr("approximate", "none"))


@converter("Softplus")
def _softplus(ctx):
    x = ctx.input(0)  # log(1 + exp(x)), written to stay finite for large x
    return O.add(O.relu(x), O.log(O.add(O.exp(O.negative(O.abs(x))), 1.0)))


@converter("Clip")
def _clip(ctx):
    x = ctx.input(0)
    if ctx.opset < 11 or ctx.has_attr("min") or ctx.has_attr("max"):
        return O.clip(x, ctx.attr("min", None), ctx.attr("max", None))
    out = x
    for i, fn in ((1, O.maximum), (2, O.minimum)):
        if not ctx.has_input(i):
            continue
        bound = ctx.const(i) if ctx.is_const(i) else None
        if bound is not None:
            out = fn(out, np.asarray(bound).reshape(()).item())
        else:  # a run-time bound: a 0-d tensor broadcast against x
            out = fn(out, ctx.input(i))
    return out if out is not x else O.clip(x)


@converter("Where")
def _where(ctx):
    return O.where(ctx.input(0), ctx.input(1), ctx.input(2))


@converter("Cast")
def _cast(ctx):
    to = te_dtype(onnx_dtype(int(ctx.attr("to"))), f"Cast node {ctx.node.name!r}: 'to'")
    return O.cast(ctx.input(0), to)


@converter("CastLike")
def _cast_like(ctx):
    return O.cast(ctx.input(0), ctx.type(1).dtype)


@converter("Identity")
def _identity(ctx):
    return ctx.input(0)


@converter("Dropout", const_inputs=(1, 2))
def _dropout(ctx):
    # inference: the input passes through; the mask (if asked for) is all True
    training = ctx.const(2, None) if ctx.opset >= 12 else None
    if training is not None and bool(np.asarray(training).reshape(-1)[0]):
        ratio = float(np.asarray(ctx.const(1, np.float32(0.5))).reshape(-1)[0])
        ctx.check(ratio == 0.0, "training_mode=True is not supported (tetune compiles "
                                "inference graphs)")
    x = ctx.input(0)
    outs = [x]
    if ctx.wants_output(1):
        outs.append(O.full(ctx.type(0).shape, True, "bool"))
    return outs

"""Tuning templates for the operator library's anchors.

An anchor stage carries ``attrs["workload"] = (name, *args)`` (``te.ops._util.workload``):
tensors as ``("TENSOR", shape, dtype)`` and plain attribute values. ``register_op(name,
compute)`` makes ``name`` a template: it rebuilds the op from those args (placeholders for
the tensors, ``compute(*args)`` for the op) and schedules it with the op schedule registered
for the current target (``register_schedule(name, target)``). A task ``create_task(name,
workload[1:])`` therefore tunes exactly the stage that ``schedule_for`` later meets in a
network, and its records are found again by workload.
"""

from __future__ import annotations

from collections.abc import Callable

import te

from .auto import anchor_op
from .registry import current_target, get_config, normalize_target, op_schedule, template
from .schedule import create_schedule
from .space import ConfigError

__all__ = ["is_tensor_spec", "register_op"]


def is_tensor_spec(value) -> bool:
    return (isinstance(value, tuple | list) and len(value) == 3 and value[0] == "TENSOR")


def register_op(name: str, compute: Callable, constant_inputs=()):
    """Register template ``name``: ``compute(*args)`` with tensor specs replaced by
    placeholders builds the op; the op schedule of ``name`` on the current target schedules
    it. ``constant_inputs``: the tensor positions a network binds to weights (see
    ``registry.Template``). Returns ``compute`` so it can decorate a small adapter
    function."""

    @template(name, constant_inputs)
    def op_template(*args):
        inputs, call_args = [], []
        for value in args:
            if is_tensor_spec(value):
                _, shape, dtype = value
                t = te.placeholder(tuple(shape), dtype=dtype, name=f"in{len(inputs)}")
                inputs.append(t)
                call_args.append(t)
            else:
                call_args.append(value)
        result = compute(*call_args)
        outs = list(result) if isinstance(result, tuple | list) else [result]
        target = current_target()
        schedule = op_schedule(name, target)
        if schedule is None:
            raise ConfigError(f"template {name!r} has no schedule for target "
                              f"{normalize_target(target)!r}")
        anchor = anchor_op(outs, target)
        s = create_schedule([t.op for t in outs])
        cfg = get_config()
        if anchor is not None:
            cfg.add_flop(_flop_hint(anchor))
        schedule(cfg, s, outs, anchor)
        return s, inputs + outs

    return compute


def _flop_hint(anchor) -> int:
    """The op's own count when it gives one (``attrs["flop"]``); else a multiply-add (2
    flops) per output element per reduction iteration, or 1 per element without one."""
    if "flop" in anchor.attrs:
        return int(anchor.attrs["flop"])
    total = 1
    for ax in anchor.axis:
        total *= _const(ax.dom.extent)
    reduce_axes = getattr(anchor, "reduce_axis", ())
    if reduce_axes:
        total *= 2
        for ax in reduce_axes:
            total *= _const(ax.dom.extent)
    return total


def _const(extent) -> int:
    return int(extent.value) if isinstance(extent, te.Const) else 0


# ----------------------------------------------------------------------------- te.ops.nn
# Matrix products and convolutions. The workloads are written by te/ops/nn.py; dense's does
# not include the bias (an epilogue stage the schedule fuses, not part of the anchor). The
# weights of a dense or conv are the network's constants; a matmul's B may be an activation
# (attention), so its packing is measured on every call.


def _dense(X, W, out_dtype):
    return te.ops.dense(X, W, out_dtype=out_dtype)


def _conv2d(data, weight, stride, padding, dilation, groups, layout, out_dtype):
    return te.ops.conv2d(data, weight, stride, padding, dilation, groups, layout, out_dtype)


register_op("matmul", te.ops.matmul)
register_op("dense", _dense, constant_inputs=(1,))
register_op("batch_matmul", te.ops.batch_matmul)
for _kind in ("conv2d_nchw", "group_conv2d_nchw", "depthwise_conv2d_nchw", "conv2d_nchwc",
              "group_conv2d_nchwc"):
    register_op(_kind, _conv2d, constant_inputs=(1,))


# ---------------------------------------------------------------- te.ops.norm, te.ops.pooling
# Row normalizations and pools; the workloads are written by te/ops/norm.py and pooling.py.


register_op("softmax", te.ops.softmax)
register_op("log_softmax", te.ops.log_softmax)
register_op("layer_norm", lambda x, gamma, beta, axis, eps: te.ops.layer_norm(
    x, gamma, beta, axis=tuple(axis), eps=eps))
register_op("max_pool2d", lambda data, kernel, stride, padding, dilation, ceil_mode, layout:
            te.ops.max_pool2d(data, kernel, stride, padding, dilation, ceil_mode, layout))
register_op("avg_pool2d", lambda data, kernel, stride, padding, dilation, ceil_mode, layout,
            count_include_pad: te.ops.avg_pool2d(data, kernel, stride, padding, dilation,
                                                 ceil_mode, count_include_pad, layout))
register_op("global_avg_pool2d", te.ops.global_avg_pool2d)
register_op("lrn", te.ops.lrn)

"""te.ops argument checking (each error names the op and the argument), the stage tags a
fusion pass reads, and symbolic extents."""

import numpy as np
import pytest

import te
from runtime import build
from schedules import create_schedule
from te import ops
from te.ops import tags


def P(*shape, dtype="float32"):
    return te.placeholder(shape, dtype, name="P")


X4 = P(1, 3, 7, 7)
W4 = P(4, 3, 3, 3)
I32 = P(3, 4, dtype="int32")

# (id, call, exception, message pattern)
ERRORS = [
    ("conv_channels", lambda: ops.conv2d(X4, P(4, 4, 3, 3)), te.TEValueError,
     r"conv2d: data has 3 channels but weight expects 4 \(groups=1\)"),
    ("conv_groups_channels", lambda: ops.conv2d(P(1, 4, 5, 5), P(6, 1, 3, 3), groups=2),
     te.TEValueError, r"conv2d: data has 4 channels but weight expects 2 \(groups=2\)"),
    ("conv_groups_outputs", lambda: ops.conv2d(P(1, 4, 5, 5), P(5, 2, 3, 3), groups=2),
     te.TEValueError, r"conv2d: weight has 5 output channels, which groups=2 does not divide"),
    ("conv_negative_padding", lambda: ops.conv2d(X4, W4, padding=(1, -1)), te.TEValueError,
     r"conv2d: padding must be >= 0, got -1"),
    ("conv_padding_length", lambda: ops.conv2d(X4, W4, padding=(1, 1, 1)), te.TEValueError,
     r"conv2d: padding must be an int, \(pad_h, pad_w\) or \(top, left, bottom, right\)"),
    ("conv_stride_zero", lambda: ops.conv2d(X4, W4, stride=0), te.TEValueError,
     r"conv2d: stride must be >= 1, got 0"),
    ("conv_groups_zero", lambda: ops.conv2d(X4, W4, groups=0), te.TEValueError,
     r"conv2d: groups must be >= 1"),
    ("conv_kernel_too_big", lambda: ops.conv2d(P(1, 3, 2, 7), W4), te.TEValueError,
     r"conv2d: the window .* is larger than the padded input height"),
    ("conv_layout", lambda: ops.conv2d(X4, W4, layout="NHWC"), te.TEValueError,
     r"conv2d: layout must be 'NCHW' or 'NCHW<c>c'"),
    ("conv_rank", lambda: ops.conv2d(P(3, 7, 7), W4), te.TEValueError,
     r"conv2d: data must be 4-D, got shape \(3, 7, 7\)"),
    ("conv_dtype", lambda: ops.conv2d(X4, P(4, 3, 3, 3, dtype="float64")), te.TETypeError,
     r"conv2d: data is float32 but weight is float64"),
    ("conv_nchwc_block", lambda: ops.conv2d(P(1, 1, 5, 5, 4), P(1, 1, 3, 3, 4, 4),
                                            layout="NCHW8c"),
     te.TEValueError, r"conv2d: data's last axis has 4 channels but layout 'NCHW8c' says 8"),
    ("matmul_k", lambda: ops.matmul(P(3, 5), P(4, 2)), te.TEValueError,
     r"matmul: A \(3, 5\) has a reduction dimension of 5 but B \(4, 2\) has 4"),
    ("dense_features", lambda: ops.dense(P(2, 5), P(3, 4)), te.TEValueError,
     r"dense: X has 5 input features but W \(3, 4\) expects 4"),
    ("dense_bias", lambda: ops.dense(P(2, 5), P(3, 5), P(4)), te.TEValueError,
     r"dense: bias has 4 entries but W has 3 outputs"),
    ("batch_matmul_batch", lambda: ops.batch_matmul(P(2, 3, 4), P(3, 4, 5)), te.TEValueError,
     r"batch_matmul: cannot broadcast A \(dimension 2\) with B \(dimension 3\)"),
    ("batch_matmul_rank", lambda: ops.batch_matmul(P(3), P(3, 4)), te.TEValueError,
     r"batch_matmul: A must have at least 2 dimensions"),
    ("add_broadcast", lambda: ops.add(P(2, 3), P(4)), te.TEValueError,
     r"add: cannot broadcast a \(dimension 3\) with b \(dimension 4\) at output axis 1"),
    ("add_no_tensor", lambda: ops.add(1, 2), te.TEValueError, r"add: needs at least one tensor"),
    ("add_dtypes", lambda: ops.add(P(3), I32), te.TETypeError,
     r"add: a is float32 but b is int32; cast one of them"),
    ("add_float_scalar_to_int", lambda: ops.add(I32, 2.5), te.TETypeError, r"add: b: "),
    ("divide_int", lambda: ops.divide(I32, I32), te.TETypeError, r"divide: `/` on int32"),
    ("log_int", lambda: ops.log(I32), te.TETypeError, r"log: te.log needs a float operand"),
    ("where_condition", lambda: ops.where(P(3), P(3), P(3)), te.TETypeError,
     r"where: condition must be a bool tensor"),
    ("gelu_mode", lambda: ops.gelu(P(3), approximate="fast"), te.TEValueError,
     r"gelu: approximate must be 'none' or 'tanh'"),
    ("cast_dtype", lambda: ops.cast(P(3), "complex64"), te.TETypeError,
     r"cast: unsupported dtype"),
    ("relu_not_tensor", lambda: ops.relu(np.ones(3)), te.TETypeError,
     r"relu: x must be a tensor"),
    ("reduce_axis_range", lambda: ops.reduce_sum(P(2, 3), axis=2), te.TEValueError,
     r"reduce_sum: axis=2 is out of range for a 2-D tensor"),
    ("reduce_axis_twice", lambda: ops.reduce_max(P(2, 3), axis=(1, -1)), te.TEValueError,
     r"reduce_max: axis=\(1, -1\) names an axis twice"),
    ("reduce_axis_empty", lambda: ops.reduce_min(P(2, 3), axis=()), te.TEValueError,
     r"reduce_min: axis is empty"),
    ("reduce_mean_int", lambda: ops.reduce_mean(I32), te.TETypeError, r"reduce_mean: "),
    ("argmax_dtype", lambda: ops.argmax(P(3), dtype="float32"), te.TETypeError,
     r"argmax: dtype must be an integer type"),
    ("softmax_axis", lambda: ops.softmax(P(2, 3), axis=-3), te.TEValueError,
     r"softmax: axis=-3 is out of range for a 2-D tensor"),
    ("softmax_int", lambda: ops.softmax(I32), te.TETypeError,
     r"softmax: x must have a float dtype"),
    ("layer_norm_gamma", lambda: ops.layer_norm(P(2, 3), P(2)), te.TEValueError,
     r"layer_norm: gamma must have shape \(3,\), got \(2,\)"),
    ("batch_norm_mean", lambda: ops.batch_norm_inference(P(1, 3, 2, 2), P(4), P(3)),
     te.TEValueError, r"batch_norm_inference: mean must have shape \(3,\)"),
    ("transpose_perm", lambda: ops.transpose(P(2, 3), (0, 0)), te.TEValueError,
     r"transpose: axes \(0, 0\) is not a permutation"),
    ("reshape_size", lambda: ops.reshape(P(2, 3), (4, 2)), te.TEValueError,
     r"reshape: cannot reshape \(2, 3\) \(6 elements\) into \(4, 2\) \(8 elements\)"),
    ("reshape_two_unknown", lambda: ops.reshape(P(2, 3), (-1, -1)), te.TEValueError,
     r"reshape: newshape \[-1, -1\] has more than one -1"),
    ("flatten_axis", lambda: ops.flatten(P(2, 3), 3), te.TEValueError,
     r"flatten: axis=3 is out of range"),
    ("concat_shapes", lambda: ops.concat([P(2, 3), P(3, 3)], axis=1), te.TEValueError,
     r"concat: tensors\[1\] has shape \(3, 3\), which differs from \(2, 3\) outside axis 1"),
    ("concat_empty", lambda: ops.concat([]), te.TEValueError, r"concat: needs at least one"),
    ("split_sections", lambda: ops.split(P(7), 2), te.TEValueError,
     r"split: axis 0 of size 7 cannot be split into 2 equal parts"),
    ("split_indices", lambda: ops.split(P(7), [3, 2]), te.TEValueError,
     r"split: indices \[3, 2\] must be increasing"),
    ("pad_negative", lambda: ops.pad(P(2, 3), ((0, 1), (-1, 0))), te.TEValueError,
     r"pad: pad_width must be >= 0, got -1"),
    ("pad_mode", lambda: ops.pad(P(2, 3), 1, mode="wrap"), te.TEValueError,
     r"pad: mode must be 'constant', 'edge' or 'reflect'"),
    ("pad_reflect_size", lambda: ops.pad(P(2, 3), ((0, 0), (3, 0)), mode="reflect"),
     te.TEValueError, r"pad: reflect padding of 3 needs axis 1 to have more"),
    ("pad_width_axes", lambda: ops.pad(P(2, 3, 4), ((1, 1), (1, 1))), te.TEValueError,
     r"pad: pad_width must give \(before, after\) for each of the 3 axes"),
    ("slice_step_zero", lambda: ops.slice(P(5), [0], [3], steps=[0]), te.TEValueError,
     r"slice: steps for axis 0 is 0"),
    ("slice_lengths", lambda: ops.slice(P(5), [0, 1], [3]), te.TEValueError,
     r"slice: starts, ends, axes and steps must have the same length"),
    ("gather_float_indices", lambda: ops.gather(P(5), P(2)), te.TETypeError,
     r"gather: indices must have an integer dtype"),
    ("squeeze_not_one", lambda: ops.squeeze(P(1, 3), axis=1), te.TEValueError,
     r"squeeze: axis 1 has size 3, not 1"),
    ("unsqueeze_axis", lambda: ops.unsqueeze(P(3), 2), te.TEValueError,
     r"unsqueeze: axis=2 is out of range for a 2-D tensor"),
    ("expand_shape", lambda: ops.expand(P(3, 2), (3, 4)), te.TEValueError,
     r"expand: cannot broadcast x \(dimension 2\) with shape \(dimension 4\)"),
    ("resize_both", lambda: ops.resize(P(1, 4), size=[1, 8], scales=[1, 2]), te.TEValueError,
     r"resize: give exactly one of size and scales"),
    ("resize_mode", lambda: ops.resize(P(4), scales=[2], coordinate_transformation_mode="x"),
     te.TEValueError, r"resize: coordinate_transformation_mode must be one of"),
    ("resize_linear_int", lambda: ops.resize(I32, scales=[1, 2], method="linear"),
     te.TETypeError, r"resize: method 'linear' needs a float tensor"),
    ("pool_padding", lambda: ops.max_pool2d(X4, 2, padding=2), te.TEValueError,
     r"max_pool2d: padding \(2, 2, 2, 2\) must be smaller than the \(dilated\) kernel 2"),
    ("pool_layout", lambda: ops.avg_pool2d(X4, 2, layout="NHWC"), te.TEValueError,
     r"avg_pool2d: layout must be 'NCHW' or 'NCHW<c>c'"),
    ("pool_kernel", lambda: ops.max_pool2d(X4, (2, 0)), te.TEValueError,
     r"max_pool2d: kernel must be >= 1, got 0"),
    ("lrn_size", lambda: ops.lrn(X4, 0), te.TEValueError, r"lrn: size must be >= 1, got 0"),
    ("layout_string", lambda: ops.layout_transform(X4, "NCHW", "NCHW16"), te.TEValueError,
     r"layout_transform: dst 'NCHW16' is not a layout"),
    ("layout_axes", lambda: ops.layout_transform(X4, "NCHW", "NCHWD"), te.TEValueError,
     r"layout_transform: src 'NCHW' and dst 'NCHWD' must have the same upper-case axes"),
    ("layout_rank", lambda: ops.layout_transform(X4, "NCHW4c", "NCHW"), te.TEValueError,
     r"layout_transform: src 'NCHW4c' has 5 axes but x is 4-D"),
    ("layout_block_without_axis", lambda: ops.layout_transform(X4, "NCHW", "NHW4c"),
     te.TEValueError, r"dst 'NHW4c' has the block axis c but not the axis C"),
    # axes out of range, per op
    ("log_softmax_axis", lambda: ops.log_softmax(P(2, 3), axis=2), te.TEValueError,
     r"log_softmax: axis=2 is out of range for a 2-D tensor"),
    ("layer_norm_axis", lambda: ops.layer_norm(P(2, 3), axis=-3), te.TEValueError,
     r"layer_norm: axis=-3 is out of range for a 2-D tensor"),
    ("batch_norm_axis", lambda: ops.batch_norm_inference(X4, P(3), P(3), axis=5),
     te.TEValueError, r"batch_norm_inference: axis=5 is out of range for a 4-D tensor"),
    ("lrn_axis", lambda: ops.lrn(X4, 3, axis=4), te.TEValueError,
     r"lrn: axis=4 is out of range for a 4-D tensor"),
    ("argmax_axis", lambda: ops.argmax(P(2, 3), axis=-3), te.TEValueError,
     r"argmax: axis=-3 is out of range for a 2-D tensor"),
    ("concat_axis", lambda: ops.concat([P(2, 3), P(2, 3)], axis=2), te.TEValueError,
     r"concat: axis=2 is out of range for a 2-D tensor"),
    ("gather_axis", lambda: ops.gather(P(2, 3), P(2, dtype="int32"), axis=2),
     te.TEValueError, r"gather: axis=2 is out of range for a 2-D tensor"),
    ("split_axis", lambda: ops.split(P(4), 2, axis=1), te.TEValueError,
     r"split: axis=1 is out of range for a 1-D tensor"),
    ("slice_axes", lambda: ops.slice(P(5), [0], [3], axes=[1]), te.TEValueError,
     r"slice: axes=1 is out of range for a 1-D tensor"),
    # shapes and parameters
    ("layer_norm_beta", lambda: ops.layer_norm(P(2, 3), None, P(4)), te.TEValueError,
     r"layer_norm: beta must have shape \(3,\), got \(4,\)"),
    ("batch_norm_var", lambda: ops.batch_norm_inference(X4, P(3), None), te.TEValueError,
     r"batch_norm_inference: var is required"),
    ("concat_rank", lambda: ops.concat([P(2, 3), P(2, 3, 1)]), te.TEValueError,
     r"concat: tensors\[0\] is 2-D but tensors\[1\] is 3-D"),
    ("where_broadcast", lambda: ops.where(P(3, dtype="bool"), P(4), P(3)), te.TEValueError,
     r"where: cannot broadcast condition \(dimension 3\) with x \(dimension 4\)"),
    ("conv_weight_rank", lambda: ops.conv2d(X4, P(4, 3, 3)), te.TEValueError,
     r"conv2d: weight must be 4-D, got shape \(4, 3, 3\)"),
    ("dense_rank", lambda: ops.dense(P(2, 3, 4), P(5, 4)), te.TEValueError,
     r"dense: X must be 2-D, got shape \(2, 3, 4\)"),
    # pools: negative padding, zero stride / dilation, layouts
    ("pool_negative_padding", lambda: ops.max_pool2d(X4, 3, padding=-1), te.TEValueError,
     r"max_pool2d: padding must be >= 0, got -1"),
    ("pool_stride_zero", lambda: ops.avg_pool2d(X4, 2, stride=0), te.TEValueError,
     r"avg_pool2d: stride must be >= 1, got 0"),
    ("pool_dilation_zero", lambda: ops.max_pool2d(X4, 2, dilation=0), te.TEValueError,
     r"max_pool2d: dilation must be >= 1, got 0"),
    ("global_pool_layout", lambda: ops.global_avg_pool2d(X4, layout="NHWC"), te.TEValueError,
     r"global_avg_pool2d: layout must be 'NCHW' or 'NCHW<c>c'"),
]


@pytest.mark.parametrize("call, exc, pattern", [pytest.param(*e[1:], id=e[0]) for e in ERRORS])
def test_invalid_arguments(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def _stage_tags(out):
    """{stage name: tag} for every computed stage behind ``out``."""
    s = create_schedule(out.op)
    return {st.name: st.op.tag for st in s.stages if isinstance(st.op, te.ComputeOp)}


def test_tags_name_each_stage():
    x, w = P(1, 3, 7, 7), P(3, 1, 3, 3)
    assert _stage_tags(ops.conv2d(x, w, padding=1, groups=3)) == {
        "conv2d_pad": "injective", "depthwise_conv2d_nchw": "anchor:depthwise_conv2d_nchw"}
    assert _stage_tags(ops.softmax(P(2, 3))) == {
        "softmax_max": "reduce", "softmax_exp": "broadcast", "softmax_sum": "reduce",
        "softmax": "anchor:softmax"}
    assert _stage_tags(ops.dense(P(2, 3), P(4, 3), P(4))) == {
        "dense": "anchor:dense", "dense_bias": "broadcast"}
    assert ops.add(P(2, 3), P(2, 3)).op.tag == "elemwise"
    assert ops.add(P(2, 3), 1.0).op.tag == "elemwise"
    assert ops.add(P(2, 3), P(3)).op.tag == "broadcast"
    assert ops.transpose(P(2, 3)).op.tag == "injective"
    assert ops.reduce_mean(P(2, 3)).op.tag == "reduce"
    assert ops.conv2d(P(1, 4, 5, 5), P(4, 2, 3, 3), groups=2).op.tag == (
        "anchor:group_conv2d_nchw")
    blocked = ops.conv2d(P(1, 2, 5, 5, 4), P(2, 2, 3, 3, 4, 8), layout="NCHW4c")
    assert blocked.op.tag == "anchor:conv2d_nchwc"
    assert blocked.op.attrs["out_layout"] == "NCHW8c"


def test_every_stage_names_its_op():
    out = ops.avg_pool2d(P(1, 2, 7, 7), 3, stride=2, padding=1, ceil_mode=True)
    s = create_schedule(out.op)
    ops_of = {st.op.attrs["op"] for st in s.stages if isinstance(st.op, te.ComputeOp)}
    assert ops_of == {"avg_pool2d"}
    assert out.op.attrs["kernel"] == (3, 3) and out.op.attrs["ceil_mode"] is True


def test_pattern_rank():
    assert [tags.pattern_rank(t) for t in ("elemwise", "broadcast", "injective", "reduce",
                                           "anchor:conv2d_nchw", "")] == [0, 1, 2, 3, 4, -1]
    assert tags.anchor_name("anchor:dense") == "dense" and tags.anchor_name("reduce") is None
    assert tags.is_injective("broadcast") and not tags.is_injective("reduce")


def test_symbolic_extents():
    n = te.var("n")
    a = te.placeholder((n, 3), name="A")
    out = ops.concat([ops.softmax(ops.relu(a), axis=0), ops.reduce_mean(a, 0, keepdims=True)])
    f = build(create_schedule(out.op), [a, out], target="python")
    x = np.random.default_rng(0).standard_normal((5, 3)).astype("float32")
    got = np.empty((6, 3), "float32")
    f(x, got)
    e = np.exp(np.maximum(x, 0) - np.maximum(x, 0).max(0))
    np.testing.assert_allclose(got, np.concatenate([e / e.sum(0), x.mean(0, keepdims=True)]),
                               rtol=1e-5, atol=1e-6)


def test_parse_layout():
    assert ops.parse_layout("OIHW4i16o") == (
        ("O", None), ("I", None), ("H", None), ("W", None), ("I", 4), ("O", 16))

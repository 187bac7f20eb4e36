"""te.ops transform and image ops against numpy / ONNX, on the python target (every case alone)
and on the cpu target (default schedules, several cases per kernel)."""

import numpy as np
import pytest
from ops_check import OpCase, check, check_group, cpu_groups, f32, ints, onnx_ref, params

from te import ops

I64 = np.int64


def _slice_ref(starts, ends, axes=None, steps=None):
    consts = [np.array(starts, I64), np.array(ends, I64)]
    if axes is not None or steps is not None:
        consts.append(np.array(axes if axes is not None else range(len(starts)), I64))
    if steps is not None:
        consts.append(np.array(steps, I64))
    return onnx_ref("Slice", consts)


def _slice_case(name, shape, starts, ends, axes=None, steps=None):
    return OpCase(f"slice_{name}", lambda x: ops.slice(x, starts, ends, axes, steps),
                  _slice_ref(starts, ends, axes, steps), [f32(*shape)])


def _resize_case(name, shape, method, mode, scales=None, size=None, nearest="round_prefer_floor"):
    consts = [None, np.array(scales, "float32") if scales else None]
    if size:
        consts.append(np.array(size, I64))
    ref = onnx_ref("Resize", consts, mode=method, coordinate_transformation_mode=mode,
                   nearest_mode=nearest)
    return OpCase(f"resize_{name}", lambda x: ops.resize(
        x, size=size, scales=scales, method=method, coordinate_transformation_mode=mode,
        nearest_mode=nearest), ref, [f32(*shape)], rtol=1e-5, atol=1e-5)


TRANSFORM = [
    OpCase("transpose_reverse", ops.transpose, np.transpose, [f32(2, 3, 5)]),
    OpCase("transpose_neg_axes", lambda x: ops.transpose(x, (-1, 0, 1)),
           lambda x: x.transpose(2, 0, 1), [f32(2, 3, 5)]),
    OpCase("reshape", lambda x: ops.reshape(x, (5, -1)), lambda x: x.reshape(5, -1),
           [f32(2, 3, 5)]),
    OpCase("reshape_to_1d", lambda x: ops.reshape(x, -1), lambda x: x.reshape(-1),
           [f32(7, 1, 3)]),
    OpCase("flatten", ops.flatten, onnx_ref("Flatten", axis=1), [f32(2, 3, 5)]),
    OpCase("flatten_axis0", lambda x: ops.flatten(x, 0), onnx_ref("Flatten", axis=0),
           [f32(2, 3)]),
    OpCase("flatten_neg", lambda x: ops.flatten(x, -1), onnx_ref("Flatten", axis=-1),
           [f32(2, 3, 5)]),
    OpCase("concat", lambda a, b, c: ops.concat([a, b, c], axis=1),
           lambda a, b, c: np.concatenate([a, b, c], 1), [f32(2, 3), f32(2, 1), f32(2, 5)]),
    OpCase("concat_neg_axis", lambda a, b: ops.concat((a, b), axis=-3),
           lambda a, b: np.concatenate([a, b], 0), [f32(1, 2, 3), f32(2, 2, 3)]),
    OpCase("split_sections", lambda x: ops.split(x, 3, axis=-1),
           lambda x: tuple(np.split(x, 3, axis=-1)), [f32(2, 6)]),
    OpCase("split_indices", lambda x: ops.split(x, [1, 4]),
           lambda x: tuple(np.split(x, [1, 4])), [f32(7, 2)]),
    OpCase("pad_constant", lambda x: ops.pad(x, ((1, 2), (0, 3)), value=1.5),
           lambda x: np.pad(x, ((1, 2), (0, 3)), constant_values=1.5), [f32(3, 4)]),
    OpCase("pad_int_width", lambda x: ops.pad(x, 1), lambda x: np.pad(x, 1), [f32(2, 3)]),
    OpCase("pad_edge", lambda x: ops.pad(x, ((2, 1), (1, 3)), mode="edge"),
           lambda x: np.pad(x, ((2, 1), (1, 3)), mode="edge"), [f32(3, 4)]),
    OpCase("pad_reflect", lambda x: ops.pad(x, ((2, 1), (3, 3)), mode="reflect"),
           lambda x: np.pad(x, ((2, 1), (3, 3)), mode="reflect"), [f32(3, 4)]),
    OpCase("pad_reflect_onnx", lambda x: ops.pad(x, ((0, 0), (2, 1)), mode="reflect"),
           onnx_ref("Pad", [np.array([0, 2, 0, 1], I64)], mode="reflect"), [f32(2, 5)]),
    _slice_case("basic", (7, 5), [1, 0], [5, 3]),
    _slice_case("neg_starts_axes", (7, 5), [-3], [100], axes=[-2]),
    _slice_case("steps", (7, 5), [0, 4], [7, 0], axes=[0, 1], steps=[3, -1]),
    _slice_case("neg_step_full", (13,), [-1], [-100], steps=[-2]),
    _slice_case("clamped", (3, 4), [-10, 2], [10, 100], axes=[0, 1], steps=[1, 2]),
    OpCase("gather_axis0", lambda d, i: ops.gather(d, i, axis=0), onnx_ref("Gather", axis=0),
           [f32(5, 3), ints(2, 2, lo=-5, hi=5)]),
    OpCase("gather_axis_neg", lambda d, i: ops.gather(d, i, axis=-1),
           onnx_ref("Gather", axis=-1), [f32(2, 3, 7), ints(4, lo=-7, hi=7, dtype="int64")]),
    OpCase("gather_scalar_index", lambda d, i: ops.gather(d, i, axis=1),
           lambda d, i: np.take(d, i, axis=1), [f32(2, 5), ints(lo=0, hi=5)]),
    OpCase("expand", lambda x: ops.expand(x, (2, 3, 4)),
           onnx_ref("Expand", [np.array([2, 3, 4], I64)]), [f32(3, 1)]),
    OpCase("expand_bidirectional", lambda x: ops.expand(x, (2, 1, 1)),
           onnx_ref("Expand", [np.array([2, 1, 1], I64)]), [f32(3, 4)]),
    OpCase("squeeze_all", ops.squeeze, np.squeeze, [f32(1, 3, 1, 2)]),
    OpCase("squeeze_axis", lambda x: ops.squeeze(x, axis=-2), lambda x: x.squeeze(-2),
           [f32(1, 3, 1, 2)]),
    OpCase("unsqueeze", lambda x: ops.unsqueeze(x, (0, -1)),
           onnx_ref("Unsqueeze", [np.array([0, -1], I64)]), [f32(3, 2)]),
    OpCase("unsqueeze_middle", lambda x: ops.unsqueeze(x, 1), lambda x: x[:, None],
           [f32(3, 2)]),
]

RESIZE = [
    _resize_case("nearest_half_pixel_up", (1, 2, 3, 4), "nearest", "half_pixel",
                 scales=[1, 1, 2, 1.5]),
    _resize_case("nearest_asymmetric_floor", (1, 1, 3, 5), "nearest", "asymmetric",
                 scales=[1, 1, 2, 2], nearest="floor"),
    _resize_case("nearest_asymmetric_prefer_ceil", (1, 1, 3, 5), "nearest", "asymmetric",
                 scales=[1, 1, 2, 3], nearest="round_prefer_ceil"),
    _resize_case("nearest_down_ceil", (1, 1, 7, 6), "nearest", "half_pixel",
                 size=[1, 1, 3, 4], nearest="ceil"),
    _resize_case("nearest_align_corners", (2, 5), "nearest", "align_corners", size=[3, 7]),
    _resize_case("linear_half_pixel", (1, 2, 3, 4), "linear", "half_pixel",
                 scales=[1, 1, 2, 2]),
    _resize_case("linear_asymmetric_down", (1, 1, 7, 5), "linear", "asymmetric",
                 size=[1, 1, 3, 2]),
    _resize_case("linear_pytorch_half_pixel", (1, 1, 4, 3), "linear", "pytorch_half_pixel",
                 size=[1, 1, 1, 5]),
    _resize_case("linear_align_corners_1d", (7,), "linear", "align_corners", size=[13]),
]


@pytest.mark.parametrize("case", params(TRANSFORM))
def test_transform(case):
    check(case)


@pytest.mark.parametrize("case", params(RESIZE))
def test_resize(case):
    check(case)


@pytest.mark.parametrize("group", cpu_groups(TRANSFORM + RESIZE, size=20))
def test_cpu(group):
    check_group(group)


def test_injective_chain_inlined():
    case = OpCase(
        "transpose_of_pad_of_slice",
        lambda x: ops.transpose(ops.pad(ops.slice(x, [1], [6], [1]), ((1, 0), (0, 2)),
                                        mode="edge"), (1, 0)),
        lambda x: np.pad(x[:, 1:6], ((1, 0), (0, 2)), mode="edge").T, [f32(3, 7)])
    assert check(case, inline=True) == ["slice", "pad"]

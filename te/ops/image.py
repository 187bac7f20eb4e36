"""``resize``: nearest and (multi)linear resampling with ONNX Resize's coordinate modes.

Source coordinates are computed in float64, as ONNX's reference does, so the rounding of
"nearest" agrees with it at exact ties.
"""

from __future__ import annotations

import itertools
import math
import numbers

from .. import dtypes, intrin
from ..errors import TETypeError
from ..expr import max_expr, min_expr
from . import tags
from ._util import fail, shape_of, stage, tensor_arg

COORDINATE_MODES = ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _source(i, n: int, out: int, scale: float, mode: str):
    """The input coordinate (float64) that output index ``i`` samples."""
    y = i.astype("float64")
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if mode == "asymmetric":
        return y / scale
    if mode == "align_corners":
        return y * ((n - 1) / (out - 1)) if out > 1 else y * 0.0
    return (y + 0.5) / scale - 0.5 if out > 1 else y * 0.0 - 0.5  # pytorch_half_pixel


def _clamp(j, n: int):
    return min_expr(max_expr(j, 0), n - 1)


def _nearest(x, mode: str):
    if mode == "round_prefer_floor":
        return intrin.ceil(x - 0.5)
    if mode == "round_prefer_ceil":
        return intrin.floor(x + 0.5)
    return intrin.floor(x) if mode == "floor" else intrin.ceil(x)


def _plan(x, size, scales):
    """Per axis: (input size, output size, scale)."""
    sizes = shape_of(x)
    if any(not isinstance(n, int) for n in sizes):
        fail("resize", "x must have a constant shape")
    if (size is None) == (scales is None):
        fail("resize", "give exactly one of size and scales")
    given = list(size if size is not None else scales)
    if len(given) != x.ndim:
        fail("resize", f"{'size' if size is not None else 'scales'} must have {x.ndim} entries "
                       f"(one per axis), got {len(given)}")
    plan = []
    for axis, (n, g) in enumerate(zip(sizes, given)):
        if size is not None:
            if not isinstance(g, numbers.Integral) or g <= 0:
                fail("resize", f"size[{axis}] must be a positive integer, got {g!r}")
            plan.append((n, int(g), int(g) / n))
        else:
            if not isinstance(g, numbers.Real) or not g > 0:
                fail("resize", f"scales[{axis}] must be a positive number, got {g!r}")
            out = math.floor(n * g)
            if out < 1:
                fail("resize", f"scales[{axis}]={g} leaves no element of axis {axis} ({n})")
            plan.append((n, out, float(g)))
    return plan


def resize(x, size=None, scales=None, method: str = "nearest",
           coordinate_transformation_mode: str = "half_pixel",
           nearest_mode: str = "round_prefer_floor"):
    """``x`` resampled to ``size`` (output extents) or by ``scales`` (output = floor(n * s)),
    one entry per axis, as ONNX Resize: ``method`` "nearest" or "linear" (multilinear over the
    resized axes; borders repeat), coordinate modes ``half_pixel``, ``asymmetric``,
    ``align_corners`` and ``pytorch_half_pixel``."""
    tensor_arg(x, "resize", "x")
    if method not in ("nearest", "linear"):
        fail("resize", f"method must be 'nearest' or 'linear', got {method!r}")
    if coordinate_transformation_mode not in COORDINATE_MODES:
        fail("resize", f"coordinate_transformation_mode must be one of {COORDINATE_MODES}, "
                       f"got {coordinate_transformation_mode!r}")
    if nearest_mode not in NEAREST_MODES:
        fail("resize", f"nearest_mode must be one of {NEAREST_MODES}, got {nearest_mode!r}")
    if method == "linear" and not dtypes.is_float(x.dtype):
        raise TETypeError(f"resize: method 'linear' needs a float tensor, got {x.dtype}")
    plan = _plan(x, size, scales)
    moved = [a for a, (n, out, s) in enumerate(plan) if n != out or s != 1.0]
    mode = coordinate_transformation_mode

    def body(*i):
        coords = {a: _source(i[a], plan[a][0], plan[a][1], plan[a][2], mode) for a in moved}
        if method == "nearest":
            idx = list(i)
            for a in moved:
                idx[a] = _clamp(_nearest(coords[a], nearest_mode).astype("int32"), plan[a][0])
            return x[tuple(idx)]
        low = {a: intrin.floor(coords[a]) for a in moved}
        frac = {a: (coords[a] - low[a]).astype(x.dtype) for a in moved}
        total = None
        for corner in itertools.product((0, 1), repeat=len(moved)):
            idx, weight = list(i), None
            for a, c in zip(moved, corner):
                idx[a] = _clamp(low[a].astype("int32") + c, plan[a][0])
                w = frac[a] if c else 1.0 - frac[a]
                weight = w if weight is None else weight * w
            term = x[tuple(idx)] if weight is None else weight * x[tuple(idx)]
            total = term if total is None else total + term
        return total

    attrs = {"method": method, "coordinate_transformation_mode": mode}
    return stage([out for _, out, _ in plan], body, "resize", tags.INJECTIVE, attrs=attrs)


__all__ = ["resize"]

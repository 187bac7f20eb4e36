"""Data layouts such as ``"NCHW"``, ``"NCHW16c"`` or ``"OIHW4i8o"`` and ``layout_transform``.

A layout is a string of axes. An upper-case letter is a whole ("primal") axis; digits then
a lower-case letter are a block of that axis: in ``"NCHW16c"`` the channels are stored as
``C // 16`` blocks (the ``C`` axis) of 16 (the ``c`` axis), channel ``C * 16 + c``.
"""

from __future__ import annotations

import re

from ..expr import const, select
from ..intrin import all as all_of
from . import tags
from ._util import dim, fail, stage, tensor_arg

_TOKEN = re.compile(r"(\d*)([A-Za-z])")


def parse_layout(layout: str, op: str = "layout", arg: str = "layout") -> tuple:
    """``"NCHW16c"`` -> ``(("N", None), ("C", None), ("H", None), ("W", None), ("C", 16))``:
    one (primal axis, block size or None) per axis."""
    if not isinstance(layout, str) or not layout:
        fail(op, f"{arg} must be a layout string such as 'NCHW16c', got {layout!r}")
    tokens = _TOKEN.findall(layout)
    if "".join(d + c for d, c in tokens) != layout:
        fail(op, f"{arg} {layout!r} is not a layout: use letters, each block size before its "
                 "lower-case letter (e.g. 'NCHW16c')")
    axes, seen = [], set()
    for digits, letter in tokens:
        if letter.isupper() and digits:
            fail(op, f"{arg} {layout!r}: a block size belongs before a lower-case letter "
                     f"({digits}{letter.lower()}), not before {letter}")
        if letter.islower() and (not digits or int(digits) == 0):
            fail(op, f"{arg} {layout!r}: the block axis {letter} needs a positive size "
                     f"(e.g. 8{letter})")
        key = letter
        if key in seen:
            fail(op, f"{arg} {layout!r} names axis {letter} twice")
        seen.add(key)
        axes.append((letter.upper(), int(digits) if digits else None))
    for letter in seen:
        if letter.islower() and letter.upper() not in seen:
            fail(op, f"{arg} {layout!r} has the block axis {letter} but not the axis "
                     f"{letter.upper()}")
    return tuple(axes)


def _blocks(axes) -> dict:
    return {name: factor for name, factor in axes if factor is not None}


def layout_transform(x, src: str, dst: str):
    """``x`` (in layout ``src``) stored in layout ``dst``, e.g. NCHW -> NCHW16c or back, or
    OIHW -> OIHW4i4o for convolution weights. A blocked axis whose size the block does not
    divide is padded with zeros; going back keeps the padded size."""
    op = "layout_transform"
    tensor_arg(x, op, "x")
    src_axes, dst_axes = parse_layout(src, op, "src"), parse_layout(dst, op, "dst")
    if len(src_axes) != x.ndim:
        fail(op, f"src {src!r} has {len(src_axes)} axes but x is {x.ndim}-D")
    src_primal = [name for name, f in src_axes if f is None]
    dst_primal = [name for name, f in dst_axes if f is None]
    if sorted(src_primal) != sorted(dst_primal):
        fail(op, f"src {src!r} and dst {dst!r} must have the same upper-case axes")
    src_blocks, dst_blocks = _blocks(src_axes), _blocks(dst_axes)
    extent = {}
    for pos, (name, f) in enumerate(src_axes):
        d = dim(x.shape[pos])
        if f is not None:
            if d != f:
                fail(op, f"axis {pos} of x ({name.lower()}) has size {d}, but src {src!r} "
                         f"says {f}")
            continue
        extent[name] = dim(d * src_blocks.get(name, 1))
    shape = []
    for name, f in dst_axes:
        if f is not None:
            shape.append(f)
        elif name in dst_blocks:
            b = dst_blocks[name]
            shape.append(dim((extent[name] + b - 1) // b))
        else:
            shape.append(extent[name])
    padded = [name for name, b in dst_blocks.items()
              if not (isinstance(extent[name], int) and extent[name] % b == 0)]

    def body(*i):
        outer = {name: iv for (name, f), iv in zip(dst_axes, i) if f is None}
        inner = {name: iv for (name, f), iv in zip(dst_axes, i) if f is not None}
        value = {name: outer[name] * dst_blocks[name] + inner[name] if name in inner
                 else outer[name] for name in outer}
        idx = []
        for name, f in src_axes:
            if name in src_blocks:
                v, b = value[name], src_blocks[name]
                idx.append(v % b if f is not None else v // b)
            else:
                idx.append(value[name])
        load = x[tuple(idx)]
        if not padded:
            return load
        return select(all_of(*[value[n] < extent[n] for n in padded]), load, const(0, x.dtype))

    return stage(shape, body, op, tags.INJECTIVE, attrs={"src_layout": src, "dst_layout": dst})


__all__ = ["layout_transform", "parse_layout"]

"""The dtypes a tensor expression may carry, and the checks that keep them from mixing silently."""

from __future__ import annotations

import numpy as np

from .errors import TETypeError

FLOAT_TYPES = ("float16", "float32", "float64")
INT_TYPES = ("int8", "int16", "int32", "int64", "uint8")
ALL_TYPES = FLOAT_TYPES + INT_TYPES + ("bool",)


def canonical(dtype) -> str:
    """Return the canonical name of ``dtype`` (a string, numpy dtype or numpy type)."""
    if isinstance(dtype, str) and dtype in ALL_TYPES:
        return dtype
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in ALL_TYPES:
        raise TETypeError(f"unsupported dtype {dtype!r}; tetune supports {', '.join(ALL_TYPES)}")
    return name


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_TYPES


def is_int(dtype: str) -> bool:
    return dtype in INT_TYPES


def is_bool(dtype: str) -> bool:
    return dtype == "bool"


def max_value(dtype: str):
    dtype = canonical(dtype)
    if is_float(dtype):
        return float(np.finfo(dtype).max)
    if is_bool(dtype):
        return True
    return int(np.iinfo(dtype).max)


def min_value(dtype: str):
    dtype = canonical(dtype)
    if is_float(dtype):
        return float(np.finfo(dtype).min)
    if is_bool(dtype):
        return False
    return int(np.iinfo(dtype).min)

"""``Module``: a built kernel, callable on numpy arrays, with its source and a timer."""

from __future__ import annotations

import numpy as np

from schedules import ir
from te import arith
from te import expr as E
from te.errors import TetuneError


class ArgumentError(TetuneError, ValueError):
    """A kernel was called with arrays of the wrong number, dtype, shape or layout."""


class Module:
    """A compiled function of its buffers; outputs are written into the arrays passed in."""

    def __init__(self, func: ir.PrimFunc, source: str, kernel, target: str):
        self.func = func
        self.source = source
        self.kernel = kernel
        self.target = target
        self.name = func.name
        self.entry_name = func.name

    def __repr__(self):
        return f"Module({self.name}, target={self.target})"

    def get_source(self) -> str:
        """The generated source (TVM's name)."""
        return self.source

    def __call__(self, *arrays):
        self.kernel(*self.bind(arrays))

    def bind(self, arrays) -> list:
        """Check the arrays against the parameters and append the symbolic extents."""
        params = self.func.params
        if len(arrays) != len(params):
            names = ", ".join(b.name for b in params)
            raise ArgumentError(
                f"{self.name} takes {len(params)} arrays ({names}), got {len(arrays)}"
            )
        values: dict = {}
        for buf, arr in zip(params, arrays):
            self._check(buf, arr, values)
        for buf, arr in zip(params, arrays):  # extents like n + 1 once every var is known
            for dim, (expected, got) in enumerate(zip(buf.shape, arr.shape)):
                want = arith.const_int(E.substitute(expected, {v: E.const(x) for v, x in
                                                               values.items()}))
                if want is not None and want != got:
                    raise ArgumentError(
                        f"{self.name}: dimension {dim} of {buf.name} must be {expected} = {want} "
                        f"but the array has {got} (shape {arr.shape})"
                    )
        scalars = []
        for v in self.func.scalar_params:
            if v not in values:
                raise ArgumentError(
                    f"{self.name}: the extent {v.name} cannot be inferred from the array shapes"
                )
            scalars.append(values[v])
        return list(arrays) + scalars

    def _check(self, buf: ir.Buffer, arr, values: dict):
        if not isinstance(arr, np.ndarray):
            raise ArgumentError(
                f"{self.name}: {buf.name} must be a numpy array, got {type(arr).__name__}"
            )
        if arr.dtype != np.dtype(buf.dtype):
            raise ArgumentError(
                f"{self.name}: {buf.name} must have dtype {buf.dtype}, got {arr.dtype}"
            )
        if arr.ndim != len(buf.shape):
            raise ArgumentError(
                f"{self.name}: {buf.name} must have {len(buf.shape)} dimension(s), got shape "
                f"{arr.shape}"
            )
        if not arr.flags.c_contiguous:
            raise ArgumentError(
                f"{self.name}: {buf.name} must be C-contiguous; pass np.ascontiguousarray(...)"
            )
        for dim, (expected, got) in enumerate(zip(buf.shape, arr.shape)):
            if isinstance(expected, E.Var):
                seen = values.setdefault(expected, got)
                if seen != got:
                    raise ArgumentError(
                        f"{self.name}: {expected.name} is {seen} from an earlier array but "
                        f"dimension {dim} of {buf.name} is {got}"
                    )
            elif isinstance(expected, E.Const) and expected.value != got:
                raise ArgumentError(
                    f"{self.name}: {buf.name} must have shape "
                    f"({', '.join(str(s) for s in buf.shape)}), got {arr.shape}"
                )

    def time_evaluator(self, func_name=None, dev=None, number: int = 1, repeat: int = 3,
                       min_repeat_ms: float = 0, **kwargs):
        """A callable that times this module on given arrays (see ``runtime.timer``).

        ``func_name`` and ``dev`` are accepted for TVM's ``time_evaluator(entry_name, dev,
        number=...)`` and ignored: a module has one function and runs on its target.
        """
        from .timer import time_evaluator

        evaluator = time_evaluator(self.kernel, number=number, repeat=repeat,
                                   min_repeat_ms=min_repeat_ms, **kwargs)
        return lambda *arrays: evaluator(*self.bind(arrays))

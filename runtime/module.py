"""``Module``: a built kernel, callable on numpy arrays, with its source and a timer.

For the ``"cpu"`` target the kernel is a numba dispatcher compiled for the signature a call
uses (C-contiguous arrays of the parameters' dtypes, then int64 extents), and the module
can show what numba made of it::

    f = build(s, [A, B, C], target="cpu")
    print(f.get_source())          # the generated Python (also f.source)
    print(f.asm())                 # x86 assembly, same as f.get_source("asm")
    print(f.get_source("llvm"))    # optimized LLVM IR
    print(f.vector_stats())        # {'zmm_fma': 16, 'ymm_fma': 0, 'scalar_fma': 0, ...}
    print(f.build_info)            # compile seconds, cache hit, fastmath, register tiles

``vector_stats()`` counts instructions in the assembly: a loop that was vectorized with
AVX-512 shows ``zmm_fma`` (or ``zmm_ops``) > 0; a register-tile microkernel that stayed
scalar shows ``scalar_fma`` instead; ``gathers`` and ``spills`` count the signs of a tile
vectorized the wrong way (see shared/research/numba_codegen.md, section 2).
"""

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
        self.signature = None  # numba argument types (cpu target)
        self.build_info: dict = {}
        self.entry_name = func.name
        # Argument layouts (shapes, dtypes, scalar values) already checked by ``bind``, with
        # the kernel's scalars for them: checking costs ~15 us of Python per call, as much
        # as a whole softmax or layer_norm kernel.
        self._checked: dict = {}

    def __repr__(self):
        return f"Module({self.name}, target={self.target})"

    def get_source(self, fmt: str = "") -> str:
        """The generated source (TVM's name); ``fmt`` "asm" or "llvm" for the cpu target."""
        if fmt in ("", "py", "python", "source"):
            return self.source
        if fmt in ("asm", "s"):
            return self.asm()
        if fmt in ("llvm", "ll"):
            return self._numba().inspect_llvm(self.signature)
        raise ValueError(f"get_source: unknown format {fmt!r}; expected 'python', 'asm' or "
                         "'llvm'")

    def _numba(self):
        if self.signature is None or not hasattr(self.kernel, "inspect_asm"):
            raise TetuneError(f"{self.name}: assembly exists only for the cpu target "
                              f"(this module is {self.target})")
        return self.kernel

    def asm(self) -> str:
        """The x86 (host) assembly numba generated for the kernel."""
        return self._numba().inspect_asm(self.signature)

    def vector_stats(self) -> dict:
        """Counts of vector and scalar floating-point instructions in ``asm()``.

        ``zmm_fma``/``ymm_fma``/``xmm_fma``: packed FMAs on 512/256/128-bit registers;
        ``scalar_fma``: ``vfmadd...ss/sd``; ``zmm_ops``/``ymm_ops``: instructions that use
        such a register at all; ``gathers``; ``spills``: vector registers stored to or loaded
        from the stack; ``libm_calls``: calls to expf, logf, ... (not vectorized).
        """
        return vector_stats(self.asm())

    def __call__(self, *arrays):
        key = _call_key(arrays)
        known = self._checked.get(key) if key is not None else None
        if known is None:
            bound = self.bind(arrays)
            if key is not None:
                if len(self._checked) >= 64:
                    self._checked.clear()
                order = [next(n for n, a in enumerate(self.func.args) if a is b)
                         for b in self.func.params]
                self._checked[key] = (order, bound[len(order):])
            self.kernel(*bound)
            return
        order, scalars = known
        self.kernel(*[arrays[n] for n in order], *scalars)

    def bind(self, values_in) -> list:
        """Check the call's arguments (arrays and explicit scalars, in the order given to
        ``lower``) and return the kernel's: the arrays, then every scalar parameter."""
        args = self.func.args
        if len(values_in) != len(args):
            names = ", ".join(_arg_name(a) for a in args)
            raise ArgumentError(
                f"{self.name} takes {len(args)} argument(s) ({names}), got {len(values_in)}"
            )
        values: dict = {}
        arrays: dict = {}
        for a, x in zip(args, values_in):
            if isinstance(a, E.Var):
                values[a] = _scalar(self.name, a, x)
        for a, x in zip(args, values_in):
            if isinstance(a, ir.Buffer):
                self._check(a, x, values)
                arrays[a.uid] = x
        for buf in self.func.params:  # extents like n + 1 once every var is known
            arr = arrays[buf.uid]
            known = {v: E.const(x, v.dtype) for v, x in values.items()}
            for dim, (expected, got) in enumerate(zip(buf.shape, arr.shape)):
                want = arith.const_int(E.substitute(expected, known))
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
        return [arrays[b.uid] for b in self.func.params] + scalars

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
        self._check_shape(buf, arr.shape, values)

    def _check_shape(self, buf: ir.Buffer, shape: tuple, values: dict):
        """Match ``shape`` against the buffer's, learning symbolic extents into ``values``."""
        for dim, (expected, got) in enumerate(zip(buf.shape, shape)):
            if isinstance(expected, E.Var):
                seen = values.setdefault(expected, got)
                if seen != got:
                    raise ArgumentError(
                        f"{self.name}: {expected.name} is {seen} (from an earlier argument) but "
                        f"dimension {dim} of {buf.name} is {got}"
                    )
            elif isinstance(expected, E.Const) and expected.value != got:
                raise ArgumentError(
                    f"{self.name}: {buf.name} must have shape "
                    f"({', '.join(str(s) for s in buf.shape)}), got {tuple(shape)}"
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


def vector_stats(asm: str) -> dict:
    """Instruction counts of an x86 assembly listing (see ``Module.vector_stats``)."""
    import re

    lines = [ln.strip() for ln in asm.splitlines()]
    code = [ln for ln in lines if ln and not ln.startswith((".", "#")) and not ln.endswith(":")]
    fma = re.compile(r"^vfn?m(add|sub)\w*")
    out = {"zmm_fma": 0, "ymm_fma": 0, "xmm_fma": 0, "scalar_fma": 0, "zmm_ops": 0,
           "ymm_ops": 0, "gathers": 0, "spills": 0, "libm_calls": 0, "instructions": len(code)}
    for ln in code:
        op = ln.split(None, 1)[0]
        has_z, has_y = "%zmm" in ln, "%ymm" in ln
        out["zmm_ops"] += has_z
        out["ymm_ops"] += has_y
        if fma.match(op):
            if op.endswith(("ss", "sd")):
                out["scalar_fma"] += 1
            elif has_z:
                out["zmm_fma"] += 1
            elif has_y:
                out["ymm_fma"] += 1
            else:
                out["xmm_fma"] += 1
        if op.startswith("vgather"):
            out["gathers"] += 1
        if (has_z or has_y) and "(%rsp)" in ln and op.startswith("vmov"):
            out["spills"] += 1
        if op.startswith("call") and re.search(r"\b(exp|log|tanh|erf|pow|sqrt)f?(@PLT)?\b", ln):
            out["libm_calls"] += 1
    return out


def _call_key(values):
    """What ``bind`` checks of a call's arguments, as a hashable key (None if a value is
    neither an array nor a hashable scalar)."""
    key = []
    for x in values:
        if isinstance(x, np.ndarray):
            key.append((x.shape, x.dtype, x.flags.c_contiguous))
        else:
            try:
                hash(x)
            except TypeError:
                return None
            key.append((type(x), x))
    return tuple(key)


def _arg_name(a) -> str:
    return a.name


def _scalar(module: str, var: E.Var, value):
    """A scalar argument as the numpy type of its variable (so float32 math stays float32)."""
    if isinstance(value, np.ndarray) and value.ndim > 0:
        raise ArgumentError(f"{module}: {var.name} is a scalar {var.dtype}, got an array")
    kind = np.dtype(var.dtype).kind
    if kind in "iu" and not float(value).is_integer():
        raise ArgumentError(f"{module}: {var.name} is {var.dtype}, got {value!r}")
    try:
        if kind in "iu":
            return int(value)  # extents and indices are plain integers in every kernel
        return np.dtype(var.dtype).type(value)
    except (TypeError, ValueError, OverflowError):
        raise ArgumentError(f"{module}: {var.name} must be a {var.dtype}, got {value!r}") from None

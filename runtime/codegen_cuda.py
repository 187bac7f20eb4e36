"""The ``"cuda"`` target: loop IR -> Python source with ``@cuda.jit`` kernels -> numba-cuda.

What a built module contains, and why:

* One kernel per root stage (TVM: one per thread-launch region).  A root stage must bind at
  least one axis to ``blockIdx``/``threadIdx``; the stages attached inside it (shared and local
  caches, rfactor partials) run in the same kernel.  Root stages are separate kernels because
  thread blocks cannot wait for each other; the buffers between them are device arrays that
  the host function allocates.
* The launch configuration: for each thread tag, the largest extent bound to it (blockIdx
  extents may be symbolic; the host function computes the grid from the scalar arguments).  A
  loop bound with a smaller extent than the launch gets a guard.  Threads per block, block
  dimensions and static shared memory (48 KiB) are checked at build time, the grid at launch.
* A thread-bound loop becomes ``v = cuda.threadIdx.x``.  A ``vthread`` loop is a serial loop
  in every thread (virtual threads are interleaved by the compiler, not run by the hardware).
* Barriers never sit in divergent code: a guard that depends on threadIdx and encloses a
  barrier is pushed down to the statements that use those thread indices.  So the cooperative
  loads of a shared tile are not guarded by the consumer's guards: each thread loads its part
  whatever its own output is (the load has guards of its own).
* Allocations have constant shapes and are declared at the top of the kernel:
  ``cuda.shared.array`` / ``cuda.local.array``.  A local buffer indexed only by unrolled loops
  becomes scalar locals (registers), as on the cpu target (the same analysis); a buffer with
  ``storage_align`` padding is a flat array indexed through its padded strides.
* ``unrolled`` and ``vectorized`` loops of constant extent are unrolled in the source.
* float32 constants are typed module globals, so arithmetic stays in float32 (a bare ``0.5`` is
  float64 to numba, and fp64 runs at a fraction of the fp32 rate on most GPUs).
* Array indices are ``u64(...)``: numba adds a negative-index wraparound (three 64-bit
  operations) to every signed index, and lowering never emits a negative one.

The passes that decide all this are in ``runtime.cuda_passes``; this module writes the source
(kernels, then the host function that allocates temporaries and launches them) and builds it.
Kernels compile at their first launch; with numba-cuda's ``cache=True`` the machine code of
the content-hashed kernel file (``runtime.kernel_cache``) is reused by later processes.
``runtime.cuda_env`` says why a machine cannot run them, and holds the simulator switch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from schedules import ir
from te import arith
from te import expr as E

from . import cuda_env
from .codegen_cpu import MAX_UNROLL, typed_float_global
from .codegen_python import PythonSource
from .cuda_passes import CudaPlan, Kernel, _size, plan

MAX_TILE = 128  # elements of a register tile per thread (a thread has at most 255 registers)
_IGNORED_FLAGS = ("arch", "model", "libs", "keys", "max_num_threads", "thread_warp_size",
                  "max_threads_per_block", "max_shared_memory_per_block", "mcpu", "mattr",
                  "mtriple", "opt_level")


def _build_error(message: str):
    from .build import BuildError

    return BuildError(message)


@dataclass
class CudaOptions:
    """Knobs of the cuda target: ``build(..., target="cuda -fastmath=1 -max_unroll=512")``."""

    fastmath: bool = False  # numba-cuda's fastmath: approximate exp/div/sqrt, flush denormals
    max_unroll: int = MAX_UNROLL
    max_tile: int = MAX_TILE

    @classmethod
    def parse(cls, flags: list) -> CudaOptions:
        """Options from target-string flags such as ``["-fastmath=1"]``."""
        opts = cls()
        for flag in flags:
            key, _, value = flag.lstrip("-").partition("=")
            key = key.replace("-", "_")
            if key == "fastmath":
                opts.fastmath = value.lower() not in ("0", "false", "no", "off")
            elif key in ("max_unroll", "max_tile"):
                try:
                    setattr(opts, key, int(value))
                except ValueError:
                    raise _build_error(f"target flag {flag!r}: {key} needs an integer") from None
            elif key in _IGNORED_FLAGS:
                continue  # TVM target flags; numba-cuda compiles for the current device
            else:
                raise _build_error(f"unknown cuda target flag {flag!r}; known: -fastmath=, "
                                   "-max_unroll=, -max_tile=")
        return opts


# ------------------------------------------------------------------------------------------
# Source
# ------------------------------------------------------------------------------------------


class CudaSource(PythonSource):
    """Writes a planned function as a module of ``@cuda.jit`` kernels and a host function."""

    target = "cuda"

    def __init__(self, func: ir.PrimFunc, p: CudaPlan, opts: CudaOptions):
        super().__init__(func)
        self.names.taken |= {"cuda", "launch", "u64"}
        if self.fn_name in ("cuda", "launch", "u64"):
            self.fn_name = self.names.get("fn_cuda", func.name)
        self.plan, self.opts = p, opts
        self.consts: dict = {}
        self.const_lines: list = []
        self.hw: dict = {}
        self.tiles: dict = {}
        self.kernel_names = [self.names.get(("kernel", k.name), k.name) for k in p.kernels]

    def var(self, v: E.Var) -> str:
        return self.hw.get(v.uid) or super().var(v)

    def imports(self) -> list:
        return ["import math", "", "import numpy as np", "from numba import cuda", "",
                "from runtime.cuda_module import launch", "", "u64 = np.uint64"]

    def intrinsics(self, x: str, dtype: str) -> dict:
        one = self.const(E.Const(1.0, dtype)) if dtype.startswith("float") else "1"
        return {
            "exp": f"math.exp({x})", "log": f"math.log({x})", "sqrt": f"math.sqrt({x})",
            "rsqrt": f"({one} / math.sqrt({x}))", "tanh": f"math.tanh({x})",
            "sigmoid": f"({one} / ({one} + math.exp(-({x}))))", "erf": f"math.erf({x})",
            "floor": f"np.{dtype}(math.floor({x}))", "ceil": f"np.{dtype}(math.ceil({x}))",
            "round": f"np.{dtype}(round({x}))", "abs": f"abs({x})",
        }

    def call(self, name: str, args: list, dtype: str) -> str:
        if name == "power":
            return f"math.pow({args[0]}, {args[1]})"
        return super().call(name, args, dtype)

    def const(self, c: E.Const) -> str:
        if not isinstance(c.value, float) or c.dtype == "float64":
            return super().const(c)
        return typed_float_global(self, c)

    # -- statements ---------------------------------------------------------------------------
    def block(self, s, level):
        n = len(self.lines)
        self.stmt(s, level)
        if len(self.lines) == n:
            self.emit(level, "pass")

    def stmt_For(self, s, level):
        words = ([] if s.kind == "serial" else [s.kind]) + ([s.thread_tag] if s.thread_tag else [])
        note = f"  # {' '.join(words)}" if words else ""
        self.emit(level, f"for {self.var(s.var)} in range({self.expr(s.extent)}):{note}")
        self.block(s.body, level + 1)

    def stmt_IfThenElse(self, s, level):
        self.emit(level, f"if {self.expr(s.condition)}:")
        self.block(s.then_case, level + 1)
        if s.else_case is not None:
            self.emit(level, "else:")
            self.block(s.else_case, level + 1)

    def stmt_Barrier(self, s, level):
        self.emit(level, "cuda.syncthreads()")

    def stmt_Allocate(self, s, level):
        b = s.buffer
        if b.uid in self.tiles:
            # Every element gets a value first: numba needs each local defined on all paths.
            zero = self.expr(E.const(0, b.dtype))
            for idx in np.ndindex(*[arith.const_int(d) for d in b.shape]):
                self.emit(level, f"{self.ref(b, [E.Const(i, 'int32') for i in idx])} = {zero}")
        self.stmt(s.body, level)

    def stmt_Store(self, s, level):
        self.emit(level, f"{self.ref(s.buffer, s.indices)} = {self.expr(s.value)}")

    def ref(self, b: ir.Buffer, indices) -> str:
        if b.uid in self.tiles:
            consts = [arith.const_int(arith.simplify(i)) for i in indices]
            if any(c is None for c in consts):
                raise AssertionError(f"register tile {b.name} indexed by "
                                     f"{[str(i) for i in indices]}")
            return self.names.get(("tile", b.uid) + tuple(consts),
                                  self.buf(b) + "".join(f"_{c}" for c in consts))
        if b.strides is not None:
            flat = E.Const(0, "int32")
            for i, st in zip(indices, b.strides):
                flat = flat + i * st
            indices = [arith.simplify(flat)]
        return f"{self.buf(b)}[{', '.join(self.unsigned(i) for i in indices)}]"

    def unsigned(self, index) -> str:
        """An index as ``u64(...)``: lowering only emits non-negative indices, and numba
        skips its negative-index wraparound (three 64-bit operations per index, ~40% of the
        instructions of a matmul's inner loop) for unsigned ones."""
        text = self.expr(index)
        return text if isinstance(index, E.Const) else f"u64({text})"

    def _fmt(self, e, prec):
        if isinstance(e, ir.BufferLoad):
            return self.ref(e.buffer, e.indices)
        return super()._fmt(e, prec)

    # -- functions ---------------------------------------------------------------------------
    def kernel(self, k: Kernel, name: str):
        self.hw, self.tiles = k.hw, k.tiles
        params = [self.buf(b) for b in k.buffers] + [self.var(v) for v in k.scalars]
        fm = "True" if self.opts.fastmath else "False"
        self.emit(0, f"@cuda.jit(cache=True, fastmath={fm})")
        self.emit(0, f"def {name}({', '.join(params)}):")
        grid = ", ".join(self.expr(g) for g in k.grid)
        self.emit(1, f"# computes {', '.join(k.computes)}; grid ({grid}), block "
                     f"{k.block}, {k.shared_bytes} bytes of shared memory")
        for b in k.allocs:
            if b.strides is None:
                shape = self.shape_tuple(b.shape)
            else:
                shape = str(_size(b))
            self.emit(1, f"{self.buf(b)} = cuda.{b.scope}.array({shape}, np.{b.dtype})")
        self.block(k.body, 1)
        self.hw, self.tiles = {}, {}

    def host(self):
        f = self.func
        params = [self.buf(b) for b in f.params] + [self.var(v) for v in f.scalar_params]
        self.emit(0, f"def {self.fn_name}({', '.join(params)}):")
        for b in self.plan.temps:
            self.emit(1, f"{self.buf(b)} = cuda.device_array({self.shape_tuple(b.shape)}, "
                         f"dtype=np.{b.dtype})")
        for k, name in zip(self.plan.kernels, self.kernel_names):
            grid = "(" + ", ".join(self.expr(g) for g in k.grid) + ")"
            args = [self.buf(b) for b in k.buffers] + [self.var(v) for v in k.scalars]
            self.emit(1, f"launch({name}, {grid}, {k.block}, {', '.join(args)})")

    def source(self) -> str:
        self.lines = []
        for k, name in zip(self.plan.kernels, self.kernel_names):
            self.kernel(k, name)
            self.lines += ["", ""]
        self.host()
        f = self.func
        head = [f'"""Generated by tetune (target cuda) from `{_safe(f.name)}`."""', ""]
        for note in self.plan.notes:
            head.insert(1, f"# note: {_safe(note)}")
        consts = ["", ""] + self.const_lines if self.const_lines else []
        return "\n".join(head + self.imports() + consts + ["", ""] + self.lines) + "\n"


def _safe(text: str) -> str:
    import re

    return re.sub(r"[^\w .,:;=<>()\-+*/]", "_", text, flags=re.ASCII)


# ------------------------------------------------------------------------------------------
# Build
# ------------------------------------------------------------------------------------------


def generate(func: ir.PrimFunc, opts: CudaOptions | None = None, limits: dict | None = None):
    """``(source, plan, host function name)`` for ``func``; needs no GPU and no numba.cuda."""
    opts = opts or CudaOptions()
    p = plan(func, opts, limits)
    writer = CudaSource(func, p, opts)
    return writer.source(), p, writer.fn_name, writer.kernel_names


def build_cuda(func: ir.PrimFunc, opts: CudaOptions | None = None):
    """Generate the module, import it through the kernel cache, compile its kernels for the
    argument types a call passes (C-contiguous arrays, int64 extents) and wrap it in a
    CudaModule.  In the simulator nothing compiles."""
    from . import kernel_cache
    from .cuda_module import CudaModule

    cuda_env.require_gpu()
    opts = opts or CudaOptions()
    source, p, fn_name, kernel_names = generate(func, opts, cuda_env.device_limits())
    t0 = time.perf_counter()
    try:
        mod = kernel_cache.load_module(source, func.name, "cuda")
    except SyntaxError as err:  # a bug of this generator, not of the user's schedule
        raise _build_error(f"{func.name}: generated source does not parse ({err})") from err
    kernels = [getattr(mod, n) for n in kernel_names]
    if not cuda_env.simulator_active():
        for kernel, k in zip(kernels, p.kernels):
            try:
                kernel.compile(_signature(k))
            except Exception as err:  # numba raises many kinds
                raise _build_error(
                    f"{func.name}: numba-cuda could not compile kernel {kernel.__name__} "
                    f"({type(err).__name__}: {str(err).strip()[:2000]})\nsource: "
                    f"{getattr(mod, '__file__', '?')}") from err
    module = CudaModule(func, source, getattr(mod, fn_name), p, kernels)
    module.build_info = {
        "compile_seconds": time.perf_counter() - t0,
        "source_path": getattr(mod, "__file__", None),
        "simulator": cuda_env.simulator_active(),
        "kernels": [{"name": n, "grid": [str(g) for g in k.grid], "block": list(k.block),
                     "shared_bytes": k.shared_bytes,
                     "register_tiles": [b.name for b in k.tiles.values()]}
                    for n, k in zip(kernel_names, p.kernels)],
        "notes": list(p.notes),
    }
    return module


def _signature(k: Kernel) -> tuple:
    """The numba types of a kernel's arguments as the host function passes them."""
    from numba import from_dtype, types

    arrays = [types.Array(from_dtype(np.dtype(b.dtype)), len(b.shape), "C") for b in k.buffers]
    # Module.bind passes integer scalars as Python ints, float ones as numpy scalars.
    scalars = [types.int64 if np.dtype(v.dtype).kind in "iu" else from_dtype(np.dtype(v.dtype))
               for v in k.scalars]
    return tuple(arrays + scalars)

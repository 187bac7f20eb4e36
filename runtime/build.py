"""``build``: schedule -> lowered IR -> source for a target -> callable ``Module``."""

from __future__ import annotations

import hashlib
import linecache

from schedules import ir, lower
from schedules.schedule import Schedule
from te.errors import TetuneError

from .codegen_python import PythonSource
from .module import Module

TARGETS = ("python", "cpu", "cuda")


class BuildError(TetuneError, RuntimeError):
    """A target is unknown or unavailable, or code generation failed."""


def build(sch, args=None, target: str = "cpu", name: str | None = None) -> Module:
    """Compile a schedule (or an already lowered PrimFunc) for ``target``.

    ``target`` is ``"python"`` (plain CPython, the reference and debug path), ``"cpu"``
    (numba; ``"llvm"`` is accepted as TVM's name) or ``"cuda"``. The cpu target takes flags
    after its name: ``"cpu -fastmath=auto|full|noreassoc|off -parallel=0|1 -max_unroll=N
    -max_tile=N"`` (see ``runtime.codegen_cpu``); the cuda target ``"cuda -fastmath=0|1"``
    (see ``runtime.codegen_cuda``; it needs numba-cuda and a GPU, or numba's CUDA simulator).
    """
    if isinstance(sch, Schedule):
        if args is None:
            raise BuildError("build(schedule, args): args (the tensors of the kernel) are needed")
        func = lower(sch, args, name=name or "main")
    elif isinstance(sch, ir.PrimFunc):
        func = sch
    else:
        raise BuildError(f"build expects a Schedule or a lowered PrimFunc, got {sch!r}")
    words = str(target).split() if target else [""]
    target, flags = words[0], words[1:]
    if target == "llvm":  # TVM's name for the CPU
        target = "cpu"
    if target == "python":
        return _build_python(func)
    if target == "cpu":
        from .codegen_cpu import CpuOptions, build_cpu

        return build_cpu(func, CpuOptions.parse(flags))
    if target == "cuda":
        from .codegen_cuda import CudaOptions, build_cuda

        return build_cuda(func, CudaOptions.parse(flags))
    raise BuildError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")


def _build_python(func: ir.PrimFunc) -> Module:
    writer = PythonSource(func)
    source = writer.source()
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    filename = f"<tetune-python {writer.fn_name} {digest}>"
    # Registered so that tracebacks and pdb show the generated lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict = {"__name__": f"tetune_kernel_{digest}"}
    exec(compile(source, filename, "exec"), namespace)
    return Module(func, source, namespace[writer.fn_name], "python")

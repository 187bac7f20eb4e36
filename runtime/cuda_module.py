"""``CudaModule``: a built ``"cuda"`` module, callable on numpy arrays or on device arrays.

* Device arrays (numba device arrays, CuPy, torch tensors on the GPU: anything exposing
  ``__cuda_array_interface__``) are passed to the kernels as they are, without copies, and the
  call returns without waiting for the GPU (as a CUDA launch does).
* numpy arrays are copied to the device, and the outputs copied back, around every call; that
  is convenient for tests and costs PCIe transfers, so time device arrays.
* ``time_evaluator`` times with CUDA events on the default stream: ``number`` back-to-back
  launches between two events, ``repeat`` times, after an untimed warm-up (the compile).
"""

from __future__ import annotations

import time

import numpy as np

from te.errors import TetuneError

from . import cuda_env
from .module import ArgumentError, Module
from .timer import TimingResult


class LaunchError(TetuneError, RuntimeError):
    """A kernel cannot be launched with the sizes of this call (grid too large)."""


def launch(kernel, grid, block, *args):
    """Launch ``kernel`` on ``grid`` x ``block`` (the generated host functions call this);
    an empty grid launches nothing."""
    grid = tuple(int(g) for g in grid)
    if min(grid) <= 0:
        return
    for d, g, most in zip("xyz", grid, cuda_env.DEFAULT_LIMITS["max_grid_dim"]):
        if g > most:
            raise LaunchError(f"{getattr(kernel, '__name__', 'kernel')}: blockIdx.{d} would be "
                              f"{g} for these sizes, more than the limit of {most}")
    kernel[grid, block](*args)


def _interface(x) -> dict | None:
    try:
        return x.__cuda_array_interface__
    except (AttributeError, TypeError):  # torch raises for tensors that are not on a GPU
        return None


class CudaModule(Module):
    """A compiled cuda function; see the module docstring for the arguments it takes."""

    def __init__(self, func, source, host_fn, plan, kernels):
        super().__init__(func, source, host_fn, "cuda")
        self.plan = plan
        self.kernels = kernels  # the @cuda.jit functions, in launch order

    def _check(self, buf, arr, values):
        if not cuda_env.is_device_array(arr):
            if isinstance(arr, np.ndarray):
                return super()._check(buf, arr, values)
            raise ArgumentError(f"{self.name}: {buf.name} must be a numpy array or a device "
                                f"array (__cuda_array_interface__), got {type(arr).__name__}")
        shape, dtype, contiguous = _describe(arr)
        if dtype != np.dtype(buf.dtype):
            raise ArgumentError(
                f"{self.name}: {buf.name} must have dtype {buf.dtype}, got {dtype}")
        if len(shape) != len(buf.shape):
            raise ArgumentError(f"{self.name}: {buf.name} must have {len(buf.shape)} "
                                f"dimension(s), got shape {shape}")
        if not contiguous:
            raise ArgumentError(f"{self.name}: {buf.name} must be a C-contiguous device array")
        self._check_shape(buf, shape, values)

    def _device_args(self, values: list):
        """Device versions of the bound arguments and the (device, host) output pairs to
        copy back."""
        cuda = cuda_env.require_gpu()
        n = len(self.func.params)
        out, copies = [], []
        for buf, x in zip(self.func.params, values[:n]):
            if isinstance(x, np.ndarray):
                if buf.uid in self.plan.outputs:
                    d = cuda.device_array(x.shape, dtype=x.dtype)
                    copies.append((d, x))
                else:
                    d = cuda.to_device(x)
                x = d
            out.append(x)
        return out + list(values[n:]), copies

    def __call__(self, *arrays):
        args, copies = self._device_args(self.bind(arrays))
        self.kernel(*args)
        for d, host in copies:
            d.copy_to_host(host)

    def time_evaluator(self, func_name=None, dev=None, number: int = 1, repeat: int = 3,
                       min_repeat_ms: float = 0, **kwargs):
        """A callable that times this module on given arrays (numpy inputs are copied to the
        device once, outside the timed region).  ``func_name`` and ``dev`` are accepted for
        TVM's signature and ignored; so are the cpu timer's ``cooldown_interval_ms`` and
        ``flush_cache``."""
        if number < 1 or repeat < 1:
            raise ValueError("number and repeat must be >= 1")

        def evaluator(*arrays) -> TimingResult:
            args, copies = self._device_args(self.bind(arrays))
            cuda = cuda_env.cuda_module()
            self.kernel(*args)  # warm-up: compile or load from the cache
            cuda.synchronize()
            n, results = number, []
            for _ in range(repeat):
                while True:
                    seconds = _timed(cuda, self.kernel, args, n)
                    if seconds * 1e3 >= min_repeat_ms or seconds <= 0:
                        break
                    n = int(max(min_repeat_ms / 1e3 / (seconds / n) + 1, n * 1.618))
                results.append(seconds / n)
            for d, host in copies:
                d.copy_to_host(host)
            return TimingResult.from_results(results, n)

        return evaluator


def _timed(cuda, fn, args, n: int) -> float:
    """Seconds that ``n`` back-to-back calls of ``fn`` take on the device."""
    if cuda_env.simulator_active():  # simulated events record no time
        t0 = time.perf_counter()
        for _ in range(n):
            fn(*args)
        return time.perf_counter() - t0
    start, end = cuda.event(), cuda.event()
    start.record()
    for _ in range(n):
        fn(*args)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


def _describe(arr):
    """``(shape, dtype, C-contiguous)`` of a device array."""
    iface = _interface(arr)
    if iface is None:  # the simulator's device arrays wrap a numpy array
        return tuple(arr.shape), np.dtype(arr.dtype), bool(arr.is_c_contiguous())
    shape = tuple(int(s) for s in iface["shape"])
    dtype = np.dtype(iface["typestr"])
    strides = iface.get("strides")
    if strides is None:
        return shape, dtype, True
    expected, step = [], dtype.itemsize
    for dim in reversed(shape):
        expected.append(step)
        step *= dim
    sized = [(s, e) for s, e, d in zip(strides, reversed(expected), shape) if d > 1]
    return shape, dtype, all(s == e for s, e in sized)

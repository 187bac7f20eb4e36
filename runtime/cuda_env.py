"""numba's CUDA target, imported lazily, with clear errors when it cannot run, and its simulator.

numba.cuda is imported only when a ``"cuda"`` module is built or called, so the cpu target never
pays for it (or breaks because of it).  Without a GPU the same kernels run in numba's CUDA
simulator, one Python thread per CUDA thread (slow: for tests on tiny shapes, and for stepping
through a kernel with pdb).  The simulator is chosen when numba.cuda is first imported, by the
environment variable ``NUMBA_ENABLE_CUDASIM=1`` or by calling ``enable_simulator()`` before.
"""

from __future__ import annotations

import os
import sys

SIMULATOR_ENV = "NUMBA_ENABLE_CUDASIM"

# Conservative limits of every GPU numba-cuda supports (compute capability 5.0 and later);
# a real device's own values replace them (see ``device_limits``).
DEFAULT_LIMITS = {
    "max_threads_per_block": 1024,
    "max_block_dim": (1024, 1024, 64),
    "max_grid_dim": (2**31 - 1, 65535, 65535),
    "max_shared_memory_per_block": 48 * 1024,
}

_INSTALL_HINT = "pip install 'tetune[cuda]' (the numba-cuda package)"
_SIMULATOR_HINT = (
    "To run CUDA kernels without a GPU (slowly, for testing), use numba's CUDA simulator: "
    f"set {SIMULATOR_ENV}=1 in the environment, or call runtime.cuda_env.enable_simulator() "
    "before anything imports numba.cuda."
)


def _error(message: str):
    from .build import BuildError

    return BuildError(message)


def cuda_module():
    """The ``numba.cuda`` module; a BuildError if numba has no CUDA support installed."""
    try:
        from numba import cuda
    except ImportError as err:
        raise _error(f"target 'cuda' needs numba's CUDA support, which is not installed "
                     f"({err}): {_INSTALL_HINT}") from None
    return cuda


def simulator_active() -> bool:
    """Whether numba.cuda was imported in simulator mode (False if it is not imported yet)."""
    return "numba.cuda.simulator_init" in sys.modules


def enable_simulator() -> bool:
    """Make the cuda target run in numba's CUDA simulator.  It must happen before numba.cuda
    is first imported; returns whether the simulator is what this process now uses."""
    if "numba.cuda" in sys.modules:
        return simulator_active()
    os.environ[SIMULATOR_ENV] = "1"
    if "numba" in sys.modules:
        # numba's built-in CUDA target reads numba's config, which was read from the
        # environment when numba was imported; numba-cuda reads the environment itself.
        from numba.core import config

        config.ENABLE_CUDASIM = 1
    try:
        cuda_module()
    except Exception:  # noqa: BLE001 - any failure to import means "no simulator"
        return False
    return simulator_active()


def require_gpu():
    """``numba.cuda`` if kernels can run (on a GPU or in the simulator), else a BuildError
    saying why not and what to do."""
    cuda = cuda_module()
    if simulator_active():
        return cuda
    try:
        ok = cuda.is_available()
    except Exception as err:  # noqa: BLE001 - numba may raise instead of answering
        ok, detail = False, f"{type(err).__name__}: {err}"
    else:
        detail = _why_unavailable(cuda) if not ok else ""
    if not ok:
        raise _error(f"target 'cuda': no usable CUDA GPU ({detail.strip() or 'none found'}). "
                     f"{_SIMULATOR_HINT}")
    return cuda


def _why_unavailable(cuda) -> str:
    try:
        cuda.current_context()
    except Exception as err:  # noqa: BLE001 - whatever the driver says is the reason
        text = " ".join(str(err).split())
        return f"{type(err).__name__}: {text[:300]}"
    return "numba.cuda.is_available() is False"


def device_limits() -> dict:
    """Launch limits of the current device (the defaults in the simulator)."""
    limits = dict(DEFAULT_LIMITS)
    if simulator_active() or "numba.cuda" not in sys.modules:
        return limits
    try:
        dev = cuda_module().get_current_device()
        limits["max_threads_per_block"] = int(dev.MAX_THREADS_PER_BLOCK)
        limits["max_block_dim"] = (int(dev.MAX_BLOCK_DIM_X), int(dev.MAX_BLOCK_DIM_Y),
                                   int(dev.MAX_BLOCK_DIM_Z))
        limits["max_grid_dim"] = (int(dev.MAX_GRID_DIM_X), int(dev.MAX_GRID_DIM_Y),
                                  int(dev.MAX_GRID_DIM_Z))
        # Statically declared shared memory is capped at 48 KiB on every architecture
        # (more needs dynamic shared memory and an opt-in), whatever the device offers.
        limits["max_shared_memory_per_block"] = min(
            int(dev.MAX_SHARED_MEMORY_PER_BLOCK), DEFAULT_LIMITS["max_shared_memory_per_block"])
    except Exception:  # noqa: BLE001, S110 - a device that cannot say keeps the defaults
        pass
    return limits


def is_device_array(x) -> bool:
    """Whether ``x`` lives in GPU memory: anything exposing ``__cuda_array_interface__``
    (numba device arrays, CuPy, torch), or a simulator device array."""
    return hasattr(x, "__cuda_array_interface__") or getattr(x, "__cuda_ndarray__", False)

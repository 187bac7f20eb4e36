"""The runtime: code generation from the loop IR (plain Python, numba for CPUs and GPUs),
``Module`` objects callable on arrays, honest timing and the on-disk kernel cache."""

# This must run before anything imports numba: numba reads NUMBA_SLP_VECTORIZE once, at
# import, and the cpu target's register tiles need the SLP vectorizer (see _numba_env).
from . import _numba_env

_numba_env.set_environment()
if "numba" in __import__("sys").modules:  # imported earlier, by the user or a library
    _numba_env.ensure_slp()

from .build import BuildError, build  # noqa: E402
from .module import ArgumentError, Module  # noqa: E402

__all__ = ["ArgumentError", "BuildError", "Module", "build"]

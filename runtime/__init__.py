"""The runtime: code generation from the loop IR (plain Python, numba for CPUs and GPUs),
``Module`` objects callable on arrays, honest timing and the on-disk kernel cache."""

from .build import BuildError, build
from .module import ArgumentError, Module

__all__ = ["ArgumentError", "BuildError", "Module", "build"]

"""numba settings that the cpu target needs, applied before numba is imported.

``NUMBA_SLP_VECTORIZE=1``: numba turns LLVM's SLP vectorizer off by default, and without it
a register tile kept in scalar locals compiles to scalar FMAs (8 GFLOP/s instead of 213 per
core for a 1024^3 matmul; shared/research/numba_codegen.md, section 2).  numba reads the
environment variable once, when ``numba`` is first imported, so ``runtime/__init__.py``
calls ``set_environment()`` before anything in tetune imports numba.  A value the user set
in the environment is respected.


If numba was imported before tetune's runtime (and the user did not choose a value),
``ensure_slp()`` switches the setting on in numba's config, which numba reads each time it
optimizes a function, so later kernels get it, and warns once: functions numba compiled
before that are unaffected.
"""

from __future__ import annotations

import os
import sys
import warnings

_ENV = "NUMBA_SLP_VECTORIZE"
_user_choice = os.environ.get(_ENV)  # what the environment said before tetune touched it
_warned = False


def set_environment() -> None:
    """Set the variables (without overriding the user's); call before importing numba."""
    os.environ.setdefault(_ENV, "1")


def ensure_slp() -> bool:
    """Make sure kernels compiled from now on get the SLP vectorizer; True if they do."""
    global _warned
    if "numba" not in sys.modules:
        set_environment()
        return os.environ.get(_ENV) not in ("0", "")
    from numba.core import config

    if getattr(config, "SLP_VECTORIZE", 0):
        return True
    if _user_choice is not None:  # the user asked for it off: respect that
        return False
    config.SLP_VECTORIZE = 1
    os.environ.setdefault(_ENV, "1")  # config.reload_config() keeps it on
    if not _warned:
        _warned = True
        warnings.warn(
            "numba was imported before tetune's runtime with its SLP vectorizer off; tetune "
            "switched it on (NUMBA_SLP_VECTORIZE=1) for the kernels compiled from now on. "
            "Import runtime before numba, or set NUMBA_SLP_VECTORIZE=1 in the environment, "
            "to have it from the start.", RuntimeWarning, stacklevel=3)
    return True

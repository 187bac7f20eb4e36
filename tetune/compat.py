"""TVM-classic names in one namespace, so TVM's TE tutorials run with import changes only::

    import tetune.compat as tvm
    from tetune.compat import te

``te`` is tetune's ``te`` plus ``create_schedule``; ``tvm.lower`` / ``tvm.build`` /
``tvm.device`` / ``tvm.nd.array`` / ``tvm.tir`` / ``tvm.testing`` cover what those tutorials use.
Arrays are numpy arrays (``.numpy()`` returns them as plain numpy).
"""

from __future__ import annotations

import types

import numpy as np

import te as _te
from runtime import build as _build
from schedules import create_schedule
from schedules import lower as _lower

te = types.ModuleType("tetune.compat.te", "tetune's te with TVM's create_schedule")
te.__dict__.update({k: v for k, v in vars(_te).items() if not k.startswith("_")})
te.create_schedule = create_schedule

tir = types.ModuleType("tetune.compat.tir", "the tir names TE tutorials use")
tir.const = _te.const
tir.Select = _te.if_then_else
tir.if_then_else = _te.if_then_else
tir.all = _te.all
tir.any = _te.any
tir.floordiv = tir.indexdiv = _te.floordiv
tir.floormod = tir.indexmod = _te.floormod
tir.Var = _te.var
for _name in ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "erf", "floor", "ceil", "abs",
              "power", "round"):
    setattr(tir, _name, getattr(_te, _name))


def lower(sch, args, name: str = "main", simple_mode: bool = False):
    """The loop-nest IR of a schedule (TVM's ``tvm.lower``)."""
    return _lower(sch, args, name=name, simple_mode=simple_mode)


def build(sch, args=None, target="llvm", name: str = "default_function"):
    """Compile a schedule; TVM's ``"llvm"`` target is tetune's numba ``"cpu"`` target."""
    target = getattr(target, "kind", None) and target.kind.name or target
    return _build(sch, args, target=target, name=name)


class _Kind:
    def __init__(self, name):
        self.name = name


class _Target:
    """``tvm.target.Target("llvm -mcpu=...")``: only the kind matters here."""

    def __init__(self, target="llvm", host=None):
        self.text = str(target)
        self.kind = _Kind(self.text.split()[0])
        self.host = host

    def __str__(self):
        return self.text


target = types.SimpleNamespace(Target=_Target)


class Device:
    """Where arrays live; tetune's CPU targets use host memory."""

    def __init__(self, kind="cpu", index=0):
        self.kind, self.index = str(kind), index

    def __repr__(self):
        return f"{self.kind}({self.index})"


def device(kind="cpu", index: int = 0) -> Device:
    return Device(getattr(getattr(kind, "kind", None), "name", kind), index)


def cpu(index: int = 0) -> Device:
    return Device("cpu", index)


class NDArray(np.ndarray):
    """A numpy array with TVM's ``.numpy()``."""

    def numpy(self):
        return np.asarray(self).copy()


def _array(data, dev=None):
    return np.ascontiguousarray(data).view(NDArray)


nd = types.SimpleNamespace(array=_array, NDArray=NDArray)


def _assert_allclose(actual, desired, rtol=1e-7, atol=0):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(desired), rtol=rtol, atol=atol)


testing = types.SimpleNamespace(assert_allclose=_assert_allclose)

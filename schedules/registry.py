"""Schedule templates and the dispatch of configs to them.

Two kinds of template share one registry:

* **User templates** (AutoTVM's ``@autotvm.template``): a function of plain arguments that
  calls ``get_config()``, declares knobs, and returns ``(schedule, tensors)``::

      @template("my_matmul")
      def my_matmul(n, m, k, dtype):
          cfg = get_config()
          ...
          return s, [A, B, C]

* **Operator schedules** of the operator library, registered per anchor tag and target with
  ``register_schedule("dense", "cpu")`` on a function ``(cfg, s, outs, anchor)`` that
  schedules an existing graph: ``schedule_for`` uses them, and their tuning tasks build the
  op from the workload its anchor stage carries (``op.attrs["workload"]``, a tuple
  ``(template_name, *args)`` of JSON-able values; tensors as ``("TENSOR", shape, dtype)``).

Which config a build uses is decided by the innermost ``DispatchContext``: the autotuner's
``apply_history_best`` (tuned configs from a log) or ``ApplyConfig`` (one given point, used
when measuring). Without one, templates run on a fresh ``ConfigSpace``, which answers every
knob with its default.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Callable

from .space import ConfigEntity, ConfigError, ConfigSpace

__all__ = [
    "ApplyConfig", "DispatchContext", "Template", "apply_config", "get_config",
    "get_template", "list_templates", "normalize_target", "register_schedule", "template",
    "workload_key",
]

_state = threading.local()


def _config_stack() -> list:
    if not hasattr(_state, "configs"):
        _state.configs = []
    return _state.configs


def get_config():
    """The config of the template now running: a ``ConfigSpace`` while knobs are collected
    (or when the template is called directly), a ``ConfigEntity`` when one point is built."""
    stack = _config_stack()
    return stack[-1] if stack else ConfigSpace()


@contextlib.contextmanager
def using_config(cfg):
    """Make ``cfg`` what ``get_config()`` returns inside the block."""
    stack = _config_stack()
    stack.append(cfg)
    try:
        yield cfg
    finally:
        stack.pop()


# ----------------------------------------------------------------------------- targets


@contextlib.contextmanager
def target_context(target):
    """Make ``target`` what ``current_target()`` returns inside the block: templates of
    library ops pick their target's op schedule from it (AutoTVM's ``Target.current()``)."""
    if not hasattr(_state, "targets"):
        _state.targets = []
    _state.targets.append(str(target))
    try:
        yield
    finally:
        _state.targets.pop()


def current_target() -> str:
    targets = getattr(_state, "targets", None)
    return targets[-1] if targets else "cpu"


def normalize_target(target) -> str:
    """The schedule family of a target string: ``"cpu"`` for "cpu", "llvm" and "python"
    (same loops, different code generators), ``"cuda"`` for "cuda"; flags are dropped."""
    kind = str(target).split()[0] if str(target).strip() else "cpu"
    return {"llvm": "cpu", "python": "cpu", "c": "cpu"}.get(kind, kind)


# ----------------------------------------------------------------------------- registry


class Template:
    """A registered template: ``func(*args)`` builds ``(schedule, tensors)`` reading knobs
    from ``get_config()``. ``constant_inputs``: positions of the tensors that a network
    binds to constants (a conv's or dense's weights); tuning measures the kernel with what
    it derives from them made once, as a network runs it (``schedules.prologue``)."""

    def __init__(self, name: str, func: Callable, constant_inputs=()):
        self.name = name
        self.func = func
        self.constant_inputs = tuple(int(k) for k in constant_inputs)

    def space(self, args) -> ConfigSpace:
        """Collect the knobs the template declares for ``args``."""
        space = ConfigSpace()
        with using_config(space):
            self.func(*args)
        return space

    def instantiate(self, args, config=None):
        """``(schedule, tensors)`` for ``args`` at ``config`` (a ``ConfigEntity``; None for
        the default point)."""
        with using_config(config if config is not None else ConfigSpace()):
            out = self.func(*args)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ConfigError(f"template {self.name!r} must return (schedule, tensors), "
                              f"got {type(out).__name__}")
        return out

    def __call__(self, *args):
        return self.func(*args)

    def __repr__(self):
        return f"Template({self.name!r})"


_TEMPLATES: dict[str, Template] = {}
_OP_SCHEDULES: dict[tuple[str, str], Callable] = {}


def template(name: str, constant_inputs=()):
    """Register a template function under ``name`` (AutoTVM's ``@autotvm.template``). The
    decorated function can still be called directly: under ``apply_history_best`` it builds
    the logged best config of workload ``(name, *args)``, otherwise its default point.
    ``constant_inputs``: see ``Template``."""

    def register(func):
        tmpl = Template(name, func, constant_inputs)
        _TEMPLATES[name] = tmpl

        @functools.wraps(func)
        def dispatched(*args):
            if _config_stack():  # a tuner or another template chose the config already
                return func(*args)
            answer = query_config(current_target(), (name, *args))
            if answer is None:
                return tmpl.instantiate(args)
            return tmpl.instantiate(args, resolve_config(tmpl.space(args), answer))

        return dispatched

    return register


def get_template(name: str) -> Template:
    try:
        return _TEMPLATES[name]
    except KeyError:
        known = ", ".join(sorted(_TEMPLATES)) or "none"
        raise ConfigError(f"no template named {name!r} (registered: {known})") from None


def list_templates() -> list[str]:
    return sorted(_TEMPLATES)


def register_schedule(anchor: str, target: str = "cpu"):
    """Register ``func(cfg, s, outs, anchor_op)`` as the schedule of the op whose anchor tag
    is ``"anchor:<anchor>"`` on ``target``; ``schedule_for`` calls it."""

    def register(func):
        _OP_SCHEDULES[(anchor, normalize_target(target))] = func
        return func

    return register


def op_schedule(anchor: str, target: str):
    return _OP_SCHEDULES.get((anchor, normalize_target(target)))


# ----------------------------------------------------------------------------- dispatch


def workload_key(workload) -> str:
    """The canonical string of a workload tuple: the same for equal shapes/dtypes/attrs."""
    return json.dumps(_jsonable(workload), separators=(",", ":"))


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


class DispatchContext:
    """Where builds look up the config of a workload. Contexts nest (``with``); the
    innermost answers. Subclasses implement ``query``; None means "no config, use the
    default"."""

    def query(self, target: str, workload) -> ConfigEntity | dict | None:
        raise NotImplementedError

    def __enter__(self):
        _dispatch_stack().append(self)
        return self

    def __exit__(self, *exc):
        _dispatch_stack().pop()
        return False


def _dispatch_stack() -> list:
    if not hasattr(_state, "dispatch"):
        _state.dispatch = []
    return _state.dispatch


def current_dispatch() -> DispatchContext | None:
    stack = _dispatch_stack()
    return stack[-1] if stack else None


def query_config(target, workload):
    """The config the innermost dispatch context holds for ``workload``, else None. The
    answer may be a ``ConfigEntity`` or a dict of knob values (from a log); callers resolve
    the latter against the space with ``resolve_config``."""
    ctx = current_dispatch()
    if ctx is None or workload is None:
        return None
    return ctx.query(normalize_target(target), workload)


def resolve_config(space: ConfigSpace, answer) -> ConfigEntity:
    """A ``ConfigEntity`` of ``space`` for a dispatch answer (entity or knob-value dict)."""
    if isinstance(answer, ConfigEntity):
        return answer
    return space.from_json(answer)


class ApplyConfig(DispatchContext):
    """Answer every query with one config (the measurer builds a candidate this way)."""

    def __init__(self, config):
        self.config = config

    def query(self, target, workload):
        return self.config


def apply_config(config) -> ApplyConfig:
    return ApplyConfig(config)

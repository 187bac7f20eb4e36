"""Forked worker processes that run one function call at a time under a time limit.

A candidate schedule may segfault the process that builds or runs it, call ``os._exit`` or
never finish, so every build and every run happens in a child process. Children are forked
(not spawned) so that templates defined in a user's script or notebook cell, which exist
only in the parent's memory, exist in the children too. When forking is unsafe (the parent
already ran parallel kernels on GNU OpenMP, which a forked child cannot use) ``use_spawn()``
switches to spawned children: they import the templates' modules afresh. A worker that
dies or overruns its limit is killed and started again on its next call; the parent only
ever sees an ``Outcome``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing as mp
import os
import signal
import sys
import time
import weakref
from dataclasses import dataclass
from multiprocessing.connection import wait

__all__ = ["Outcome", "Worker", "WorkerPool"]

_context = mp.get_context("fork")


def use_spawn() -> None:
    """Start workers from now on as fresh interpreters instead of forks."""
    global _context
    _context = mp.get_context("spawn")


def spawning() -> bool:
    return _context.get_start_method() == "spawn"


@contextlib.contextmanager
def _main_hidden():
    """Keep a spawned child from re-running the user's ``__main__`` (a script without an
    ``if __name__ == "__main__"`` guard would start tuning again in every worker): the
    child imports only what the calls it serves need."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__}
    main.__spec__ = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.update(saved)

# Parent ends of every live worker's pipe. A new child closes its copies: a child that kept
# another worker's parent end open would keep that worker from ever seeing EOF (and
# exiting) when the parent dies.
_PARENT_ENDS: weakref.WeakSet = weakref.WeakSet()

# A worker is replaced after this many calls: numba keeps every kernel it compiled or loaded
# in memory, and a long tuning run would otherwise grow its workers without bound.
MAX_CALLS_PER_WORKER = 100


@dataclass(frozen=True)
class Outcome:
    """How one call ended. ``kind``: "ok" (``value`` holds the return value), "raised"
    (``error`` is ``(exception type name, message, error_no attribute or None)``),
    "timeout" or "crashed" (``error[1]`` says how the process died). ``seconds``: wall time
    of the call, measured in the worker for "ok"/"raised" and by the parent otherwise."""

    kind: str
    value: object = None
    error: tuple = ("", "", None)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


def _serve(conn, inherited) -> None:
    for other in inherited:
        other.close()
    # Ctrl-C reaches the whole process group; the parent decides what to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A crash is reported as a value by the parent; a C traceback on the terminal (pytest
    # and some notebooks enable faulthandler) would only be noise in the tuner's output.
    faulthandler.disable()
    while True:
        try:
            func, args = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        start = time.perf_counter()
        try:
            reply = ("ok", func(*args))
        except BaseException as exc:  # SystemExit from a template is a failure too
            reply = ("raised", (type(exc).__name__, str(exc), getattr(exc, "error_no", None)))
        seconds = time.perf_counter() - start
        try:
            conn.send((reply, seconds))
        except Exception as exc:  # an unpicklable return value
            conn.send((("raised", (type(exc).__name__, f"cannot send the result: {exc}",
                                   None)), seconds))


class Worker:
    """One child process; ``call`` runs ``func(*args)`` there (``func`` must be importable
    by name: a module-level function)."""

    def __init__(self):
        self._proc = None
        self._conn = None
        self._calls = 0
        self._started_at = 0.0
        self.deadline = float("inf")

    @property
    def conn(self):
        return self._conn

    def _start(self) -> None:
        parent_end, child_end = _context.Pipe()
        inherited = [c for c in list(_PARENT_ENDS) if not c.closed] + [parent_end]
        proc = _context.Process(target=_serve, args=(child_end, inherited), daemon=True,
                                name="tetune-measure")
        with _main_hidden() if spawning() else contextlib.nullcontext():
            proc.start()
        child_end.close()  # the child's end lives in the child only, so its death is EOF here
        _PARENT_ENDS.add(parent_end)
        self._proc, self._conn, self._calls = proc, parent_end, 0

    def submit(self, func, args, timeout: float) -> None:
        """Send a call; collect it with ``collect`` once ``conn`` is readable (or expire it
        with ``expire`` after ``deadline``)."""
        # A call still outstanding (its caller was interrupted by Ctrl-C) would answer in
        # place of this one: such a worker is replaced too.
        if (self._proc is None or not self._proc.is_alive() or self.deadline != float("inf")
                or self._calls >= MAX_CALLS_PER_WORKER):
            self.close()
            self._start()
        self._calls += 1
        self._started_at = time.perf_counter()
        self.deadline = self._started_at + timeout
        self._conn.send((func, args))

    def collect(self) -> Outcome:
        """The outcome of the submitted call; its conn must be readable."""
        self.deadline = float("inf")
        try:
            (kind, payload), seconds = self._conn.recv()
        except (EOFError, OSError):
            return Outcome("crashed", error=("WorkerCrash", self._death(), None),
                           seconds=time.perf_counter() - self._started_at)
        if kind == "ok":
            return Outcome("ok", value=payload, seconds=seconds)
        return Outcome("raised", error=tuple(payload), seconds=seconds)

    def expire(self) -> Outcome:
        """Give up on the submitted call: kill the worker."""
        self.deadline = float("inf")
        seconds = time.perf_counter() - self._started_at
        self.close()
        return Outcome("timeout", error=("Timeout", f"no answer after {seconds:.1f} s", None),
                       seconds=seconds)

    def call(self, func, args, timeout: float) -> Outcome:
        """Run ``func(*args)`` in the worker and wait for it, at most ``timeout`` seconds."""
        self.submit(func, args, timeout)
        if wait([self._conn], timeout=max(self.deadline - time.perf_counter(), 0)):
            return self.collect()
        return self.expire()

    def _death(self) -> str:
        proc = self._proc
        proc.join(timeout=5)
        code = proc.exitcode
        self.close()
        if code is None:
            return "the worker closed its pipe without exiting"
        if code < 0:
            try:
                return f"the worker was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"the worker was killed by signal {-code}"
        return f"the worker exited with status {code}"

    def close(self) -> None:
        """Stop the process (if any); the next ``submit`` starts a fresh one."""
        self.deadline = float("inf")
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.is_alive():
                proc.kill()
            proc.join(timeout=5)


class WorkerPool:
    """``n`` workers for calls that may run side by side (builds)."""

    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"a worker pool needs at least one worker, not {n}")
        self.workers = [Worker() for _ in range(n)]

    def map(self, func, arg_list: list, timeout: float) -> list[Outcome]:
        """``func(*args)`` for each ``args``, at most ``n`` at a time, each limited to
        ``timeout`` seconds; outcomes in the order of ``arg_list``."""
        pending = list(enumerate(arg_list))[::-1]
        outcomes: list = [None] * len(arg_list)
        busy: dict = {}  # worker -> index of its call
        try:
            while pending or busy:
                for worker in self.workers:
                    if pending and worker not in busy:
                        index, args = pending.pop()
                        worker.submit(func, args, timeout)
                        busy[worker] = index
                soonest = min(w.deadline for w in busy)
                ready = wait([w.conn for w in busy],
                             timeout=max(soonest - time.perf_counter(), 0))
                now = time.perf_counter()
                for worker in list(busy):
                    if worker.conn in ready:
                        outcomes[busy.pop(worker)] = worker.collect()
                    elif worker.deadline <= now:
                        outcomes[busy.pop(worker)] = worker.expire()
        finally:
            for worker in busy:  # interrupted (Ctrl-C): stop what is still running
                worker.close()
        return outcomes

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask), which is what parallel builds get."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1

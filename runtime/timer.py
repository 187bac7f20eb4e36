"""Kernel timing in the style of TVM's ``time_evaluator``.

One untimed warm-up call (it triggers numba's lazy compile or cache load), then
``repeat`` measurements, each the mean time of ``number`` back-to-back calls.
Report the median of the repeats and compare only against baselines measured
the same way in the same run; see ``busy_cores`` for a check of other load.
"""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterator

# Indirection so tests can substitute a deterministic clock.
_clock_ns: Callable[[], int] = time.perf_counter_ns


@dataclass(frozen=True)
class TimingResult:
    """Per-repeat mean seconds per call, with summary statistics."""

    results: tuple[float, ...]
    mean: float
    median: float
    std: float  # population standard deviation of the repeats
    min: float
    max: float
    number: int  # calls per repeat (the final value if min_repeat_ms grew it)

    @classmethod
    def from_results(cls, results, number: int) -> "TimingResult":
        """Build a TimingResult from per-repeat mean seconds."""
        r = tuple(float(x) for x in results)
        return cls(r, statistics.fmean(r), statistics.median(r), statistics.pstdev(r),
                   min(r), max(r), number)

    def __str__(self) -> str:
        scale, unit = _unit(self.median)
        return (f"median {self.median * scale:.4g} {unit} (min {self.min * scale:.4g}, "
                f"max {self.max * scale:.4g}, std {self.std * scale:.2g}) "
                f"over {len(self.results)} repeats x {self.number} calls")


def _unit(seconds: float) -> tuple[float, str]:
    for scale, unit in ((1.0, "s"), (1e3, "ms"), (1e6, "us")):
        if seconds >= 1.0 / scale:
            return scale, unit
    return 1e9, "ns"


def time_evaluator(func: Callable, number: int = 1, repeat: int = 3, min_repeat_ms: float = 0,
                   cooldown_interval_ms: float = 0,
                   flush_cache: bool = False) -> Callable[..., TimingResult]:
    """Return a callable that times ``func(*args)`` and returns a TimingResult."""
    if number < 1 or repeat < 1:
        raise ValueError("number and repeat must be >= 1")

    def evaluator(*args) -> TimingResult:
        # Warm-up: compile, cache load and first-touch page faults stay out of the numbers.
        func(*args)
        n = number
        results = []
        # A collection in the middle of a repeat would be charged to the
        # kernel; kernels allocate little, so postponing it is harmless.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for i in range(repeat):
                if i > 0 and cooldown_interval_ms > 0:
                    time.sleep(cooldown_interval_ms / 1e3)
                if flush_cache:
                    # Once per repeat, as TVM's cache-flush preprocessor runs
                    # once per repeat: with number=1 every call starts cold.
                    flush_cpu_cache()
                elapsed_ns, n = _timed_repeat(func, args, n, min_repeat_ms)
                results.append(elapsed_ns / 1e9 / n)
        finally:
            if gc_was_enabled:
                gc.enable()
        return TimingResult.from_results(results, n)

    return evaluator


def _timed_repeat(func, args, n: int, min_repeat_ms: float) -> tuple[int, int]:
    # TVM's rule: if a repeat was shorter than min_repeat_ms, grow number to
    # max(min_repeat_ms / per_call + 1, 1.618 * number) and measure the repeat
    # again.  The grown number carries over to later repeats.
    zero_times = 0
    while True:
        start = _clock_ns()
        for _ in range(n):
            func(*args)
        elapsed = _clock_ns() - start
        if elapsed / 1e6 >= min_repeat_ms:
            return elapsed, n
        if elapsed <= 0:
            # Clock too coarse to see the calls: double, but give up after a
            # few tries as TVM does (limit_zero_time_iterations).
            zero_times += 1
            if zero_times > 10:
                return elapsed, n
            n *= 2
        else:
            n = int(max(min_repeat_ms * 1e6 / (elapsed / n) + 1, n * 1.618))


# Size of the buffer streamed by flush_cpu_cache; None means "decide from the
# largest CPU cache" (twice its size, at least 64 MiB).
FLUSH_BYTES: int | None = None
_flush_buffer = None


def flush_cpu_cache() -> None:
    """Evict the CPU caches by reading and writing a buffer larger than the last-level cache."""
    global _flush_buffer
    import numpy as np

    size = FLUSH_BYTES or max(64 << 20, 2 * _largest_cache_bytes())
    if _flush_buffer is None or _flush_buffer.nbytes != size:
        _flush_buffer = np.zeros(size // 8, dtype=np.uint64)
    # Read-modify-write with ordinary stores.  fill()/memset would use
    # non-temporal stores for big buffers, which bypass the cache and evict
    # nothing.  Only this core's private caches and the shared L3 are flushed;
    # other cores' L1/L2 keep their lines.
    _flush_buffer += 1


def _largest_cache_bytes() -> int:
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in os.listdir(base):
            if not entry.startswith("index"):  # skip "uevent" etc.
                continue
            with open(os.path.join(base, entry, "size")) as f:
                text = f.read().strip()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            best = max(best, int(text.rstrip("KMG")) * mult)
    except (OSError, ValueError):
        pass
    return best


def get_num_threads() -> int:
    """Return numba's thread count for parallel kernels launched from this thread."""
    import numba

    return numba.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set numba's thread count (1..NUMBA_NUM_THREADS) for kernels launched from this thread."""
    import numba

    numba.set_num_threads(n)


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the body with numba's thread count fixed at n, restoring the previous count after."""
    old = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(old)


def busy_cores(interval: float = 0.1) -> float:
    """Advisory: fraction (0..1) of our usable CPUs that other processes kept busy."""
    # Sample per-CPU counters in /proc/stat twice and subtract our own CPU
    # time.  Only the CPUs this process may run on count, since those are the
    # ones a parallel kernel competes for.  It is a snapshot: load that starts
    # a moment later is missed, so use it to warn, not to correct numbers.
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = None
    try:
        before, self_before = _read_proc_stat(cpus), _self_ticks()
        time.sleep(interval)
        after, self_after = _read_proc_stat(cpus), _self_ticks()
    except (OSError, ValueError):
        # No /proc (macOS): the 1-minute load average is all there is.
        try:
            return min(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
        except OSError:
            return 0.0
    total = after[0] - before[0]
    busy = (after[1] - before[1]) - (self_after - self_before)
    if total <= 0:
        return 0.0
    return min(1.0, max(0.0, busy / total))


def _read_proc_stat(cpus) -> tuple[int, int]:
    # Returns (total, busy) jiffies summed over the selected CPUs.  Fields:
    # user nice system idle iowait irq softirq steal [guest guest_nice]; guest
    # time is already inside user, and steal counts as busy (a neighbour VM).
    total = busy = 0
    wanted = None if cpus is None else {f"cpu{c}" for c in cpus}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            name, *fields = line.split()
            if wanted is not None and name not in wanted:
                continue
            v = [int(x) for x in fields[:8]]
            total += sum(v)
            busy += sum(v) - v[3] - v[4]
    if total == 0:
        raise ValueError("no cpu lines in /proc/stat")
    return total, busy


def _self_ticks() -> int:
    # utime + stime of this process in clock ticks, the unit of /proc/stat.
    with open("/proc/self/stat") as f:
        # The command name may contain spaces; fields resume after the last ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])

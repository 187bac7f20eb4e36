"""Tests for runtime.timer; a fake clock makes them exact, and no real timing is asserted."""

import dataclasses
import gc

import numpy as np
import pytest

from runtime import timer


class FakeClock:
    """A clock that only moves when the fake kernel runs."""

    def __init__(self):
        self.now = 0
        self.calls = 0

    def __call__(self):
        return self.now

    def kernel(self, cost_ns):
        def run(*args):
            self.calls += 1
            self.now += cost_ns(self.calls) if callable(cost_ns) else cost_ns
        return run


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(timer, "_clock_ns", c)
    return c


def test_fixed_number(clock):
    res = timer.time_evaluator(clock.kernel(250_000), number=4, repeat=5)()
    assert clock.calls == 1 + 5 * 4  # one warm-up call
    assert res.results == (250e-6,) * 5
    assert res.number == 4
    assert res.median == res.mean == res.min == res.max == 250e-6 and res.std == 0


def test_passes_args_through(clock):
    seen = []
    res = timer.time_evaluator(lambda a, b: seen.append((a, b)), number=2, repeat=2)(1, "x")
    assert seen == [(1, "x")] * 5 and len(res.results) == 2


def test_min_repeat_ms_grows_number_like_tvm(clock):
    # 0.1 ms per call, 1 ms wanted: number goes 1 -> max(1/0.1 + 1, 1.618) = 11 and stays there.
    res = timer.time_evaluator(clock.kernel(100_000), repeat=3, min_repeat_ms=1)()
    assert res.number == 11
    assert clock.calls == 1 + 1 + 3 * 11  # warm-up, the too-short first try, three repeats
    assert res.results == pytest.approx((1e-4,) * 3)


def test_min_repeat_ms_already_met_keeps_number(clock):
    res = timer.time_evaluator(clock.kernel(2_000_000), number=3, repeat=2, min_repeat_ms=1)()
    assert res.number == 3 and clock.calls == 1 + 2 * 3


def test_frozen_clock_terminates(clock):
    res = timer.time_evaluator(clock.kernel(0), repeat=2, min_repeat_ms=1)()
    assert res.results == (0.0, 0.0)


def test_statistics_and_str():
    res = timer.TimingResult.from_results([1.3e-3, 1.2e-3, 1.234e-3], number=100)
    assert (res.min, res.median, res.max) == (1.2e-3, 1.234e-3, 1.3e-3)
    assert res.mean == pytest.approx(np.mean(res.results))
    assert res.std == pytest.approx(np.std(res.results))
    assert str(res) == "median 1.234 ms (min 1.2, max 1.3, std 0.042) over 3 repeats x 100 calls"
    assert str(timer.TimingResult.from_results([2e-6], 1)).startswith("median 2 us")
    assert str(timer.TimingResult.from_results([3e-9], 1)).startswith("median 3 ns")
    assert str(timer.TimingResult.from_results([1.5], 1)).startswith("median 1.5 s")
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.mean = 0


def test_cooldown_sleeps_between_repeats(clock, monkeypatch):
    sleeps = []
    monkeypatch.setattr(timer.time, "sleep", sleeps.append)
    timer.time_evaluator(clock.kernel(1000), repeat=4, cooldown_interval_ms=20)()
    assert sleeps == [0.02] * 3


def test_flush_cache_once_per_repeat(clock, monkeypatch):
    monkeypatch.setattr(timer, "FLUSH_BYTES", 1 << 20)  # keep the test fast
    monkeypatch.setattr(timer, "_flush_buffer", None)
    flushes = []
    real_flush = timer.flush_cpu_cache
    monkeypatch.setattr(timer, "flush_cpu_cache", lambda: (flushes.append(1), real_flush()))
    timer.time_evaluator(clock.kernel(1000), number=2, repeat=3, flush_cache=True)()
    assert len(flushes) == 3
    assert timer._flush_buffer.nbytes == 1 << 20 and (timer._flush_buffer == 3).all()


def test_gc_state_restored_even_on_error(clock):
    assert gc.isenabled()

    def failing(*args):
        if clock.calls:
            raise RuntimeError("kernel failed")
        clock.calls += 1

    with pytest.raises(RuntimeError):
        timer.time_evaluator(failing)()
    assert gc.isenabled()


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        timer.time_evaluator(print, number=0)
    with pytest.raises(ValueError):
        timer.time_evaluator(print, repeat=0)


def test_real_clock_smoke():
    a = np.ones(1000)
    res = timer.time_evaluator(np.sum, number=3, repeat=2)(a)
    assert len(res.results) == 2 and all(r > 0 for r in res.results)


def test_num_threads_context_restores():
    before = timer.get_num_threads()
    with timer.num_threads(1):
        assert timer.get_num_threads() == 1
    assert timer.get_num_threads() == before
    with pytest.raises(ValueError):
        timer.set_num_threads(0)


def test_busy_cores_is_a_fraction():
    assert 0.0 <= timer.busy_cores(interval=0.02) <= 1.0


def test_busy_cores_falls_back_to_loadavg(monkeypatch):
    def no_proc(cpus):
        raise OSError("no /proc")
    monkeypatch.setattr(timer, "_read_proc_stat", no_proc)
    assert 0.0 <= timer.busy_cores(interval=0) <= 1.0

"""JSON-lines tuning logs: round trips, concurrent appends, damaged lines, pick_best."""

import json
import multiprocessing as mp
import os
import signal
import time
import warnings

import pytest

import te
from autotune import (
    MeasureErrorNo,
    MeasureInput,
    MeasureResult,
    create_task,
    log_to_file,
    plot_curve,
    progress_bar,
    template,
)
from autotune.record import (
    LogWarning,
    append_records,
    decode,
    encode,
    load_raw,
    load_records,
    machine_info,
    pick_best,
)
from schedules import create_schedule, get_config


@template("test_record_scale")
def scale(n, dtype):
    cfg = get_config()
    cfg.define_split("tile", n, num_outputs=2)
    cfg.define_knob("unroll", [0, 1])
    A = te.placeholder((n,), name="A", dtype=dtype)
    B = te.compute((n,), lambda i: A[i] * 3, name="B")
    s = create_schedule(B.op)
    cfg["tile"].apply(s, B, B.op.axis[0])
    cfg.add_flop(n)
    return s, [A, B]


def pair(task, index, cost=1e-3, error_no=MeasureErrorNo.NO_ERROR):
    costs = (cost, cost * 1.1) if error_no == MeasureErrorNo.NO_ERROR else ()
    res = MeasureResult(costs, error_no, all_cost=0.5, timestamp=1.7e9,
                        error_msg="" if costs else "boom", build_cost=0.25)
    return MeasureInput(task, task.config_space.get(index)), res


@pytest.fixture
def task():
    return create_task("test_record_scale", (16, "float32"), target="python")


def test_a_record_round_trips(task):
    inp, res = pair(task, 7)
    line = encode(inp, res)
    record = json.loads(line)
    assert record["task"] == {"name": "test_record_scale", "args": [16, "float32"],
                              "target": "python", "flop": 16}
    assert record["workload_key"] == task.workload_key
    assert record["config"] == {"index": 7, "knobs": inp.config.to_json()}
    assert record["result"]["error_no"] == "NO_ERROR"
    assert record["machine"]["cpu"] == machine_info()["cpu"]
    assert record["version"]["log_format"] == 1
    inp2, res2 = decode(line)
    assert inp2.config == inp.config and inp2.config.index == 7
    assert inp2.task.workload == task.workload and inp2.task.target == "python"
    assert res2 == res


def test_an_error_round_trips_by_name(task):
    inp, res = pair(task, 0, error_no=MeasureErrorNo.RUN_TIMEOUT)
    _, res2 = decode(encode(inp, res))
    assert res2.error_no == MeasureErrorNo.RUN_TIMEOUT and res2.costs == ()
    assert res2.error_msg == "boom"


def _append_many(path, who, count):
    task = create_task("test_record_scale", (16, "float32"), target="python")
    for i in range(count):
        append_records(path, [pair(task, i % len(task.config_space), cost=who + i * 1e-6)])


def test_two_processes_append_whole_lines(tmp_path):
    path = tmp_path / "log.jsonl"
    procs = [mp.get_context("fork").Process(target=_append_many, args=(path, who, 150))
             for who in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    records = list(load_raw(path))  # would warn (and fail under -W error) on a broken line
    assert len(records) == 300
    assert sorted(round(r["result"]["costs"][0]) for r in records) == [1] * 150 + [2] * 150


def _append_forever(path):
    task = create_task("test_record_scale", (16, "float32"), target="python")
    i = 0
    while True:
        append_records(path, [pair(task, i % len(task.config_space))])
        i += 1


def test_kill_9_of_a_writer_leaves_every_finished_record(tmp_path, task):
    path = tmp_path / "log.jsonl"
    proc = mp.get_context("fork").Process(target=_append_forever, args=(path,))
    proc.start()
    deadline = time.time() + 30
    while time.time() < deadline and (not path.exists() or path.stat().st_size < 20000):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    lines = path.read_text().splitlines()
    assert len(lines) > 10
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(load_raw(path))
    # Each record is one write(); only a write that the kill cut short (the last line) may
    # be broken.
    assert len(records) >= len(lines) - 1
    assert all(f"log.jsonl:{len(lines)}: " in str(w.message) for w in caught)
    append_records(path, [pair(task, 1)])  # an append after the kill is whole
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert list(load_raw(path))[-1]["config"]["index"] == 1


def test_a_truncated_or_malformed_line_is_skipped_naming_file_and_line(tmp_path, task):
    path = tmp_path / "log.jsonl"
    append_records(path, [pair(task, 1), pair(task, 2)])
    good = path.read_text()
    path.write_text(good + '{"task": {"name": "x", "args": []}, "config": 3}\n'
                    + good.splitlines()[0][:40])  # a writer cut off mid-line
    with pytest.warns(LogWarning) as caught:
        records = list(load_records(path))
    assert [inp.config.index for inp, _ in records] == [1, 2]
    messages = [str(w.message) for w in caught]
    assert any(f"{path}:3: skipped: no 'config' object" in m for m in messages)
    assert any(f"{path}:4: skipped: not JSON" in m for m in messages)
    append_records(path, [pair(task, 3)])  # starts on a new line: only line 4 is lost
    with pytest.warns(LogWarning):
        assert [inp.config.index for inp, _ in load_records(path)] == [1, 2, 3]


def test_records_of_unknown_templates_are_skipped_with_one_warning(tmp_path, task):
    path = tmp_path / "log.jsonl"
    line = json.loads(encode(*pair(task, 1)))
    line["task"]["name"] = "no_such_template"
    path.write_text((json.dumps(line) + "\n") * 3 + encode(*pair(task, 2)) + "\n")
    with pytest.warns(LogWarning) as caught:
        records = list(load_records(path))
    assert len(records) == 1
    assert [str(w.message) for w in caught] == [
        (f"{path}:1: records of template 'no_such_template' skipped: no such template is "
         "registered (import the module that defines it)")]
    assert len(list(load_raw(path))) == 4  # raw reading needs no template


def test_a_record_that_no_longer_fits_its_template_is_skipped(tmp_path, task):
    path = tmp_path / "log.jsonl"
    line = json.loads(encode(*pair(task, 1)))
    line["config"]["knobs"]["tile"] = [-1, 3]  # 3 does not divide 16
    path.write_text(json.dumps(line) + "\n")
    with pytest.warns(LogWarning, match=r"log.jsonl:1: skipped: ConfigError: .*tile"):
        assert list(load_records(path)) == []


def test_records_are_ranked_by_their_fastest_repeat(tmp_path, task):
    """A repeat slowed by another process must not hide a fast config (measured: a default
    logged as 0.208, 0.210, 0.110 ms lost on the mean to a config that runs 1.3x slower)."""
    disturbed = MeasureResult((0.208e-3, 0.210e-3, 0.110e-3), MeasureErrorNo.NO_ERROR, 0.5, 1.7e9)
    steady = MeasureResult((0.137e-3, 0.136e-3, 0.143e-3), MeasureErrorNo.NO_ERROR, 0.5, 1.7e9)
    assert disturbed.cost < steady.cost and disturbed.mean_cost > steady.mean_cost
    log, best = tmp_path / "log.jsonl", tmp_path / "best.jsonl"
    append_records(log, [(MeasureInput(task, task.config_space.get(1)), steady),
                         (MeasureInput(task, task.config_space.get(2)), disturbed)])
    pick_best(log, best)
    assert [r["config"]["index"] for r in load_raw(best)] == [2]


def test_pick_best_keeps_the_fastest_valid_record_per_workload_and_target(tmp_path, task):
    other = create_task("test_record_scale", (8, "float32"), target="python")
    on_cpu = create_task("test_record_scale", (16, "float32"), target="cpu")
    log, best = tmp_path / "log.jsonl", tmp_path / "best.jsonl"
    append_records(log, [
        pair(task, 1, cost=3e-3), pair(task, 2, cost=1e-3),
        pair(task, 3, error_no=MeasureErrorNo.WRONG_ANSWER),
        pair(other, 0, cost=5e-3), pair(task, 4, cost=2e-3), pair(on_cpu, 5, cost=9e-3),
        pair(other, 1, error_no=MeasureErrorNo.COMPILE_ERROR),
    ])
    assert pick_best(log, best) == 3
    kept = [(r["task"]["args"][0], r["task"]["target"], r["config"]["index"])
            for r in load_raw(best)]
    assert kept == [(16, "python", 2), (8, "python", 0), (16, "cpu", 5)]


# ----------------------------------------------------------------------------- callbacks


class FakeTuner:
    """What callbacks may rely on: task, n_trial, trials_done, best_flops, resume."""

    def __init__(self, task, n_trial=10):
        self.task, self.n_trial, self.trials_done, self.best_flops = task, n_trial, 0, 0.0
        self.resumed = []

    def resume(self, inputs, results):
        self.resumed += [(inp.config.index, res.error_no) for inp, res in zip(inputs, results)]
        self.trials_done += len(inputs)
        return len(inputs)


def test_log_to_file_resumes_from_the_records_of_the_same_task(tmp_path, task):
    path = tmp_path / "log.jsonl"
    other_shape = create_task("test_record_scale", (8, "float32"), target="python")
    other_target = create_task("test_record_scale", (16, "float32"), target="cpu")
    append_records(path, [pair(task, 1), pair(other_shape, 2), pair(other_target, 3),
                          pair(task, 4, error_no=MeasureErrorNo.RUN_TIMEOUT)])
    tuner = FakeTuner(task)
    cb = log_to_file(path)
    cb.on_start(tuner)
    assert tuner.resumed == [(1, MeasureErrorNo.NO_ERROR), (4, MeasureErrorNo.RUN_TIMEOUT)]
    assert cb.resumed == 2
    cb(tuner, *zip(pair(task, 5)))
    assert [r["config"]["index"] for r in load_raw(path)] == [1, 2, 3, 4, 5]
    log_to_file(tmp_path / "new.jsonl").on_start(FakeTuner(task))  # no file yet: fine


def test_a_tuner_does_not_measure_again_what_its_log_holds(tmp_path, task):
    tuner_mod = pytest.importorskip("autotune.tuner")
    measured = []

    def measure(inputs):
        measured.extend(inp.config.index for inp in inputs)
        return [MeasureResult((1e-3 * (1 + inp.config.index),), MeasureErrorNo.NO_ERROR, 0.1,
                              time.time()) for inp in inputs]

    path = tmp_path / "log.jsonl"
    tuner_mod.RandomTuner(task, seed=1).tune(4, measure, callbacks=[log_to_file(path)])
    first = list(measured)
    measured.clear()
    tuner_mod.RandomTuner(task, seed=1).tune(7, measure, callbacks=[log_to_file(path)])
    assert len(first) == 4 and len(measured) == 3
    assert not set(first) & set(measured)
    assert len(list(load_raw(path))) == 7


def test_progress_bar_shows_trials_best_and_errors(capsys, task):
    tuner = FakeTuner(task, n_trial=3)
    bar = progress_bar()
    bar.on_start(tuner)
    batch = [pair(task, 1, cost=1e-6), pair(task, 2, error_no=MeasureErrorNo.WRONG_ANSWER)]
    tuner.trials_done += 2
    bar(tuner, [p[0] for p in batch], [p[1] for p in batch])
    bar.on_end(tuner)
    err = capsys.readouterr().err
    assert "2/3" in err and "best 0.02 GFLOP/s, 1 errors" in err  # 16 flop / 1 us


def test_plot_curve_draws_the_best_so_far(tmp_path, task):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    path = tmp_path / "log.jsonl"
    append_records(path, [pair(task, 1, cost=2e-6), pair(task, 2, error_no=MeasureErrorNo.
                                                         COMPILE_ERROR),
                          pair(task, 3, cost=4e-6), pair(task, 4, cost=1e-6)])
    ax = plot_curve(path, label="random")
    gflops = list(ax.lines[0].get_ydata())
    # ranked and drawn by the fastest repeat (pair() times each config at cost, 1.1 cost)
    assert gflops == pytest.approx([16 / 2e-6 / 1e9] * 3 + [16 / 1e-6 / 1e9])
    assert ax.get_legend().get_texts()[0].get_text() == "random"
    ax.figure.savefig(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000

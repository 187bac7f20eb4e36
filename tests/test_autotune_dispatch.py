"""apply_history_best: schedule_for picks the best logged config of a workload; foreign and
missing records warn."""

import json

import pytest

import te
from autotune import MeasureErrorNo, MeasureInput, MeasureResult, apply_history_best, create_task
from autotune.dispatch import DispatchWarning, default_logs
from autotune.record import append_records, encode
from schedules import register_schedule, schedule_for
from schedules.library import register_op
from te.ops import tags
from te.ops._util import workload

seen = []  # the split each call of the op schedule applied


def scale(A):
    return te.compute(A.shape, lambda i: A[i] * 3.0, name="B", tag=tags.anchor("test_disp"),
                      attrs={"workload": workload("test_disp", A)})


register_op("test_disp", scale)


@register_schedule("test_disp", "cpu")
def schedule_scale(cfg, s, outs, anchor):
    cfg.define_split("tile", anchor.axis[0], num_outputs=2)
    seen.append(cfg["tile"].size)
    cfg["tile"].apply(s, anchor, anchor.axis[0])


def task_of(n, target="cpu"):
    return create_task("test_disp", (("TENSOR", (n,), "float32"),), target=target)


def record(task, tile, cost, error_no=MeasureErrorNo.NO_ERROR, **changes):
    config = task.config_space.from_json({"tile": [-1, tile]})
    res = MeasureResult((cost,) if error_no == MeasureErrorNo.NO_ERROR else (), error_no, 1.0,
                        1.7e9)
    rec = json.loads(encode(MeasureInput(task, config), res))
    for section, fields in changes.items():
        rec[section].update(fields)
    return rec


def split_chosen(n, context):
    seen.clear()
    A = te.placeholder((n,), name="A")
    with context:
        schedule_for(scale(A), target="cpu")
    return seen[-1]


def test_schedule_for_uses_the_best_valid_record_of_the_workload(tmp_path):
    t16 = task_of(16)
    log = tmp_path / "log.jsonl"
    append_records(log, [(MeasureInput(t16, t16.config_space.from_json({"tile": [-1, 4]})),
                          MeasureResult((2e-3,), MeasureErrorNo.NO_ERROR, 1.0, 1.7e9))])
    records = [record(t16, 8, 1e-3), record(t16, 2, 1e-4, MeasureErrorNo.WRONG_ANSWER),
               record(task_of(32), 16, 1e-5)]
    ctx = apply_history_best(log)
    ctx.load(records)
    assert split_chosen(16, ctx) == (-1, 8)
    assert split_chosen(32, ctx) == (-1, 16)
    assert ctx.query("cpu", None) is None


def test_records_of_the_python_target_serve_cpu_builds():
    t = task_of(16, target="python")
    assert split_chosen(16, apply_history_best([record(t, 4, 1e-3)])) == (-1, 4)


def test_an_untuned_workload_gets_the_default_with_one_warning():
    ctx = apply_history_best([record(task_of(16), 8, 1e-3)])
    with pytest.warns(DispatchWarning, match=r'no tuned config for workload .*\[64\].* on '
                                             r"target 'cpu'") as caught:
        default = split_chosen(64, ctx)
        split_chosen(64, ctx)
    assert len(caught) == 1
    assert default == task_of(64).config_space["tile"].size


@pytest.mark.parametrize("changes, words", [
    ({"machine": {"cpu": "znver9"}}, "from another CPU (znver9"),
    ({"machine": {"features": "sse2"}}, "with other CPU features"),
    ({"version": {"tetune": "0.0.1"}}, "from tetune 0.0.1"),
])
def test_foreign_records_are_used_with_one_warning(changes, words):
    t16, t32 = task_of(16), task_of(32)
    ctx = apply_history_best([record(t16, 8, 1e-3, **changes), record(t32, 4, 1e-3, **changes)])
    with pytest.warns(DispatchWarning, match="using tuning records ") as caught:
        assert split_chosen(16, ctx) == (-1, 8)
        assert split_chosen(32, ctx) == (-1, 4)
    assert len(caught) == 1 and words in str(caught[0].message)


def test_a_local_record_beats_a_faster_foreign_one():
    t16 = task_of(16)
    ctx = apply_history_best([record(t16, 8, 1e-9, machine={"cpu": "znver9"}),
                              record(t16, 2, 1e-3)])
    assert split_chosen(16, ctx) == (-1, 2)


def test_shipped_logs_fill_the_gaps_without_machine_warnings(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "test_cpu.jsonl").write_text(
        json.dumps(record(task_of(32), 16, 1e-3, machine={"cpu": "znver9"})) + "\n")
    monkeypatch.setattr("autotune.dispatch._shipped_dir", lambda: shipped)
    assert default_logs() == [shipped / "test_cpu.jsonl"]
    ctx = apply_history_best([record(task_of(16), 8, 1e-3)], use_default_logs=True)
    assert split_chosen(32, ctx) == (-1, 16)
    assert split_chosen(16, ctx) == (-1, 8)
    assert split_chosen(32, apply_history_best(None)) == (-1, 16)


def test_the_repository_ships_a_tuning_logs_directory():
    assert all(p.suffix == ".jsonl" for p in default_logs())
    from autotune.dispatch import _shipped_dir
    assert (_shipped_dir() / "README.md").is_file()

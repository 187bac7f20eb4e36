"""``tetune tune`` and ``tetune log``: --shape rules, a real (tiny) tuning run, and the log
commands on its log."""

import json

import pytest

import te
from autotune import template
from autotune.record import load_raw
from schedules import create_schedule, get_config
from tetune.cli import main
from tetune.tune_cmd import UsageError, task_args


@template("test_cli_scale")
def scale(n):
    cfg = get_config()
    cfg.define_split("tile", n, num_outputs=2)
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    s = create_schedule(B.op)
    cfg["tile"].apply(s, B, B.op.axis[0])
    cfg.add_flop(n)
    return s, [A, B]


def test_list_shows_each_template_and_how_to_give_its_args(capsys):
    assert main(["tune", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(ln.split() == ["matmul", "--shape", "M,K,N"] for ln in lines)
    assert any(ln.split() == ["test_cli_scale", "--args", "JSON"] for ln in lines)


def test_shape_rules_give_the_workload_the_op_carries():
    assert task_args("matmul", "8,4,2", None) == (
        ("TENSOR", (8, 4), "float32"), ("TENSOR", (4, 2), "float32"), False, False, "float32")
    assert task_args("dense", "8,4,2", None)[:2] == (("TENSOR", (8, 4), "float32"),
                                                      ("TENSOR", (2, 4), "float32"))
    conv = task_args("conv2d_nchw", "1,3,8,8,4,3,3,2,1", None)
    assert conv[:4] == (("TENSOR", (1, 3, 8, 8), "float32"), ("TENSOR", (4, 3, 3, 3), "float32"),
                        (2, 2), (1, 1, 1, 1))
    assert task_args("test_cli_scale", None, "[16]") == (16,)


@pytest.mark.parametrize("template, shape, args, words", [
    ("matmul", "8,4", None, "--shape for matmul is M,K,N (3 numbers), got 2"),
    ("conv2d_nchw", "1,3,8,8", None, "N,C,H,W,O,KH,KW[,stride[,pad]] (7 to 9 numbers)"),
    ("matmul", "8,four,2", None, "expected comma-separated integers"),
    ("matmul", None, None, "tuning matmul needs --shape M,K,N"),
    ("test_cli_scale", "16", None, "has no --shape rule"),
    ("test_cli_scale", None, "{", "--args is not JSON"),
])
def test_bad_shapes_say_what_is_expected(template, shape, args, words):
    with pytest.raises(UsageError) as exc:
        task_args(template, shape, args)
    assert words in str(exc.value)


def test_tune_errors_are_one_line(capsys):
    assert main(["tune", "no_such_op", "--shape", "1"]) == 2
    assert "tetune tune: error: no template named 'no_such_op'" in capsys.readouterr().err
    assert main(["tune", "matmul", "--shape", "8,8"]) == 2
    assert "(3 numbers), got 2" in capsys.readouterr().err
    assert main(["log", "show", "/nonexistent/log.jsonl"]) == 1
    assert "no such file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tuned_log(tmp_path_factory):
    pytest.importorskip("autotune.tuner")
    log = tmp_path_factory.mktemp("cli") / "scale.jsonl"
    argv = ["tune", "test_cli_scale", "--args", "[16]", "--tuner", "random", "--trials", "3",
            "--log", str(log), "--target", "python", "--n-parallel", "2", "--repeat", "1",
            "--min-repeat-ms", "0", "--seed", "0"]
    assert main(argv) == 0
    assert main(argv[:7] + ["5"] + argv[8:]) == 0  # resumes: measures 2 more
    return log


def test_tune_appends_one_record_per_trial_and_resumes(tuned_log, capsys):
    records = list(load_raw(tuned_log))
    assert len(records) == 5
    assert len({json.dumps(r["config"]["knobs"]) for r in records}) == 5
    assert all(r["result"]["error_no"] == "NO_ERROR" for r in records)


def test_log_show_best_and_plot(tuned_log, tmp_path, capsys):
    capsys.readouterr()
    assert main(["log", "show", str(tuned_log)]) == 0
    out = capsys.readouterr().out
    assert "5 records, 1 workloads" in out and "test_cli_scale(16) on python" in out
    assert "GFLOP/s" in out and "5 records: 5 NO_ERROR" in out
    best = tmp_path / "best.jsonl"
    assert main(["log", "best", str(tuned_log), str(best)]) == 0
    assert len(list(load_raw(best))) == 1
    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    assert main(["log", "plot", str(tuned_log), "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_tune_a_library_template_by_shape(tmp_path, capsys):
    pytest.importorskip("autotune.tuner")
    log = tmp_path / "matmul.jsonl"
    assert main(["tune", "matmul", "--shape", "8,8,8", "--tuner", "random", "--trials", "2",
                 "--log", str(log), "--target", "python", "--repeat", "1",
                 "--min-repeat-ms", "0"]) == 0
    records = list(load_raw(log))
    assert [r["result"]["error_no"] for r in records] == ["NO_ERROR"] * 2, records
    assert records[0]["task"]["flop"] == 2 * 8 * 8 * 8
    assert "best:" in capsys.readouterr().out

"""Tests for the ``tetune`` command line skeleton."""

import os
import subprocess
import sys

import numba
import numpy
import pytest

from tetune.cli import main

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_version_prints_versions(capsys):
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tetune ")
    assert f"numpy {numpy.__version__}" in out
    assert f"numba {numba.__version__}" in out


def test_unknown_subcommand_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["definitely-not-a-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_version_rejects_extra_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["version", "--bogus"])
    assert exc.value.code == 2


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("tune", "tune-net", "compile", "run", "bench", "log", "version"):
        assert cmd in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: tetune" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["tune-net", "compile", "run", "bench"])
def test_network_commands_name_a_missing_model(cmd, capsys, tmp_path):
    missing = str(tmp_path / "model.onnx")
    extra = ["--log", str(tmp_path / "log.jsonl")] if cmd == "tune-net" else []
    assert main([cmd, missing, "--target", "cpu", *extra]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"tetune {cmd}: error:" in captured.err and "model.onnx" in captured.err


def test_python_dash_m_tetune():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "tetune", "version"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"numba {numba.__version__}" in proc.stdout


def test_tune_net_shares_a_trial_budget_by_work():
    from types import SimpleNamespace

    from tetune.net_cmd import plan_trials

    def task(weight, flop, space):
        return SimpleNamespace(weight=weight, flop=flop, config_space=range(space))

    tasks = [task(1, 1000, 500), task(3, 1000, 500), task(1, 10, 500), task(4, 1000, 20)]
    # work 1000 : 3000 : 10 : 4000 of 8010; the tiny task gets the floor, the last its space
    assert plan_trials(tasks, total=200, min_trials=8) == [25, 75, 8, 20]
    assert plan_trials(tasks, per_task=50) == [50, 50, 50, 20]
    assert plan_trials(tasks) == [200, 200, 200, 20]


def test_a_reader_that_stops_early_is_not_an_error(monkeypatch, capsys):
    """`tetune log show LOG | head`: the closed pipe ends the command quietly."""
    import argparse
    import io

    from tetune import cli

    def write_to_closed_pipe(args):
        raise BrokenPipeError(32, "Broken pipe")

    class Parser:
        def parse_known_args(self, argv):
            return argparse.Namespace(command="log", func=write_to_closed_pipe), []

    monkeypatch.setattr(cli, "build_parser", lambda: Parser())
    monkeypatch.setattr("sys.stdout", io.StringIO())  # no file descriptor to redirect
    assert cli.main([]) == 0

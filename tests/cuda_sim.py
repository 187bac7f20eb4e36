"""Running the cuda target's tests without a GPU, in numba's CUDA simulator.

The simulator must be chosen before numba.cuda is first imported, and then holds for the whole
process.  Importing this module chooses it (the cpu target never imports numba.cuda, so the
cpu tests of the same run are unaffected).  If numba.cuda was already imported for real (by an
earlier test module or a plugin), the simulator cannot be chosen any more: each cuda test
module then runs itself again in a fresh interpreter with ``NUMBA_ENABLE_CUDASIM=1`` (its
``test_in_subprocess``) and skips its tests here.  Without numba's CUDA support installed the
tests are skipped, with the reason.

A cuda test module does::

    from cuda_sim import simulator, rerun  # noqa: F401 (simulator is an autouse fixture)
    test_in_subprocess = rerun(__file__)
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import cuda_env


def _status():
    if importlib.util.find_spec("numba") is None:
        return "unavailable", "numba is not installed"
    if "numba.cuda" in sys.modules and not cuda_env.simulator_active():
        return "subprocess", "numba.cuda was imported without the simulator earlier"
    if not cuda_env.enable_simulator():
        try:
            cuda_env.cuda_module()
        except Exception as err:  # noqa: BLE001 - only its message is wanted
            return "unavailable", str(err)
        return "unavailable", "numba's CUDA simulator could not be enabled"
    return "active", ""


STATUS, REASON = _status()


@pytest.fixture(autouse=True)
def simulator(request):
    """Skip a test unless it can run in the simulator in this process."""
    if request.node.originalname == "test_in_subprocess":
        return
    if STATUS == "unavailable":
        pytest.skip(f"no CUDA simulator: {REASON}")
    if STATUS == "subprocess":
        pytest.skip(f"run by test_in_subprocess ({REASON})")


def rerun(path: str):
    """The test that runs the module at ``path`` in a fresh interpreter with the simulator,
    when it cannot run in this one."""

    def test_in_subprocess():
        if STATUS != "subprocess":
            pytest.skip("the simulator runs in this process")
        env = dict(os.environ, **{cuda_env.SIMULATOR_ENV: "1"})
        root = Path(__file__).resolve().parents[1]
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
            cwd=root, env=env, capture_output=True, text=True, timeout=900, check=False)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]

    return test_in_subprocess

"""The notebooks in notebooks/ run top to bottom, and are committed with their outputs.

Each notebook is executed in a fresh Jupyter kernel with ``TETUNE_NOTEBOOK_QUICK=1``, which
its first cell reads to shrink shapes and tuning budgets (a minute or less each on two
cores); the kernel inherits this process's environment, so ``TETUNE_CACHE_DIR`` (and numba's
cache) is shared with the rest of the run. A failing cell fails the test with the cell's
traceback. The committed files keep the outputs of a full run: a notebook saved without
them, or with an error in them, fails here too.
"""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5, NOTEBOOKS


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_outputs_and_no_errors(path):
    nb = nbformat.read(path, as_version=4)
    cells = code_cells(nb)
    assert cells, f"{path.name} has no code"
    unrun = [k for k, c in enumerate(cells) if not c.execution_count]
    assert not unrun, f"{path.name}: code cells {unrun} were not run (commit it executed)"
    errors = [o.get("ename") for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} was saved with errors: {errors}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom_in_quick_mode(path, monkeypatch):
    monkeypatch.setenv("TETUNE_NOTEBOOK_QUICK", "1")
    # the kernel imports the repository's packages even without an editable install
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError with the failing cell and its traceback

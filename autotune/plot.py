"""``plot_curve``: the tuning curve of a log, best GFLOP/s so far against trial number.

matplotlib is an optional dependency (``pip install tetune[plot]``), imported on first use.
"""

from __future__ import annotations

from .record import record_cost, record_dicts, task_label

__all__ = ["plot_curve", "tuning_curves"]


def tuning_curves(records) -> dict:
    """``{(task, target): [best GFLOP/s after trial 1, 2, ...]}`` in log order.
    A task without a FLOP count is measured in runs per second instead (still a curve that
    rises as the tuner improves)."""
    curves: dict = {}
    for record in record_dicts(records):
        task = record["task"]
        key = (task_label(task), task["target"])
        cost, flop = record_cost(record), task.get("flop") or 0
        rate = (flop / 1e9 if flop else 1.0) / cost
        curve = curves.setdefault(key, [])
        curve.append(max(rate, curve[-1] if curve else 0.0))
    return curves


def plot_curve(log_or_records, ax=None, label: str | None = None):
    """Plot best GFLOP/s against trial number, one line per task of the log (a path, a list
    of paths, or (MeasureInput, MeasureResult) pairs); returns the matplotlib Axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    curves = tuning_curves(log_or_records)
    for (task, target), curve in curves.items():
        line_label = label if len(curves) == 1 else \
            f"{label + ': ' if label else ''}{task} on {target}"
        ax.step(range(1, len(curve) + 1), curve, where="post", label=line_label)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are whole numbers
    ax.set_xlabel("trial")
    ax.set_ylabel("best GFLOP/s so far")
    ax.grid(True, alpha=0.3)
    if label or len(curves) > 1:
        ax.legend(fontsize="small")
    return ax

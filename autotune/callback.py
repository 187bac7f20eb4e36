"""Tuner callbacks: a progress bar, and a log file that is also where a run resumes from.

A callback is a callable ``cb(tuner, inputs, results)`` that the tuner calls after each
measured batch; it may also have ``on_start(tuner)`` and ``on_end(tuner)``, called when
``tune`` begins and ends (also on Ctrl-C)::

    tuner.tune(200, option, callbacks=[progress_bar(), log_to_file("matmul.jsonl")])

Run the same line again after an interruption: ``log_to_file`` hands the records its file
already holds for the task to ``tuner.resume``, so those configs are not measured again and
count toward the 200.
"""

from __future__ import annotations

import os
import warnings

from .record import append_records, decode_record, load_raw

__all__ = ["LogToFile", "ProgressBar", "log_to_file", "progress_bar"]


class ProgressBar:
    """See ``progress_bar``."""

    def __init__(self, total: int | None = None, desc: str | None = None):
        self.total = total
        self.desc = desc
        self._bar = None
        self._base = 0
        self._done = 0
        self._errors = 0
        self._best = 0.0

    def on_start(self, tuner) -> None:
        from tqdm.auto import tqdm

        self.close()
        # Trials the tuner had taken in before this run; records a log_to_file resumes
        # after this point show up as done at the first batch.
        self._base = getattr(tuner, "trials_done", 0)
        self._done = self._errors = 0
        self._best = 0.0
        self._bar = tqdm(total=self.total or getattr(tuner, "n_trial", None) or None,
                         desc=self.desc or tuner.task.name, unit="trial", dynamic_ncols=True)

    def __call__(self, tuner, inputs, results) -> None:
        if self._bar is None:
            self.on_start(tuner)
        self._done += len(results)
        flop = tuner.task.flop
        for res in results:
            if not res.ok:
                self._errors += 1
            elif flop and res.cost > 0:
                self._best = max(self._best, flop / res.cost)
        self._best = max(self._best, getattr(tuner, "best_flops", 0.0) or 0.0)
        done = getattr(tuner, "trials_done", None)
        shown = done - self._base if done is not None else self._done
        self._bar.update(max(shown - self._bar.n, 0))
        self._bar.set_postfix_str(f"best {self._best / 1e9:.2f} GFLOP/s, "
                                  f"{self._errors} errors", refresh=True)

    def on_end(self, tuner) -> None:
        self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def progress_bar(total: int | None = None, desc: str | None = None) -> ProgressBar:
    """A tqdm bar (rendered as a widget in Jupyter): trials done of ``total`` (default: the
    tuner's ``n_trial``), best GFLOP/s so far, errors, and the time left."""
    return ProgressBar(total, desc)


class LogToFile:
    """See ``log_to_file``."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.resumed = 0

    def on_start(self, tuner) -> None:
        """Resume: hand this file's records of ``tuner.task`` to ``tuner.resume``."""
        self.resumed = 0
        if not os.path.exists(self.path):
            return
        task = tuner.task
        tasks = {(task.workload_key, task.target): task}
        inputs, results = [], []
        for record in load_raw(self.path):
            if (record["workload_key"], record["task"]["target"]) not in tasks:
                continue
            try:
                inp, res = decode_record(record, tasks)
            except Exception as exc:  # the template changed since the record was written
                warnings.warn(f"{self.path}: a record of {task.name} does not fit its config "
                              f"space any more ({type(exc).__name__}: {exc}); it is measured "
                              "again", RuntimeWarning, stacklevel=2)
                continue
            inputs.append(inp)
            results.append(res)
        if inputs:
            taken = tuner.resume(inputs, results)
            self.resumed = taken if isinstance(taken, int) else len(inputs)

    def __call__(self, tuner, inputs, results) -> None:
        append_records(self.path, zip(inputs, results))


def log_to_file(path) -> LogToFile:
    """Append every measured candidate to the JSON-lines log at ``path`` (one line each,
    written as soon as its batch is measured), and resume from the log's records of the
    task when tuning starts."""
    return LogToFile(path)

"""``apply_history_best``: builds use the best measured config of each workload.

    with apply_history_best("matmul.jsonl"):
        s = schedule_for(C)            # the anchor's workload is looked up in the log

The context answers ``schedule_for`` (and any template instantiated without a config) with
the knob values of the fastest valid record of the workload on the build's target family
("cpu" for the cpu and python targets). Records measured on this machine with this tetune
win; records from another CPU (other LLVM name or features) or another tetune version are
used only when a workload has no local record, with one warning. A workload with no record
gets ``None``, so its template's default config, with one warning per workload.

Shipped logs: ``default_logs()`` lists the distilled logs that come with tetune (the
``tuning_logs`` directory, tuned on the maintainers' machines). ``apply_history_best(None)``
uses only them; ``apply_history_best(log, use_default_logs=True)`` uses them for the
workloads ``log`` lacks. Being from another machine is their point, so they never warn
about it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from schedules.registry import DispatchContext, normalize_target, workload_key

from .record import machine_info, record_cost, record_dicts, version_info

__all__ = ["ApplyHistoryBest", "DispatchWarning", "apply_history_best", "default_logs"]


class DispatchWarning(UserWarning):
    """A build uses a foreign record, or finds no record, for a workload."""


def default_logs() -> list[Path]:
    """The tuning logs shipped with tetune (``tuning_logs/*.jsonl``), sorted by name."""
    return sorted(_shipped_dir().glob("*.jsonl"))


def _shipped_dir() -> Path:
    # Installed from a wheel, the logs are the data-only package ``tuning_logs``; in a
    # source checkout (editable install) they sit at the repository root next to autotune/.
    try:
        from importlib import resources

        return Path(str(resources.files("tuning_logs")))
    except (ImportError, TypeError):
        return Path(__file__).resolve().parent.parent / "tuning_logs"


class ApplyHistoryBest(DispatchContext):
    """A dispatch context holding, per (target family, workload), the best valid record of
    some logs: on this machine, elsewhere, and in the shipped fallback logs."""

    def __init__(self, records=None, fallback=(), warn_untuned: bool = True):
        self.warn_untuned = warn_untuned
        self._local: dict = {}
        self._foreign: dict = {}
        self._fallback: dict = {}
        self._foreign_why = ""
        self._warned_foreign = False
        self._warned_untuned: set = set()
        if records is not None:
            self.load(records)
        for record in record_dicts(fallback):
            _keep_best(self._fallback, record)

    def load(self, records) -> None:
        """Add records: a log path, a list of paths, or (MeasureInput, MeasureResult) pairs
        or record dicts."""
        here_machine, here_version = machine_info(), version_info()["tetune"]
        for record in record_dicts(records):
            why = _foreign(record, here_machine, here_version)
            if why:
                self._foreign_why = self._foreign_why or why
                _keep_best(self._foreign, record)
            else:
                _keep_best(self._local, record)

    def best_record(self, target, workload) -> dict | None:
        """The record ``query`` answers from (None if there is none); warns as ``query``."""
        key = (normalize_target(target), workload_key(workload))
        record = self._local.get(key)
        if record is None and key in self._foreign:
            record = self._foreign[key]
            if not self._warned_foreign:
                self._warned_foreign = True
                warnings.warn(f"apply_history_best: using tuning records {self._foreign_why} "
                              "for workloads this machine has no record of; their configs "
                              "were the best there, not necessarily here", DispatchWarning,
                              stacklevel=4)
        if record is None:
            record = self._fallback.get(key)
        if record is None and self.warn_untuned and key not in self._warned_untuned:
            self._warned_untuned.add(key)
            warnings.warn(f"apply_history_best: no tuned config for workload {key[1]} on "
                          f"target {key[0]!r}; using the template's default", DispatchWarning,
                          stacklevel=4)
        return record

    def query(self, target, workload):
        """The knob values (a dict, as in the log) of the best record, or None."""
        if workload is None:
            return None
        record = self.best_record(target, workload)
        return dict(record["config"]["knobs"]) if record is not None else None

    def __len__(self):
        return len(set(self._local) | set(self._foreign) | set(self._fallback))

    def __repr__(self):
        return (f"ApplyHistoryBest({len(self._local)} local, {len(self._foreign)} foreign, "
                f"{len(self._fallback)} shipped workloads)")


def apply_history_best(logs=None, use_default_logs: bool = False) -> ApplyHistoryBest:
    """A dispatch context (use it in a ``with``) serving the best config per workload from
    ``logs``: a path, a list of paths, or (MeasureInput, MeasureResult) pairs. ``logs=None``:
    the logs shipped with tetune; ``use_default_logs=True``: those too, for workloads
    ``logs`` has no record of. With the shipped logs alone, workloads they do not cover use
    their default config without a warning (the user asked for no particular log)."""
    if logs is None:
        return ApplyHistoryBest(None, fallback=default_logs(), warn_untuned=False)
    return ApplyHistoryBest(logs, fallback=default_logs() if use_default_logs else ())


def _keep_best(table: dict, record: dict) -> None:
    cost = record_cost(record)
    if cost == float("inf"):
        return
    key = (normalize_target(record["task"]["target"]), record["workload_key"])
    if key not in table or cost < record_cost(table[key]):
        table[key] = record


def _foreign(record: dict, machine: dict, tetune_version: str) -> str:
    """Why ``record`` is not from this machine and version ("" when it is)."""
    theirs = record.get("machine") or {}
    if theirs.get("cpu") != machine["cpu"]:
        return f"from another CPU ({theirs.get('cpu', 'unknown')}, this is {machine['cpu']})"
    if theirs.get("features") != machine["features"]:
        return f"from a {machine['cpu']} with other CPU features"
    version = (record.get("version") or {}).get("tetune")
    if version != tetune_version:
        return f"from tetune {version or 'unknown'} (this is {tetune_version})"
    return ""

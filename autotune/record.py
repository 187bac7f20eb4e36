"""Tuning logs: one JSON line per measured candidate, appended and flushed as it is measured.

A record names its task (template, args, target), the config (its index and every knob's
value), the result (costs or the error), the machine and the versions that produced it; the
format is documented field by field in ``tuning_logs/README.md``. Logs are append-only: two
processes may append to one file, and a line cut short by a crash is skipped (with a
warning naming ``file:line``) by every reader.

``load_raw`` reads records as dicts and needs nothing registered; ``load_records`` turns them
back into ``(MeasureInput, MeasureResult)`` and so needs each record's template.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator

from schedules.registry import list_templates, workload_key

from .measure_types import MeasureErrorNo, MeasureInput, MeasureResult
from .task import Task

try:
    import fcntl
except ImportError:  # Windows: appends are still whole lines, just not locked
    fcntl = None

__all__ = ["LOG_FORMAT", "LogWarning", "RecordError", "append_records", "decode",
           "decode_record", "encode", "load_raw", "load_records", "machine_info", "mean_cost",
           "parse", "pick_best", "record_cost", "record_dicts", "task_label", "version_info"]

LOG_FORMAT = 1


class RecordError(ValueError):
    """A line that is not a tuning record of this format."""


class LogWarning(UserWarning):
    """A tuning-log line was skipped (malformed, truncated, or its template is unknown)."""


# ----------------------------------------------------------------------------- environment


@functools.cache
def machine_info() -> dict:
    """This machine as records describe it: LLVM's name for the host CPU and its enabled
    features (what numba compiles for), the CPU model as the OS names it, usable cores."""
    import llvmlite.binding as ll

    try:
        features = ll.get_host_cpu_features().flatten()
    except Exception:  # some platforms cannot report them
        features = ""
    enabled = sorted(f[1:] for f in features.split(",") if f.startswith("+"))
    from .workers import usable_cores

    return {"cpu": ll.get_host_cpu_name(), "features": ",".join(enabled),
            "model": _cpu_model(), "cores": usable_cores()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


@functools.cache
def version_info() -> dict:
    from importlib import metadata

    import numba

    try:
        tetune = metadata.version("tetune")
    except metadata.PackageNotFoundError:
        tetune = "unknown"
    return {"tetune": tetune, "numba": numba.__version__, "log_format": LOG_FORMAT}


# ----------------------------------------------------------------------------- one record


def encode(inp: MeasureInput, res: MeasureResult) -> str:
    """The JSON line (without its newline) of one measurement."""
    task = inp.task
    record = {
        "task": {"name": task.name, "args": task.args, "target": task.target,
                 "flop": task.flop},
        "workload_key": task.workload_key,
        "config": {"index": inp.config.index, "knobs": inp.config.to_json()},
        "result": {"costs": [float(c) for c in res.costs] if res.ok else [],
                   "error_no": res.error_no.name,
                   "error_msg": res.error_msg, "all_cost": res.all_cost,
                   "build_cost": res.build_cost, "timestamp": res.timestamp},
        "machine": machine_info(),
        "version": version_info(),
    }
    return json.dumps(record, separators=(",", ":"))


def parse(line: str) -> dict:
    """The record dict of a line, checked for the fields readers rely on."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordError(f"not JSON ({exc.msg} at column {exc.colno}; a truncated line?)") \
            from None
    if not isinstance(record, dict):
        raise RecordError("not a JSON object")
    for section in ("task", "config", "result"):
        if not isinstance(record.get(section), dict):
            raise RecordError(f"no {section!r} object")
    task, config, result = record["task"], record["config"], record["result"]
    if not isinstance(task.get("name"), str) or not isinstance(task.get("args"), list):
        raise RecordError("task needs a 'name' string and an 'args' list")
    task.setdefault("target", "cpu")
    if not isinstance(config.get("knobs"), dict):
        raise RecordError("config needs a 'knobs' object")
    if result.get("error_no") not in MeasureErrorNo.__members__:
        raise RecordError(f"unknown result.error_no {result.get('error_no')!r}")
    costs = result.get("costs")
    if not isinstance(costs, list) or not all(isinstance(c, (int, float)) for c in costs):
        raise RecordError("result.costs must be a list of seconds")
    version = record.get("version") or {}
    if version.get("log_format", LOG_FORMAT) != LOG_FORMAT:
        raise RecordError(f"log_format {version.get('log_format')!r}; this tetune reads "
                          f"{LOG_FORMAT}")
    record.setdefault("workload_key", workload_key((task["name"], *task["args"])))
    return record


def decode(line: str, tasks: dict | None = None) -> tuple[MeasureInput, MeasureResult]:
    """``(MeasureInput, MeasureResult)`` of a line. The record's template must be registered.
    ``tasks``: a dict to reuse Task objects (and their config spaces) across calls."""
    return decode_record(parse(line), tasks)


def decode_record(record: dict, tasks: dict | None = None):
    """``decode`` of a record dict (from ``parse`` or ``load_raw``)."""
    tasks = tasks if tasks is not None else {}
    t = record["task"]
    key = (record["workload_key"], t["target"])
    if key not in tasks:
        tasks[key] = Task(t["name"], t["args"], t["target"])
    task = tasks[key]
    config = task.config_space.from_json(record["config"]["knobs"])
    r = record["result"]
    result = MeasureResult(
        costs=tuple(float(c) for c in r["costs"]), error_no=MeasureErrorNo[r["error_no"]],
        all_cost=float(r.get("all_cost", 0.0)), timestamp=float(r.get("timestamp", 0.0)),
        error_msg=str(r.get("error_msg", "")), build_cost=float(r.get("build_cost", 0.0)))
    return MeasureInput(task, config), result


def task_label(task: dict) -> str:
    """A record's task for people: ``matmul(64x32 float32, 32x16 float32)``."""
    parts = []
    for a in task["args"]:
        if isinstance(a, (list, tuple)) and len(a) == 3 and a[0] == "TENSOR":
            parts.append("x".join(str(d) for d in a[1]) + f" {a[2]}")
        else:
            parts.append(json.dumps(a))
    return f"{task['name']}({', '.join(parts)})"


def mean_cost(record: dict) -> float:
    """Mean seconds of a valid record's runs; infinity for a failed one."""
    r = record["result"]
    if r["error_no"] != "NO_ERROR" or not r["costs"]:
        return float("inf")
    return sum(r["costs"]) / len(r["costs"])


def record_cost(record: dict) -> float:
    """What records are ranked by: seconds of a valid record's fastest repeat (see
    ``MeasureResult.cost``); infinity for a failed one."""
    r = record["result"]
    if r["error_no"] != "NO_ERROR" or not r["costs"]:
        return float("inf")
    return min(r["costs"])


# ----------------------------------------------------------------------------- files


def _lines(path) -> Iterator[tuple[int, str, dict]]:
    """``(line number, text, record)`` of every well-formed line; others are skipped with a
    ``LogWarning`` naming ``path:line``."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                record = parse(text)
            except RecordError as exc:
                warnings.warn(f"{path}:{lineno}: skipped: {exc}", LogWarning, stacklevel=3)
                continue
            yield lineno, text.rstrip("\n"), record


def load_raw(path) -> Iterator[dict]:
    """The records of a log as dicts (no template needs to be registered)."""
    for _, _, record in _lines(path):
        yield record


def load_records(path) -> Iterator[tuple[MeasureInput, MeasureResult]]:
    """``(MeasureInput, MeasureResult)`` of every record of a log whose template is
    registered; records of other templates are skipped with one warning per template, and
    records that do not fit their template's config space with a warning per line."""
    tasks: dict = {}
    known = set(list_templates())
    unknown: set = set()
    for lineno, _, record in _lines(path):
        name = record["task"]["name"]
        if name not in known:
            if name not in unknown:
                unknown.add(name)
                warnings.warn(f"{path}:{lineno}: records of template {name!r} skipped: no "
                              "such template is registered (import the module that defines "
                              "it)", LogWarning, stacklevel=2)
            continue
        try:
            yield decode_record(record, tasks)
        except Exception as exc:  # the template changed, or raises for these args now
            warnings.warn(f"{path}:{lineno}: skipped: {type(exc).__name__}: {exc}", LogWarning,
                          stacklevel=2)


def record_dicts(source) -> Iterator[dict]:
    """Record dicts from a log path, or a list of paths, ``(MeasureInput, MeasureResult)``
    pairs or record dicts (mixed freely)."""
    if isinstance(source, (str, os.PathLike)):
        yield from load_raw(source)
        return
    for item in source:
        if isinstance(item, (str, os.PathLike)):
            yield from load_raw(item)
        elif isinstance(item, dict):
            yield parse(json.dumps(item))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], MeasureInput):
            yield parse(encode(*item))
        else:
            raise TypeError("expected log paths, (MeasureInput, MeasureResult) pairs or "
                            f"record dicts, got {item!r}")


def append_records(path, pairs: Iterable[tuple[MeasureInput, MeasureResult]]) -> None:
    """Append one line per ``(MeasureInput, MeasureResult)`` to the log at ``path``. Each
    line is one ``write`` to a file opened for appending, under an exclusive lock, so lines
    of several processes never interleave and a killed writer leaves whole lines."""
    data = [(encode(inp, res) + "\n").encode("utf-8") for inp, res in pairs]
    if data:
        _append_lines(path, data)


def _append_lines(path, data: list[bytes]) -> None:
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        # A writer killed mid-line leaves no newline; start on a fresh line so that only the
        # broken record is lost, not also the first new one.
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")
        for line in data:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
    finally:
        os.close(fd)  # also releases the lock


def pick_best(in_path, out_path) -> int:
    """Write to ``out_path`` the best valid record of each (workload, target) of
    ``in_path``, unchanged, in order of first appearance; returns how many. The output is
    written to a temporary file and renamed, so it is never seen half-written."""
    best: dict = {}
    for _, text, record in _lines(in_path):
        cost = record_cost(record)
        if cost == float("inf"):
            continue
        key = (record["workload_key"], record["task"]["target"])
        if key not in best or cost < best[key][0]:
            best[key] = (cost, text)
    out_dir = os.path.dirname(os.path.abspath(out_path))
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".pick_best.", suffix=".jsonl")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for _, text in best.values():
            f.write(text + "\n")
    os.replace(tmp, out_path)
    return len(best)


"""A schedule as data: the ordered steps applied to it, printable, JSON-serializable, replayable."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from te.errors import TEValueError


@dataclass(frozen=True)
class Step:
    """One primitive applied to one stage, e.g. ``Step("split", "C", {"axis": "i", "factor": 32})``.

    Axes are named by their (stage-unique) names and stages by their (schedule-unique) names,
    so a step list can be replayed onto a fresh schedule of the same computation.
    """

    kind: str
    stage: str
    args: dict = field(default_factory=dict)

    def __str__(self):
        parts = [self.stage] + [f"{k}={_fmt(v)}" for k, v in self.args.items()]
        return f"{self.kind}({', '.join(parts)})"

    def to_json(self) -> dict:
        return {"kind": self.kind, "stage": self.stage, "args": self.args}

    @staticmethod
    def from_json(d: dict) -> "Step":
        try:
            return Step(str(d["kind"]), str(d["stage"]), dict(d.get("args", {})))
        except (KeyError, TypeError) as err:
            raise TEValueError(f"malformed schedule step {d!r}: {err}") from None


def _fmt(v):
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def steps_to_json(steps) -> str:
    """The steps as a JSON string (a list of objects)."""
    return json.dumps([s.to_json() for s in steps])


def steps_from_json(text) -> list:
    """Parse the output of ``steps_to_json`` (or an already-decoded list)."""
    data = json.loads(text) if isinstance(text, str) else text
    if not isinstance(data, list):
        raise TEValueError("a serialized schedule must be a JSON list of steps")
    return [Step.from_json(d) for d in data]

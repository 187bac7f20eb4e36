"""Config spaces: the tunable knobs of a schedule template, in AutoTVM's names.

A template function asks for ``cfg = get_config()``, declares knobs on it and reads them
back while it builds its schedule::

    cfg.define_split("tile_i", s[C].op.axis[0], num_outputs=3, policy="factors")
    cfg.define_knob("unroll", [0, 4, 8])
    io, im, ii = cfg["tile_i"].apply(s, C, s[C].op.axis[0])

The same function runs in two modes. With a ``ConfigSpace`` it *declares*: every knob is
recorded and ``cfg[name]`` answers with that knob's default entity, so a template run on a
fresh space builds its default schedule. With a ``ConfigEntity`` (one point of the space,
``space.get(index)``) the ``define_*`` calls are checked and otherwise ignored and
``cfg[name]`` answers with the point's choice.

Knobs live here, with the schedules they act on, rather than in ``autotune``: default
schedules (``schedule_for``) read them without measuring anything.
"""

from __future__ import annotations

import itertools
import math
import random as _random
from collections.abc import Sequence

from te import expr as E

from .schedule import Fuse, Schedule, ScheduleError, Split, Stage

__all__ = [
    "AnnotateEntity", "ConfigEntity", "ConfigSpace", "OtherOptionEntity", "ReorderEntity",
    "SplitEntity",
]


class ConfigError(ScheduleError):
    """A knob declared or read wrongly, or a config that does not fit its space."""


# ----------------------------------------------------------------------------- entities
# One value of one knob. Each knows how to apply itself to a stage, and how to write itself
# into a log (``to_json``) so that a record names its choice and not only its index.


def _stage(s: Schedule, stage) -> Stage:
    return stage if isinstance(stage, Stage) else s[stage]


class SplitEntity:
    """Split factors, outermost first; ``size[0] == -1`` means "whatever is left"."""

    def __init__(self, size: Sequence[int]):
        self.size = tuple(int(v) for v in size)

    def apply(self, s: Schedule, stage, axis) -> list:
        """Split ``axis`` of ``stage`` into ``len(size)`` loops; returns them outermost first."""
        st = _stage(s, stage)
        loops = []
        for i in range(1, len(self.size)):
            outer, axis = st.split(axis, factor=math.prod(self.size[i:]))
            loops.append(outer)
        return loops + [axis]

    def to_json(self):
        return list(self.size)

    def __eq__(self, other):
        return isinstance(other, SplitEntity) and other.size == self.size

    def __hash__(self):
        return hash(self.size)

    def __repr__(self):
        return f"sp{list(self.size)}"


class ReorderEntity:
    """A permutation of the axes given to ``apply`` (``perm[k]`` is the k-th loop's index)."""

    def __init__(self, perm: Sequence[int]):
        self.perm = tuple(int(v) for v in perm)

    def apply(self, s: Schedule, stage, axes) -> list:
        if len(axes) != len(self.perm):
            raise ConfigError(f"reorder knob has {len(self.perm)} axes, apply got {len(axes)}")
        ordered = [axes[i] for i in self.perm]
        _stage(s, stage).reorder(*ordered)
        return ordered

    def to_json(self):
        return list(self.perm)

    def __eq__(self, other):
        return isinstance(other, ReorderEntity) and other.perm == self.perm

    def __hash__(self):
        return hash(self.perm)

    def __repr__(self):
        return f"re{list(self.perm)}"


class AnnotateEntity:
    """One annotation per axis: ``"none"``, ``"unroll"`` or ``"vec"``."""

    def __init__(self, anns: Sequence[str]):
        self.anns = tuple(anns)

    def apply(self, s: Schedule, stage, axes, max_unroll: int | None = None) -> list:
        """Annotate ``axes``; an ``"unroll"`` on an axis with more than ``max_unroll``
        iterations (when given) is left a plain loop, as AutoTVM does."""
        st = _stage(s, stage)
        if len(axes) != len(self.anns):
            raise ConfigError(f"annotate knob has {len(self.anns)} axes, apply got {len(axes)}")
        for ax, ann in zip(axes, self.anns):
            if ann == "unroll":
                # Only a bound needs the extent: split leaves carry no domain of their own.
                extent = None if max_unroll is None else _leaf_extent(st, ax)
                if max_unroll is None or (extent is not None and extent <= max_unroll):
                    st.unroll(ax)
            elif ann == "vec":
                st.vectorize(ax)
        return list(axes)

    def to_json(self):
        return list(self.anns)

    def __eq__(self, other):
        return isinstance(other, AnnotateEntity) and other.anns == self.anns

    def __hash__(self):
        return hash(self.anns)

    def __repr__(self):
        return f"an{list(self.anns)}"


class OtherOptionEntity:
    """One value of a ``define_knob`` knob, read as ``cfg[name].val``."""

    def __init__(self, val):
        self.val = val

    def to_json(self):
        return self.val

    def __eq__(self, other):
        return isinstance(other, OtherOptionEntity) and other.val == self.val

    def __hash__(self):
        return hash(repr(self.val))

    def __repr__(self):
        return f"ot({self.val!r})"


# ----------------------------------------------------------------------------- knobs


def _extent(axis) -> int | None:
    """The constant extent of an IterVar (or an int given for one); None when symbolic."""
    if isinstance(axis, int):
        return axis
    if isinstance(axis, E.IterVar):
        ext = axis.dom.extent
        return ext.value if isinstance(ext, E.Const) else None
    raise ConfigError(f"expected an axis (IterVar) or an int length, got {axis!r}")


def _leaf_extent(st: Stage, axis) -> int | None:
    """The constant extent of a (possibly split or fused) axis of ``st``; None if symbolic."""
    extents = {}
    for iv in st.all_iter_vars:
        if iv.dom is not None and isinstance(iv.dom.extent, E.Const):
            extents[iv] = iv.dom.extent.value
    for rel in st.relations:
        if isinstance(rel, Split):
            ext = extents.get(rel.parent)
            if rel.factor is not None:
                extents[rel.inner] = rel.factor
                if ext is not None:
                    extents[rel.outer] = -(-ext // rel.factor)
            else:
                extents[rel.outer] = rel.nparts
                if ext is not None:
                    extents[rel.inner] = -(-ext // rel.nparts)
        elif isinstance(rel, Fuse):
            a, b = extents.get(rel.outer), extents.get(rel.inner)
            if a is not None and b is not None:
                extents[rel.fused] = a * b
    return extents.get(axis)


def _factors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


class Knob:
    """A named list of entities, with the default one's position."""

    kind = "knob"
    legacy = None  # the value records from before the knob existed mean (define_knob)

    def __init__(self, name: str, entities: list, default: int = 0):
        if not entities:
            raise ConfigError(f"knob {name!r} has no candidates")
        self.name = name
        self.entities = entities
        self.default = default

    def __len__(self):
        return len(self.entities)

    def index_of(self, entity) -> int:
        try:
            return self.entities.index(entity)
        except ValueError:
            raise ConfigError(f"{entity!r} is not a value of knob {self.name!r}") from None

    def entity_from_json(self, value):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, len={len(self)})"


class SplitSpace(Knob):
    kind = "split"

    def __init__(self, name, length: int, num_outputs: int, policy: str, max_factor, default):
        if policy not in ("factors", "power2", "verbose"):
            raise ConfigError(f"define_split {name!r}: policy must be 'factors', 'power2' or "
                              f"'verbose', not {policy!r}")
        if num_outputs < 2:
            raise ConfigError(f"define_split {name!r}: num_outputs must be >= 2")
        if length is None:
            raise ConfigError(f"define_split {name!r}: the axis has a symbolic extent; give "
                              "the length as an int")
        cands = set()
        if policy in ("factors", "verbose"):
            cands.update(_factors(length))
        if policy in ("power2", "verbose"):
            cands.update(2 ** k for k in range(length.bit_length()) if 2 ** k <= length)
        if max_factor is not None:
            cands = {c for c in cands if c <= max_factor}
        cands = sorted(cands)
        exact = policy == "factors"
        entities = []
        # Inner factors (all but the first); the first is -1 ("the rest"). With "factors" the
        # product must divide the length so no tail loop is ever needed.
        for inner in itertools.product(cands, repeat=num_outputs - 1):
            p = math.prod(inner)
            if p > length or (exact and length % p):
                continue
            entities.append(SplitEntity((-1,) + inner))
        self.length = length
        self.policy = policy
        super().__init__(name, entities, self._nearest(entities, default))

    @staticmethod
    def _nearest(entities, default) -> int:
        if default is None:
            return 0
        want = [max(int(v), 1) for v in list(default)[1:]]
        if len(want) != len(entities[0].size) - 1:
            raise ConfigError(f"split default {list(default)} has the wrong number of factors")

        def distance(ent):
            return sum(abs(math.log2(a) - math.log2(b)) for a, b in zip(ent.size[1:], want))

        return min(range(len(entities)), key=lambda i: distance(entities[i]))

    def entity_from_json(self, value):
        return SplitEntity(value)


class ReorderSpace(Knob):
    kind = "reorder"

    def __init__(self, name, axes, policy: str, candidate, default):
        n = len(axes)
        if policy == "identity":
            perms = [tuple(range(n))]
        elif policy == "all":
            perms = list(itertools.permutations(range(n)))
        elif policy == "candidate":
            if not candidate:
                raise ConfigError(f"define_reorder {name!r}: policy 'candidate' needs candidate=")
            perms = []
            for order in candidate:
                try:
                    perms.append(tuple(_position(axes, ax) for ax in order))
                except ValueError:
                    raise ConfigError(f"define_reorder {name!r}: a candidate names an axis "
                                      "not in axes") from None
                if sorted(perms[-1]) != list(range(n)):
                    raise ConfigError(f"define_reorder {name!r}: candidate {order} is not a "
                                      "permutation of axes")
        else:
            raise ConfigError(f"define_reorder {name!r}: policy must be 'all', 'identity' or "
                              f"'candidate', not {policy!r}")
        entities = [ReorderEntity(p) for p in perms]
        start = 0 if default is None else entities.index(ReorderEntity(default))
        super().__init__(name, entities, start)

    def entity_from_json(self, value):
        return ReorderEntity(value)


def _position(axes, axis) -> int:
    for i, ax in enumerate(axes):
        if ax is axis:
            return i
    raise ValueError(axis)


class AnnotateSpace(Knob):
    kind = "annotate"

    def __init__(self, name, axes, policy: str, default):
        n = len(axes)
        if n == 0:
            raise ConfigError(f"define_annotate {name!r}: no axes")
        if policy == "try_unroll":
            choices = [("none", "unroll")] * n
        elif policy == "try_vec":
            choices = [("none",)] * (n - 1) + [("none", "vec")]
        elif policy == "try_unroll_vec":
            choices = [("none", "unroll")] * (n - 1) + [("none", "unroll", "vec")]
        else:
            raise ConfigError(f"define_annotate {name!r}: policy must be 'try_unroll', 'try_vec' "
                              f"or 'try_unroll_vec', not {policy!r}")
        entities = [AnnotateEntity(c) for c in itertools.product(*choices)]
        start = 0 if default is None else entities.index(AnnotateEntity(default))
        super().__init__(name, entities, start)

    def entity_from_json(self, value):
        return AnnotateEntity(value)


class OtherOptionSpace(Knob):
    kind = "knob"

    def __init__(self, name, values, default):
        values = list(values)
        entities = [OtherOptionEntity(v) for v in values]
        if default is None:
            start = 0
        elif default in values:
            start = values.index(default)
        else:
            raise ConfigError(f"define_knob {name!r}: default {default!r} is not a candidate")
        super().__init__(name, entities, start)

    def entity_from_json(self, value):
        return OtherOptionEntity(value)


# ----------------------------------------------------------------------------- spaces


class ConfigSpace:
    """Every knob a template declares. Run the template on a fresh space to collect the
    knobs; ``cfg[name]`` then answers with defaults, so the same run builds the default
    schedule. Index ``space.get(i)`` for one point, ``len(space)`` for the size."""

    is_fallback = True

    def __init__(self):
        self.space_map: dict[str, Knob] = {}
        self.flop = 0

    # -- declaring
    def _declare(self, knob: Knob):
        old = self.space_map.get(knob.name)
        if old is not None and (type(old) is not type(knob) or old.entities != knob.entities):
            raise ConfigError(f"knob {knob.name!r} is declared twice with different values")
        self.space_map[knob.name] = knob

    def define_split(self, name, axis, num_outputs=2, policy="factors", max_factor=None,
                     default=None):
        """Split factors of ``axis`` (an IterVar or an int length). ``policy`` "factors":
        exact divisors (no tail loops); "power2": powers of two (tail guarded); "verbose":
        both. ``default``: the sizes, e.g. ``[-1, 8]``, of the default point (the nearest
        candidate is taken)."""
        self._declare(SplitSpace(name, _extent(axis), num_outputs, policy, max_factor, default))

    def define_reorder(self, name, axes, policy="all", candidate=None, default=None):
        """Loop orders of ``axes``: every permutation, only the given one, or ``candidate``
        (a list of orders of the same axis objects). ``default``: a permutation."""
        self._declare(ReorderSpace(name, list(axes), policy, candidate, default))

    def define_annotate(self, name, axes, policy="try_unroll", default=None):
        """Per-axis annotations: unroll any of ``axes`` ("try_unroll"), vectorize the last
        ("try_vec"), or both ("try_unroll_vec")."""
        self._declare(AnnotateSpace(name, list(axes), policy, default))

    def define_knob(self, name, values, default=None, legacy=None):
        """A free choice among ``values`` (any JSON values). A knob added to a template
        after logs were written names, as ``legacy``, the value that builds what the
        template built before it existed: records without the knob then mean that value
        instead of failing to match."""
        knob = OtherOptionSpace(name, values, default)
        if legacy is not None:
            if legacy not in values:
                raise ConfigError(f"define_knob {name!r}: legacy {legacy!r} is not a candidate")
            knob.legacy = legacy
        self._declare(knob)

    def add_flop(self, n):
        """Count ``n`` floating-point operations for GFLOP/s figures."""
        self.flop += int(n)

    def fallback_split(self, name, sizes):
        """AutoTVM's spelling of a split default: move knob ``name``'s default to ``sizes``."""
        knob = self.space_map[name]
        knob.default = SplitSpace._nearest(knob.entities, sizes)

    # -- reading
    def __getitem__(self, name):
        try:
            knob = self.space_map[name]
        except KeyError:
            raise ConfigError(f"knob {name!r} is read before it is declared") from None
        return knob.entities[knob.default]

    def __contains__(self, name):
        return name in self.space_map

    @property
    def knobs(self) -> list[Knob]:
        return list(self.space_map.values())

    def __len__(self):
        return math.prod(len(k) for k in self.space_map.values())

    # -- points
    def point_to_knobs(self, index: int) -> list[int]:
        """The entity index of every knob at point ``index`` (the first knob varies fastest)."""
        # Tuners decode points in their inner loops: the range check falls out of the
        # decoding (a quotient left over) instead of a product over all knobs first.
        rest = index
        out = []
        for knob in self.space_map.values():
            rest, r = divmod(rest, len(knob.entities))
            out.append(r)
        if index < 0 or rest:
            raise ConfigError(f"config index {index} out of range (space has {len(self)})")
        return out

    def knobs_to_point(self, choice: Sequence[int]) -> int:
        index, stride = 0, 1
        for knob, c in zip(self.space_map.values(), choice):
            index += c * stride
            stride *= len(knob)
        return index

    @property
    def default_index(self) -> int:
        return self.knobs_to_point([k.default for k in self.space_map.values()])

    def get(self, index: int) -> "ConfigEntity":
        choice = self.point_to_knobs(index)
        entities = {k.name: k.entities[c] for k, c in zip(self.space_map.values(), choice)}
        return ConfigEntity(index, entities, self.flop)

    def default_config(self) -> "ConfigEntity":
        return self.get(self.default_index)

    def from_json(self, knobs: dict) -> "ConfigEntity":
        """The point whose knob values are ``knobs`` (as written by ``ConfigEntity.to_json``);
        raises ``ConfigError`` naming the knob when the record does not fit this space."""
        knobs = dict(knobs)
        for name, knob in self.space_map.items():  # knobs added after the record was made
            if name not in knobs and knob.legacy is not None:
                knobs[name] = knob.legacy
        if set(knobs) != set(self.space_map):
            raise ConfigError(f"config knobs {sorted(knobs)} do not match the template's "
                              f"{sorted(self.space_map)}")
        choice = [k.index_of(k.entity_from_json(knobs[k.name])) for k in self.space_map.values()]
        return self.get(self.knobs_to_point(choice))

    def sample(self, rng: _random.Random | None = None) -> int:
        """A uniformly random point index."""
        rng = rng or _random
        return rng.randrange(len(self))

    def neighbours(self, index: int) -> list[int]:
        """Points that differ from ``index`` in one knob by one step of its candidate list
        (the moves of simulated annealing and of GA mutation)."""
        choice = self.point_to_knobs(index)
        out = []
        for i, knob in enumerate(self.space_map.values()):
            for step in (-1, 1):
                c = choice[i] + step
                if 0 <= c < len(knob):
                    moved = list(choice)
                    moved[i] = c
                    out.append(self.knobs_to_point(moved))
        return out

    def __repr__(self):
        lines = [f"ConfigSpace (len={len(self)}, {len(self.space_map)} knobs)"]
        for i, knob in enumerate(self.space_map.values()):
            sample = ", ".join(repr(e) for e in knob.entities[:4])
            more = ", ..." if len(knob) > 4 else ""
            lines.append(f"  {i:2d} {knob.name:<16s} {knob.kind:<9s} len={len(knob):<6d}"
                         f"[{sample}{more}]")
        return "\n".join(lines)


class ConfigEntity:
    """One point of a config space: ``cfg[name]`` is the chosen entity of each knob. A
    template run with it re-declares its knobs; those calls only check the name."""

    is_fallback = False

    def __init__(self, index: int, entities: dict, flop: int = 0):
        self.index = index
        self._entities = dict(entities)
        self.flop = flop

    def __getitem__(self, name):
        try:
            return self._entities[name]
        except KeyError:
            raise ConfigError(f"knob {name!r} is not in this config "
                              f"(it has {sorted(self._entities)})") from None

    def _check(self, name, *args, **kwargs):
        if name not in self._entities:
            raise ConfigError(f"the template declares knob {name!r}, which this config "
                              "(from another version of the template?) does not have")

    define_split = define_reorder = define_annotate = define_knob = _check

    def fallback_split(self, name, sizes):
        pass

    def add_flop(self, n):
        # The space counted these already; a template run on a point only re-declares.
        pass

    def to_json(self) -> dict:
        return {name: e.to_json() for name, e in self._entities.items()}

    def __eq__(self, other):
        return isinstance(other, ConfigEntity) and other._entities == self._entities

    def __hash__(self):
        return hash(tuple(sorted(self._entities.items(), key=lambda kv: kv[0])))

    def __repr__(self):
        knobs = ", ".join(f"{n}={e!r}" for n, e in self._entities.items())
        return f"ConfigEntity(index={self.index}: {knobs})"

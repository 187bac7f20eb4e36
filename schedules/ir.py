"""The loop-nest IR that ``lower`` produces and the code generators consume.

Statements are immutable: ``For`` (loops always start at 0), ``Store``, ``Allocate``,
``IfThenElse``, ``Seq``, ``Let`` and ``Barrier``; ``BufferLoad`` is the expression that reads a
buffer. ``PrimFunc`` is one lowered function. ``str()`` of any of them prints C-like text in
the manner of TVM's ``lower(..., simple_mode=True)``.
"""

from __future__ import annotations

import itertools
from typing import Callable

from te import expr as E
from te.printer import expr_str

_buffer_ids = itertools.count()


class Buffer:
    """A multi-dimensional array: a kernel argument or an allocation of some ``scope``."""

    __slots__ = ("name", "shape", "dtype", "scope", "strides", "uid")

    def __init__(self, name, shape, dtype, scope="global", strides=None):
        self.name = name
        self.shape = tuple(E.convert(s) for s in shape)
        self.dtype = dtype
        self.scope = scope
        self.strides = None if strides is None else tuple(E.convert(s) for s in strides)
        self.uid = next(_buffer_ids)

    def __repr__(self):
        dims = ", ".join(str(s) for s in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


class BufferLoad(E.Expr):
    """``buffer[indices]`` inside lowered code."""

    __slots__ = ("buffer", "indices", "dtype")

    def __init__(self, buffer: Buffer, indices):
        object.__setattr__(self, "buffer", buffer)
        object.__setattr__(self, "indices", tuple(indices))
        object.__setattr__(self, "dtype", buffer.dtype)

    def children(self):
        return self.indices

    def with_children(self, kids):
        if all(k is c for k, c in zip(kids, self.indices)):
            return self
        return BufferLoad(self.buffer, kids)

    def _key_parts(self):
        return (self.buffer.uid,) + tuple(i.key for i in self.indices)

    def text(self, go):
        return f"{self.buffer.name}[{', '.join(go(i) for i in self.indices)}]"


class Stmt:
    __slots__ = ()

    def children(self) -> tuple:
        """Sub-statements."""
        return ()

    def exprs(self) -> tuple:
        """Expressions held directly by this statement."""
        return ()

    def rebuild(self, kids: tuple, exprs: tuple) -> "Stmt":
        return self

    def __str__(self):
        return format_stmt(self)


class For(Stmt):
    """``for var in range(extent)`` with a loop ``kind`` from ``schedule.LOOP_KINDS``."""

    __slots__ = ("var", "extent", "kind", "body", "thread_tag", "pragmas")

    def __init__(self, var, extent, kind, body, thread_tag="", pragmas=()):
        self.var, self.extent, self.kind, self.body = var, E.convert(extent), kind, body
        self.thread_tag, self.pragmas = thread_tag, tuple(pragmas)

    def children(self):
        return (self.body,)

    def exprs(self):
        return (self.extent,)

    def rebuild(self, kids, exprs):
        return For(self.var, exprs[0], self.kind, kids[0], self.thread_tag, self.pragmas)


class Store(Stmt):
    __slots__ = ("buffer", "indices", "value")

    def __init__(self, buffer, indices, value):
        self.buffer, self.indices, self.value = buffer, tuple(indices), value

    def exprs(self):
        return self.indices + (self.value,)

    def rebuild(self, kids, exprs):
        return Store(self.buffer, exprs[:-1], exprs[-1])


class Allocate(Stmt):
    """``buffer`` exists (uninitialised) while ``body`` runs."""

    __slots__ = ("buffer", "body")

    def __init__(self, buffer, body):
        self.buffer, self.body = buffer, body

    def children(self):
        return (self.body,)

    def rebuild(self, kids, exprs):
        return Allocate(self.buffer, kids[0])


class IfThenElse(Stmt):
    __slots__ = ("condition", "then_case", "else_case")

    def __init__(self, condition, then_case, else_case=None):
        self.condition, self.then_case, self.else_case = condition, then_case, else_case

    def children(self):
        return (self.then_case,) if self.else_case is None else (self.then_case, self.else_case)

    def exprs(self):
        return (self.condition,)

    def rebuild(self, kids, exprs):
        return IfThenElse(exprs[0], kids[0], kids[1] if len(kids) > 1 else None)


class Seq(Stmt):
    __slots__ = ("stmts",)

    def __init__(self, stmts):
        self.stmts = tuple(stmts)

    def children(self):
        return self.stmts

    def rebuild(self, kids, exprs):
        return Seq(kids)


class Let(Stmt):
    """Bind ``var = value`` for ``body`` (used for the temporaries of tuple reductions)."""

    __slots__ = ("var", "value", "body")

    def __init__(self, var, value, body):
        self.var, self.value, self.body = var, value, body

    def children(self):
        return (self.body,)

    def exprs(self):
        return (self.value,)

    def rebuild(self, kids, exprs):
        return Let(self.var, exprs[0], kids[0])


class Barrier(Stmt):
    """Threads of a block wait for each other (GPU ``__syncthreads``)."""

    __slots__ = ("scope",)

    def __init__(self, scope="shared"):
        self.scope = scope


class PrimFunc:
    """A lowered function: buffer parameters, symbolic scalar parameters and a body."""

    def __init__(self, name, params, scalar_params, body, attrs=None, args=None):
        self.name = name
        self.params = list(params)
        self.scalar_params = list(scalar_params)
        self.body = body
        self.attrs = dict(attrs or {})
        # What a caller passes, in the order given to lower(): buffers and explicit scalars.
        # Symbolic extents not listed there are taken from the arrays' shapes.
        self.args = list(args) if args is not None else list(params)

    def __str__(self):
        head = ", ".join(
            f"{b.name}: {b.dtype}[{', '.join(expr_str(s) for s in b.shape)}]" for b in self.params
        )
        scalars = "".join(f", {v.name}: {v.dtype}" for v in self.scalar_params)
        return f"primfn {self.name}({head}{scalars}) {{\n{format_stmt(self.body, 1)}}}\n"

    __repr__ = __str__


def seq(stmts) -> Stmt:
    """A Seq of the non-empty statements, flattened; a single statement stays itself."""
    flat = []
    for s in stmts:
        if s is None:
            continue
        flat.extend(s.stmts if isinstance(s, Seq) else [s])
    return flat[0] if len(flat) == 1 else Seq(flat)


def rewrite(stmt: Stmt, fstmt: Callable | None = None, fexpr: Callable | None = None) -> Stmt:
    """Rebuild ``stmt`` bottom-up: ``fexpr`` maps each held expression, then ``fstmt`` may
    return a replacement for each statement (None keeps it)."""

    def visit(s):
        kids = tuple(visit(k) for k in s.children())
        exprs = tuple(fexpr(e) for e in s.exprs()) if fexpr else s.exprs()
        s2 = s.rebuild(kids, exprs) if (kids or exprs) else s
        if fstmt is not None:
            out = fstmt(s2)
            if out is not None:
                return out
        return s2

    return visit(stmt)


def walk_stmts(stmt: Stmt):
    """Every statement of ``stmt`` (pre-order)."""
    stack = [stmt]
    while stack:
        s = stack.pop()
        yield s
        stack.extend(reversed(s.children()))


# ------------------------------------------------------------------------------------------
# Printing
# ------------------------------------------------------------------------------------------


def format_stmt(stmt: Stmt, level: int = 0) -> str:
    """C-like text of a statement, indented by ``level``."""
    lines: list = []
    _fmt(stmt, level, lines)
    return "".join(lines)


def _e(x):
    return expr_str(x)


def _fmt(s, level, out):
    pad = "  " * level
    if isinstance(s, Seq):
        for k in s.stmts:
            _fmt(k, level, out)
    elif isinstance(s, For):
        kind = "" if s.kind == "serial" else f' "{s.kind}"'
        if s.kind == "thread_binding":
            kind = f' "thread_binding" {s.thread_tag}'
        prag = "".join(f" pragma({k}={v})" for k, v in s.pragmas)
        out.append(f"{pad}for ({s.var.name}, 0, {_e(s.extent)}){kind}{prag} {{\n")
        _fmt(s.body, level + 1, out)
        out.append(f"{pad}}}\n")
    elif isinstance(s, Store):
        idx = ", ".join(_e(i) for i in s.indices)
        out.append(f"{pad}{s.buffer.name}[{idx}] = {_e(s.value)}\n")
    elif isinstance(s, Allocate):
        b = s.buffer
        dims = ", ".join(_e(d) for d in b.shape)
        strides = "" if b.strides is None else f" strides=[{', '.join(_e(x) for x in b.strides)}]"
        out.append(f"{pad}allocate {b.name}[{b.dtype} * {dims}], storage_scope = {b.scope}"
                   f"{strides}\n")
        _fmt(s.body, level, out)
    elif isinstance(s, IfThenElse):
        out.append(f"{pad}if ({_e(s.condition)}) {{\n")
        _fmt(s.then_case, level + 1, out)
        if s.else_case is not None:
            out.append(f"{pad}}} else {{\n")
            _fmt(s.else_case, level + 1, out)
        out.append(f"{pad}}}\n")
    elif isinstance(s, Let):
        out.append(f"{pad}let {s.var.name}: {s.var.dtype} = {_e(s.value)}\n")
        _fmt(s.body, level, out)
    elif isinstance(s, Barrier):
        out.append(f"{pad}barrier({s.scope})\n")
    else:
        out.append(f"{pad}<{type(s).__name__}>\n")

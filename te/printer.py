"""Infix text of expressions, with as few parentheses as precedence allows."""

from __future__ import annotations

from . import expr as E

_PREC = {
    E.Or: 1, E.And: 2, E.EQ: 4, E.NE: 4, E.LT: 4, E.LE: 4, E.GT: 4, E.GE: 4,
    E.Add: 5, E.Sub: 5, E.Mul: 6, E.Div: 6, E.FloorDiv: 6, E.FloorMod: 6,
}
_ATOM = 9


def const_str(c: E.Const) -> str:
    v, t = c.value, c.dtype
    if t == "bool":
        return "True" if v else "False"
    if t == "int32":
        return str(v)
    if t.startswith("float"):
        text = repr(v)
        return text + ("f" if t == "float32" else f"f{t[5:]}")
    return f"{v}{t[0]}{t[-2:] if t[-2:].isdigit() else t[-1]}"


def _prec(node) -> int:
    if isinstance(node, E.Not):
        return 3
    if isinstance(node, E.Const) and isinstance(node.value, (int, float)) and node.value < 0:
        return 5
    return _PREC.get(type(node), _ATOM)


def expr_str(node, load_name=None) -> str:
    """Text of ``node``; ``load_name(load)`` may rename the tensors of loads."""

    def go(n, parent_prec=0, right=False):
        p = _prec(n)
        text = fmt(n, p)
        if p < parent_prec or (right and p == parent_prec and p != _ATOM):
            return f"({text})"
        return text

    def fmt(n, p):
        if isinstance(n, E.Var):
            return n.name
        if isinstance(n, E.Const):
            return const_str(n)
        if isinstance(n, (E.Min, E.Max)):
            return f"{n.symbol}({go(n.a)}, {go(n.b)})"
        if isinstance(n, E.BinaryOp):
            return f"{go(n.a, p)} {n.symbol} {go(n.b, p, right=True)}"
        if isinstance(n, E.Not):
            return f"!{go(n.a, p)}"
        if isinstance(n, E.Cast):
            return f"{n.dtype}({go(n.value)})"
        if isinstance(n, E.Select):
            return f"select({go(n.condition)}, {go(n.true_value)}, {go(n.false_value)})"
        if isinstance(n, E.Call):
            return f"{n.name}({', '.join(go(a) for a in n.args)})"
        if isinstance(n, E.TensorLoad):
            name = load_name(n) if load_name else n.tensor.name
            return f"{name}[{', '.join(go(i) for i in n.indices)}]"
        if isinstance(n, E.Reduce):
            axes = ", ".join(a.var.name for a in n.axis)
            src = ", ".join(go(s) for s in n.source)
            if len(n.source) > 1:
                src = f"({src})[{n.value_index}]"
            where = ""
            if not (isinstance(n.condition, E.Const) and n.condition.value is True):
                where = f", where={go(n.condition)}"
            return f"{n.combiner.name}({src}, axis=[{axes}]{where})"
        custom = getattr(n, "text", None)
        if custom is not None:
            return custom(go)
        return type(n).__name__

    return go(node)

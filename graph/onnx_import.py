"""``from_onnx``: an ONNX model -> the network IR, with static shapes.

The steps, each with its own error:

1. read the model (a ``ModelProto``, bytes or a path): ``ModelError`` for a file that is
   missing, truncated or not ONNX, or an opset this onnx does not know;
2. check its structure: every value defined once, no dangling inputs, no cycles;
3. list every op type without a converter (``UnsupportedOpError``, all in one error), not
   counting the ops that only compute compile-time constants (they are evaluated here);
4. run ONNX's own shape inference in strict mode (``ModelError`` for shape conflicts);
5. fold what must be known at compile time: Constant, Shape, Size and every node that
   feeds a converter's ``const_inputs`` (Reshape's shape, Slice's starts, ...) are evaluated
   with onnx's reference evaluator; a value that depends on a graph input raises
   ``DynamicShapeError`` naming it;
6. convert every remaining node to te once, on placeholders, which types its outputs; the
   result must agree with ONNX's inference (else ``ConversionError`` naming the node).
"""

from __future__ import annotations

import os

import numpy as np

from .convert import convert_node, get_converter, onnx_dtype, te_dtype
from .errors import ConversionError, DynamicShapeError, GraphError, ModelError, UnsupportedOpError
from .ir import Graph, Node, TensorType, toposort

_ALWAYS_FOLDED = ("Constant", "Shape", "Size")


def load_model(model):
    """A ``ModelProto`` from a ModelProto, bytes or a path (``ModelError`` if unreadable)."""
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(model, onnx.ModelProto):
        return model
    try:
        if isinstance(model, (bytes, bytearray)):
            proto = onnx.load_model_from_string(bytes(model))
            where = "the model bytes"
        else:
            path = os.fspath(model)
            where = repr(path)
            if not os.path.isfile(path):
                raise ModelError(f"no ONNX model at {path!r}")
            proto = onnx.load(path)
    except ModelError:
        raise
    except (DecodeError, ValueError, OSError, RuntimeError) as err:
        raise ModelError(f"cannot read {where} as an ONNX model ({type(err).__name__}: "
                         f"{err}); is the file truncated?") from None
    if not proto.HasField("graph"):
        raise ModelError(f"{where} has no graph; is the file truncated or not an ONNX model?")
    return proto


def model_opset(proto) -> int:
    import onnx

    versions = {(o.domain or "ai.onnx"): o.version for o in proto.opset_import}
    if "ai.onnx" not in versions:
        raise ModelError("the model imports no ai.onnx opset")
    opset = int(versions["ai.onnx"])
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ModelError(f"the model uses opset {opset}, newer than the installed onnx "
                         f"{onnx.__version__} knows ({newest}); upgrade onnx")
    return opset


def _attr_value(attr):
    from onnx import AttributeProto, helper, numpy_helper

    if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
        return "<subgraph>"  # control flow is not supported; the node is reported as such
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if attr.type == AttributeProto.TENSOR:
        return numpy_helper.to_array(value)
    if isinstance(value, list):
        return tuple(v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value)
    return value


def constant_value(node: Node) -> np.ndarray:
    """The value of a Constant node (from its IR attributes)."""
    a = node.attrs
    if "value" in a:
        return np.asarray(a["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in a:
            return np.asarray(a[key], dtype=dtype)
    raise ConversionError(f"Constant node {node.name!r}: only tensor, float(s) and int(s) "
                          f"values are supported, got {sorted(a)}")


def _static_type(value_info, what: str):
    """TensorType of a ValueInfoProto, or (dtype, shape with None for unknown dims)."""
    t = value_info.type
    if not t.HasField("tensor_type"):
        raise ConversionError(f"{what} {value_info.name!r} is not a tensor (sequences, maps "
                              "and optionals are not supported)")
    dtype = onnx_dtype(t.tensor_type.elem_type)
    if not t.tensor_type.HasField("shape"):
        return dtype, None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.tensor_type.shape.dim]
    return dtype, dims


def _nodes(proto_graph):
    """IR nodes (unique names; foreign domains prefixed) and their protos by node id."""
    nodes, protos, taken = [], {}, set()
    for k, p in enumerate(proto_graph.node):
        op = p.op_type if p.domain in ("", "ai.onnx") else f"{p.domain}.{p.op_type}"
        name = p.name or f"{p.op_type}_{k}"
        base, n = name, 1
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        node = Node(op, name, tuple(p.input), tuple(p.output),
                    {a.name: _attr_value(a) for a in p.attribute})
        nodes.append(node)
        protos[id(node)] = p
    return nodes, protos


def _check_structure(nodes, graph_inputs, initializers, outputs) -> tuple:
    defined = set(graph_inputs) | set(initializers)
    problems = []
    for n in nodes:
        for v in n.outputs:
            if v and v in defined:
                problems.append(f"value {v!r} (output of node {n.name!r}) is defined twice")
            defined.add(v)
    for n in nodes:
        for v in n.inputs:
            if v and v not in defined:
                problems.append(f"node {n.name!r} ({n.op_type}) reads {v!r}, which no node, "
                                "input or initializer defines")
    for v in outputs:
        if v not in defined:
            problems.append(f"graph output {v!r} is never computed")
    if problems:
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ModelError("malformed model:\n  " + "\n  ".join(problems[:10]) + more)
    try:
        return toposort(nodes, set(graph_inputs) | set(initializers))
    except GraphError as err:
        raise ModelError(f"malformed model: {err}") from None


def _fold_set(nodes) -> tuple:
    """(ids of the nodes to evaluate at import, the values needed at compile time): the
    nodes are Constant/Shape/Size and every node whose outputs a converter needs as a
    constant (transitively)."""
    needed, fold = set(), set()
    for n in reversed(nodes):
        if any(o in needed for o in n.outputs) or n.op_type in _ALWAYS_FOLDED:
            fold.add(id(n))
            if n.op_type not in ("Shape", "Size"):  # those read only the input's type
                needed.update(v for v in n.inputs if v)
        conv = get_converter(n.op_type)
        if conv is not None:
            needed.update(n.inputs[i] for i in conv.const_inputs
                          if i < len(n.inputs) and n.inputs[i])
    return fold, needed


def _infer(proto) -> dict:
    """ONNX shape inference (strict): value name -> (dtype, dims or None)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True,
                                                     data_prop=True)
    except Exception as err:  # InferenceError, ValidationError, ...
        raise ModelError(f"ONNX shape inference rejects the model: {err}") from None
    out = {}
    g = inferred.graph
    for vi in list(g.value_info) + list(g.output):
        if vi.type.HasField("tensor_type"):
            out[vi.name] = _static_type(vi, "value")
    return out


def _evaluate(proto_node, feeds: dict, opset_imports: dict) -> list:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(proto_node, opsets=opset_imports)
    names = [v for v in proto_node.input if v]
    return evaluator.run(None, {v: feeds[v] for v in names})


def _graph_inputs_upstream(value, producers, graph_inputs) -> list:
    seen, stack, found = set(), [value], []
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        if v in graph_inputs:
            found.append(v)
        elif v in producers:
            stack.extend(i for i in producers[v].inputs if i)
    return sorted(found)


def from_onnx(model, input_shapes: dict | None = None, constants: dict | None = None) -> Graph:
    """Import an ONNX model (ModelProto, bytes or path) as a ``Graph`` with static shapes.

    ``input_shapes`` fixes the shapes of inputs with symbolic dimensions (``{"x": (1, 3, 224,
    224)}``); ``constants`` turns graph inputs into compile-time constants (their values),
    e.g. a Reshape target fed as an input. See the module docstring for the errors.
    """
    from onnx import numpy_helper

    proto = load_model(model)
    opset = model_opset(proto)
    g = proto.graph
    try:
        consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    except Exception as err:
        raise ModelError(f"cannot read the model's initializers ({err})") from None
    declared = {vi.name: vi for vi in g.input}
    constants = {k: np.asarray(v) for k, v in (constants or {}).items()}
    input_shapes = {k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}
    for key, what in ((constants, "constants"), (input_shapes, "input_shapes")):
        for name in key:
            if name not in declared:
                raise ModelError(f"{what} names {name!r}, which is not a graph input "
                                 f"(inputs: {', '.join(map(repr, declared))})")
    inputs = [v for v in declared if v not in consts and v not in constants]
    outputs = [vi.name for vi in g.output]
    nodes, protos = _nodes(g)
    order = _check_structure(nodes, list(declared), consts, outputs)

    # 1. what must be folded, and is everything else convertible?
    fold, needed = _fold_set(order)
    fed = sorted(v for v in needed if v in inputs)
    if fed:
        raise DynamicShapeError(
            f"the graph input(s) {', '.join(map(repr, fed))} must be known at compile time "
            "(they give a shape, axes or sizes); pass their values with constants=", fed)
    unsupported: dict = {}
    for n in order:
        if id(n) not in fold and get_converter(n.op_type) is None:
            unsupported.setdefault(n.op_type, []).append(n.name)
    if unsupported:
        raise UnsupportedOpError(unsupported)

    # 2. static input types; bound constants take the declared dtype
    types = _input_types(inputs, declared, input_shapes)
    for name, value in constants.items():
        dtype, _ = _static_type(declared[name], "input")
        consts[name] = value.astype(dtype) if dtype in np.sctypeDict else value
    inferred = _infer(_bound_model(proto, [protos[id(n)] for n in order], types, consts,
                                   constants))
    types.update({name: TensorType(arr.shape, arr.dtype) for name, arr in consts.items()})

    # 3. fold, and type every other node by converting it once
    kept = _fold_and_convert(order, fold, protos, consts, types, inferred, opset,
                             {(o.domain or ""): o.version for o in proto.opset_import}, inputs)
    made = {v for n in kept for v in n.outputs if v}
    used = {v for n in kept for v in n.inputs if v} | set(outputs)
    initializers = {k: v for k, v in consts.items() if k in used}
    values = {k: t for k, t in types.items() if k in used or k in made or k in inputs}
    return Graph(kept, inputs, outputs, values, initializers, name=g.name or "graph",
                 opset=opset).validate()


def _input_types(inputs, declared, input_shapes) -> dict:
    types, dynamic, shown = {}, [], []
    for name in inputs:
        dtype, dims = _static_type(declared[name], "input")
        if name in input_shapes:
            dims = list(input_shapes[name])
        if dims is None or any(d is None or d < 0 for d in dims):
            dim_protos = declared[name].type.tensor_type.shape.dim
            text = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                    for d in dim_protos]
            dynamic.append(name)
            shown.append(f"{name!r} {text if dims is not None else '(no shape)'}")
            continue
        types[name] = TensorType(dims, dtype)
    if dynamic:
        raise DynamicShapeError("tetune compiles static shapes; give these inputs a shape with "
                                "input_shapes={name: shape}: " + ", ".join(shown), dynamic)
    return types


def _bound_model(proto, nodes, types, consts, constants):
    """The model with its nodes in order, static input shapes and bound constants: what
    ONNX's shape inference runs on."""
    import onnx
    from onnx import numpy_helper

    spec = onnx.ModelProto()
    spec.CopyFrom(proto)
    del spec.graph.node[:]
    spec.graph.node.extend(nodes)
    for vi in spec.graph.input:
        if vi.name in types:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for d in types[vi.name].shape:
                dims.add().dim_value = d
    for name in constants:
        spec.graph.initializer.append(numpy_helper.from_array(consts[name], name))
    return spec


def _fold_and_convert(order, fold, protos, consts, types, inferred, opset, opset_imports,
                      inputs) -> list:
    """Evaluate the nodes in ``fold`` (their outputs join ``consts``); convert the others
    to te on placeholders to type their outputs. Returns the nodes kept."""
    import te

    producers = {v: n for n in order for v in n.outputs if v}
    placeholders: dict = {}

    def tensor_of(value):
        if value not in placeholders:
            ty = types[value]
            placeholders[value] = te.placeholder(
                ty.shape, te_dtype(ty.dtype, f"value {value!r}"), name="v")
        return placeholders[value]

    kept = []
    for n in order:
        if id(n) in fold:
            _fold(n, protos[id(n)], consts, types, opset_imports, producers, inputs)
            continue
        kept.append(n)
        outs = convert_node(n, opset, consts.get, types.__getitem__, tensor_of)
        for value, t in zip(n.outputs, outs):
            if value:
                types[value] = _checked_type(n, value, t, inferred.get(value))
    return kept


def _fold(n, proto_node, consts, types, opset_imports, producers, graph_inputs):
    if n.op_type in ("Shape", "Size"):
        shape = list(types[n.inputs[0]].shape)
        if n.op_type == "Size":
            value = np.array(int(np.prod(shape, dtype=np.int64)), np.int64)
        else:
            start, end = int(n.attrs.get("start", 0)), n.attrs.get("end", None)
            value = np.array(shape[start:None if end is None else int(end)], np.int64)
        results = [value]
    else:
        for i, v in enumerate(n.inputs):
            if v and v not in consts:
                upstream = _graph_inputs_upstream(v, producers, graph_inputs)
                raise DynamicShapeError(
                    f"{n.op_type} node {n.name!r}: input {i} ({v!r}) must be known at compile "
                    f"time (it feeds a shape or axis), but it depends on the graph input(s) "
                    f"{', '.join(map(repr, upstream))}; pass their values with constants=",
                    upstream)
        try:
            results = _evaluate(proto_node, consts, opset_imports)
        except Exception as err:
            raise ConversionError(f"{n.op_type} node {n.name!r}: evaluating it at compile "
                                  f"time failed ({type(err).__name__}: {err})") from None
    for value, arr in zip(n.outputs, results):
        if value:
            arr = np.asarray(arr)
            consts[value] = arr
            types[value] = TensorType(arr.shape, arr.dtype)


def _checked_type(node, value, t, inferred) -> TensorType:
    from te import arith

    dims = [arith.const_int(d) for d in t.shape]
    if any(d is None for d in dims):
        raise ConversionError(f"{node.op_type} node {node.name!r}: output {value!r} has the "
                              f"symbolic shape {t.shape}")
    ty = TensorType(dims, t.dtype)
    if inferred is not None:
        dtype, shape = inferred
        if dtype != ty.dtype or (shape is not None and None not in shape
                                 and list(shape) != list(ty.shape)):
            want = f"{dtype}[{','.join('?' if d is None else str(d) for d in shape or [])}]"
            raise ConversionError(f"{node.op_type} node {node.name!r}: tetune computes {ty} "
                                  f"for output {value!r} but ONNX shape inference says {want}")
    return ty

"""The compiled artifact: a directory that ``GraphModule.save`` writes and ``graph.load``
reads, without pickle::

    model.tetune/
      manifest.json     format version, target, the graph (IR as JSON), kernels, steps
      weights.npz       every constant array (numpy's own format, read allow_pickle=False)
      kernels/*.py      the generated kernel sources, and their prologues (run once at
                        load: they make the packed copies of the weights the kernels read)

Loading imports the kernel sources (cpu kernels through the runtime's kernel cache, so a
warm cache means no numba compile) and needs neither the ONNX model nor te. The sources are
Python: load only artifacts you trust, as with any code you run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .errors import GraphError
from .executor import GraphModule, KernelCode, Step
from .ir import Graph, Node, TensorType

FORMAT = "tetune-graph-module"
VERSION = 2  # 2: kernels may have a prologue (arrays derived from constants at load)
READABLE = (1, 2)


# -- IR <-> JSON -----------------------------------------------------------------------------


def _encode_attr(value, arrays: dict):
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"ndarray": key}
    if isinstance(value, (list, tuple)):
        return {"tuple": [_encode_attr(v, arrays) for v in value]}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise GraphError(f"cannot save an attribute of type {type(value).__name__}: {value!r}")


def _decode_attr(value, arrays):
    if isinstance(value, dict):
        if "ndarray" in value:
            return arrays[value["ndarray"]]
        return tuple(_decode_attr(v, arrays) for v in value["tuple"])
    return value


def graph_to_json(graph: Graph, arrays: dict) -> dict:
    """The graph as JSON-able data; arrays (initializers, tensor attributes) go to
    ``arrays`` under generated keys (names stay in the JSON: they are data)."""
    inits = {}
    for name, arr in graph.initializers.items():
        key = f"w{len(arrays)}"
        arrays[key] = arr
        inits[name] = key
    return {
        "name": graph.name, "opset": graph.opset,
        "inputs": list(graph.inputs), "outputs": list(graph.outputs),
        "values": {k: [list(t.shape), t.dtype] for k, t in graph.values.items()},
        "initializers": inits,
        "nodes": [{"op_type": n.op_type, "name": n.name, "inputs": list(n.inputs),
                   "outputs": list(n.outputs),
                   "attrs": {k: _encode_attr(v, arrays) for k, v in n.attrs.items()},
                   "subgraph": None if n.subgraph is None else graph_to_json(n.subgraph,
                                                                            arrays)}
                  for n in graph.nodes],
    }


def graph_from_json(data: dict, arrays) -> Graph:
    nodes = [Node(n["op_type"], n["name"], n["inputs"], n["outputs"],
                  {k: _decode_attr(v, arrays) for k, v in n["attrs"].items()},
                  None if n["subgraph"] is None else graph_from_json(n["subgraph"], arrays))
             for n in data["nodes"]]
    return Graph(nodes, data["inputs"], data["outputs"],
                 {k: TensorType(shape, dtype) for k, (shape, dtype) in data["values"].items()},
                 {k: arrays[key] for k, key in data["initializers"].items()},
                 name=data["name"], opset=int(data["opset"]))


# -- save / load -----------------------------------------------------------------------------


def save(module: GraphModule, path) -> Path:
    """Write ``module`` to the directory ``path`` (created; existing files are replaced)."""
    root = Path(path)
    (root / "kernels").mkdir(parents=True, exist_ok=True)
    arrays: dict = {}
    kernels = []
    for k, code in enumerate(module.codes):
        file = f"kernels/{k:03d}_{code.name}.py"  # code.name is a sanitized identifier
        (root / file).write_text(code.source, encoding="utf-8")
        entry = {"name": code.name, "entry": code.entry, "target": code.target,
                 "file": file, "workload": _encode_attr(code.workload, arrays)
                 if code.workload is not None else None}
        if code.prologue is not None:
            pro = code.prologue
            pro_file = f"kernels/{k:03d}_{pro.name}.py"
            (root / pro_file).write_text(pro.source, encoding="utf-8")
            entry["prologue"] = {"name": pro.name, "entry": pro.entry, "file": pro_file,
                                 "inputs": list(code.prologue_inputs),
                                 "prepared": [[list(shape), dtype]
                                              for shape, dtype in code.prepared]}
        kernels.append(entry)
    manifest = {
        "format": FORMAT, "version": VERSION, "target": module.target,
        "graph": graph_to_json(module.graph, arrays),
        "kernels": kernels,
        "steps": [{"node": s.node, "op_type": s.op_type, "kernel": s.code,
                   "args": list(s.args)} for s in module.steps],
        "untuned": [_encode_attr(w, arrays) for w in module.untuned],
    }
    tmp = root / "weights.npz.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, root / "weights.npz")
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return root


def load(path) -> GraphModule:
    """Read an artifact written by ``save``; errors name the file at fault."""
    root = Path(path)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise GraphError(f"{str(root)!r} is not a tetune artifact (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise GraphError(f"{manifest_path}: unreadable ({err})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") not in READABLE:
        raise GraphError(f"{manifest_path}: format {manifest.get('format')!r} version "
                         f"{manifest.get('version')!r}, expected {FORMAT!r} {VERSION}")
    try:
        with np.load(root / "weights.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise GraphError(f"{root / 'weights.npz'}: unreadable ({err})") from None
    try:
        graph = graph_from_json(manifest["graph"], arrays).validate()
        codes = []
        for k in manifest["kernels"]:
            workload = _decode_attr(k["workload"], arrays) if k["workload"] is not None \
                else None
            code = _read_kernel(root, k, k["target"], workload)
            pro = k.get("prologue")
            if pro is not None:
                code.prologue = _read_kernel(root, pro, k["target"])
                code.prologue_inputs = tuple(int(i) for i in pro["inputs"])
                code.prepared = tuple((tuple(int(d) for d in shape), str(dtype))
                                      for shape, dtype in pro["prepared"])
            codes.append(code)
        steps = [Step(s["node"], s["op_type"], int(s["kernel"]), tuple(s["args"]))
                 for s in manifest["steps"]]
        untuned = tuple(_decode_attr(w, arrays) for w in manifest.get("untuned", []))
    except (KeyError, TypeError, OSError) as err:
        raise GraphError(f"{root}: damaged artifact ({type(err).__name__}: {err})") from None
    return GraphModule(graph, codes, steps, manifest["target"], untuned)


def _read_kernel(root: Path, entry: dict, target: str, workload=None) -> KernelCode:
    source = (root / entry["file"]).read_text(encoding="utf-8")
    fn = _load_kernel(source, entry["name"], entry["entry"], target)
    return KernelCode(entry["name"], source, target, entry["entry"], fn, workload)


def _load_kernel(source: str, name: str, entry: str, target: str):
    kind = str(target).split()[0] if target else "cpu"
    if kind == "python":
        import hashlib
        import linecache

        filename = f"<tetune-python {name} {hashlib.sha256(source.encode()).hexdigest()[:12]}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace: dict = {"__name__": f"tetune_kernel_{name}"}
        exec(compile(source, filename, "exec"), namespace)
        return namespace[entry]
    if kind in ("cpu", "llvm"):
        from runtime import kernel_cache
        from runtime.codegen_cpu import _fastmath_hash

        # the same cache key runtime.build uses, so a warm cache skips the numba compile
        flags_key = f"fastmath.py={_fastmath_hash()}" if "runtime.fastmath" in source else ""
        module = kernel_cache.load_module(source, name, flags_key)
        return getattr(module, entry)
    raise GraphError(f"kernel {name!r}: cannot load kernels of target {target!r}")

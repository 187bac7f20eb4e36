"""Operators of ResNet-50 and BERT-base on the cpu target, each built with its *default*
schedule (``schedule_for``, no tuning), against numpy, onnxruntime (a single-node model made
with onnx.helper, weights as initializers, the same thread count) and torch when it is
installed, measured in turns in one process.

    python benchmarks/ops.py [--only softmax,layernorm,conv] [--repeat 7] [--quick]
                             [--all-conv] [--threads 2] [--cache-dir DIR]

Rows (``--only`` takes row names or the groups conv, dense, bmm, norm, elemwise, pool):

``conv_*``        ResNet-50 (v1.5, batch 1, 224x224) conv2d layers, NCHW: a representative
                  subset by default (the stem, a 3x3 and 1x1s of each size), all 23 distinct
                  layers with ``--all-conv``
``dense_*``       BERT-base projections, seq 128: [128,768] x [768,768] and x [3072,768]
                  (``dense(x, W)`` = x W^T, the ONNX Gemm transB=1)
``bmm_attn``      attention scores, batch_matmul [12,128,64] x [12,64,128]
``softmax``       [12*128, 128] over the last axis
``layernorm``     [128, 768] with gamma and beta
``bn_relu``       batch_norm_inference + relu of [1,256,56,56] (the generic schedule)
``gelu``          [128, 3072], the exact (erf) form
``dense_gelu``    dense [128,768] x [3072,768] + bias + gelu, fused by the default schedule
``maxpool``       ResNet's 3x3 stride-2 max pool of [1,64,112,112]
``gap``           ResNet's global average pool of [1,2048,7,7]

The issue's targets, checked at the end of a run: fused elementwise / normalization rows
(softmax, layernorm, bn_relu, gelu; dense_gelu is judged with the dense rows) at least 5x
numpy and 1.0x onnxruntime; default conv2d and dense within 2x of onnxruntime (ratio >= 0.5).

numpy has no convolution: its conv2d is an im2col (``sliding_window_view``) and one
``tensordot``, the usual numpy formulation. Its gelu uses scipy's erf when scipy is there.
Ratios are peer time / tetune time (> 1: tetune is faster); times are medians of interleaved
rounds (peer, peer, ..., tetune), each round timing a loop of calls of >= 50 ms (``--quick``:
fewer, shorter rounds, for a smoke test). tetune is timed through its ``Module`` call. The
figures are only meaningful on a quiet machine: the script reports how busy the CPUs were
before and after.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np

import te
from benchmarks import harness
from runtime import build  # sets NUMBA_SLP_VECTORIZE before numba loads
from schedules import schedule_for
from te import ops

# ResNet-50 v1.5 conv layers at batch 1: (name, in channels, input size, out channels, kernel,
# stride, padding); the stride-2 3x3 layers are v1.5's (torchvision's) downsampling.
RESNET50_CONVS = [
    ("conv_stem_7x7s2", 3, 224, 64, 7, 2, 3),
    ("conv_l1_1x1_64_64", 64, 56, 64, 1, 1, 0),
    ("conv_l1_3x3_64", 64, 56, 64, 3, 1, 1),
    ("conv_l1_1x1_64_256", 64, 56, 256, 1, 1, 0),
    ("conv_l1_1x1_256_64", 256, 56, 64, 1, 1, 0),
    ("conv_l2_1x1_256_128", 256, 56, 128, 1, 1, 0),
    ("conv_l2_3x3_128s2", 128, 56, 128, 3, 2, 1),
    ("conv_l2_down_256_512s2", 256, 56, 512, 1, 2, 0),
    ("conv_l2_1x1_128_512", 128, 28, 512, 1, 1, 0),
    ("conv_l2_1x1_512_128", 512, 28, 128, 1, 1, 0),
    ("conv_l2_3x3_128", 128, 28, 128, 3, 1, 1),
    ("conv_l3_1x1_512_256", 512, 28, 256, 1, 1, 0),
    ("conv_l3_3x3_256s2", 256, 28, 256, 3, 2, 1),
    ("conv_l3_down_512_1024s2", 512, 28, 1024, 1, 2, 0),
    ("conv_l3_1x1_256_1024", 256, 14, 1024, 1, 1, 0),
    ("conv_l3_1x1_1024_256", 1024, 14, 256, 1, 1, 0),
    ("conv_l3_3x3_256", 256, 14, 256, 3, 1, 1),
    ("conv_l4_1x1_1024_512", 1024, 14, 512, 1, 1, 0),
    ("conv_l4_3x3_512s2", 512, 14, 512, 3, 2, 1),
    ("conv_l4_down_1024_2048s2", 1024, 14, 2048, 1, 2, 0),
    ("conv_l4_1x1_512_2048", 512, 7, 2048, 1, 1, 0),
    ("conv_l4_1x1_2048_512", 2048, 7, 512, 1, 1, 0),
    ("conv_l4_3x3_512", 512, 7, 512, 3, 1, 1),
]
CONV_SUBSET = ["conv_stem_7x7s2", "conv_l1_3x3_64", "conv_l2_1x1_128_512", "conv_l3_3x3_256",
               "conv_l4_1x1_2048_512"]
QUICK_CONVS = ["conv_l1_3x3_64"]

# Rows whose targets are "fused elementwise / normalisation": >= 5x numpy, >= 1x onnxruntime.
FUSED = {"softmax", "layernorm", "gelu", "bn_relu"}
# Rows that must be within 2x of onnxruntime.
WITHIN_2X = ("conv_", "dense_", "bmm_")


@dataclass
class Row:
    """One benchmark row: the op on placeholders, its inputs and its peers."""

    name: str
    group: str
    make: object  # () -> (input placeholders, output tensor)
    inputs: list  # arrays, in the placeholders' order
    flop: float = 0.0  # 0: memory-bound, report GB/s
    onnx_nodes: list = field(default_factory=list)  # [(op_type, inputs, outputs, attrs)]
    initializers: dict = field(default_factory=dict)  # name -> array (after input "x*")
    feeds: int = 1  # how many leading inputs are graph inputs; the rest are initializers
    numpy: object = None  # (*inputs) -> array
    torch: object = None  # (torch module, *tensors) -> tensor
    tolerance: float = 1e-4


def _rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _erf(x):
    try:
        from scipy.special import erf
    except ImportError:  # numpy alone: the tanh form (a little cheaper than erf)
        return np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3) * math.sqrt(2))
    return erf(x)


def _np_gelu(x):
    return 0.5 * x * (1.0 + _erf(x * np.float32(math.sqrt(0.5))))


def _np_conv2d(x, w, stride, pad):
    from numpy.lib.stride_tricks import sliding_window_view

    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    k = w.shape[2]
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def _conv_row(rng, name, c, hw, oc, k, stride, pad):
    x, w = _rand(rng, 1, c, hw, hw), _rand(rng, oc, c, k, k, scale=1 / math.sqrt(c * k * k))
    out_hw = (hw + 2 * pad - k) // stride + 1
    return Row(
        name, "conv",
        _maker([x.shape, w.shape], lambda X, W: ops.conv2d(
            X, W, stride=stride, padding=pad)),
        [x, w], flop=2.0 * oc * out_hw * out_hw * c * k * k,
        onnx_nodes=[("Conv", ["x0", "w"], ["y"], {"kernel_shape": [k, k], "strides": [stride] * 2,
                                                     "pads": [pad] * 4})],
        initializers={"w": w},
        numpy=lambda x, w: _np_conv2d(x, w, stride, pad),
        torch=lambda t, x, w: t.nn.functional.conv2d(x, w, stride=stride, padding=pad))


def _maker(shapes, fn):
    """``make`` of a row: placeholders of ``shapes`` (fixed now) and ``fn`` applied to them."""
    shapes = [tuple(sh) for sh in shapes]

    def make():
        phs = [te.placeholder(sh, name=f"in{n}") for n, sh in enumerate(shapes)]
        return phs, fn(*phs)

    return make


def rows(rng, conv_names) -> list[Row]:
    out = [_conv_row(rng, *spec) for spec in RESNET50_CONVS if spec[0] in conv_names]
    for n_out in (768, 3072):
        x, w = _rand(rng, 128, 768), _rand(rng, n_out, 768, scale=1 / math.sqrt(768))
        out.append(Row(
            f"dense_768x{n_out}", "dense",
            _maker([x.shape, w.shape], ops.dense), [x, w],
            flop=2.0 * 128 * 768 * n_out,
            onnx_nodes=[("Gemm", ["x0", "w"], ["y"], {"transB": 1})], initializers={"w": w},
            numpy=lambda x, w: x @ w.T, torch=lambda t, x, w: t.nn.functional.linear(x, w)))
    a, b = _rand(rng, 12, 128, 64), _rand(rng, 12, 64, 128)
    out.append(Row(
        "bmm_attn", "bmm", _maker([a.shape, b.shape], ops.batch_matmul), [a, b],
        flop=2.0 * 12 * 128 * 128 * 64, onnx_nodes=[("MatMul", ["x0", "x1"], ["y"], {})],
        feeds=2, numpy=np.matmul, torch=lambda t, a, b: t.matmul(a, b)))
    x = _rand(rng, 12 * 128, 128)
    out.append(Row(
        "softmax", "norm", _maker([x.shape], ops.softmax), [x],
        onnx_nodes=[("Softmax", ["x0"], ["y"], {"axis": -1})],
        numpy=lambda x: _np_softmax(x), torch=lambda t, x: t.softmax(x, -1)))
    x, g, b = _rand(rng, 128, 768), _rand(rng, 768), _rand(rng, 768)
    out.append(Row(
        "layernorm", "norm",
        _maker([x.shape, g.shape, b.shape], ops.layer_norm), [x, g, b],
        onnx_nodes=[("LayerNormalization", ["x0", "g", "b"], ["y"], {"axis": -1,
                                                                       "epsilon": 1e-5})],
        initializers={"g": g, "b": b}, numpy=_np_layer_norm,
        torch=lambda t, x, g, b: t.nn.functional.layer_norm(x, (768,), g, b)))
    x = _rand(rng, 1, 256, 56, 56)
    stats = [_rand(rng, 256), np.abs(_rand(rng, 256)) + 0.5, _rand(rng, 256), _rand(rng, 256)]
    out.append(Row(
        "bn_relu", "norm",
        _maker([x.shape] + [(256,)] * 4, lambda X, M, V, G, B: ops.relu(
            ops.batch_norm_inference(X, M, V, G, B))), [x] + stats,
        onnx_nodes=[("BatchNormalization", ["x0", "g", "b", "m", "v"], ["h"], {}),
                    ("Relu", ["h"], ["y"], {})],
        initializers=dict(zip("mvgb", stats)), numpy=_np_bn_relu,
        torch=lambda t, x, m, v, g, b: t.relu(t.nn.functional.batch_norm(x, m, v, g, b))))
    x = _rand(rng, 128, 3072)
    out.append(Row(
        "gelu", "elemwise", _maker([x.shape], ops.gelu), [x],
        onnx_nodes=[("Gelu", ["x0"], ["y"], {})], numpy=_np_gelu,
        torch=lambda t, x: t.nn.functional.gelu(x)))
    x, w = _rand(rng, 128, 768), _rand(rng, 3072, 768, scale=1 / math.sqrt(768))
    bias = _rand(rng, 3072)
    out.append(Row(
        "dense_gelu", "dense",
        _maker([x.shape, w.shape, bias.shape],
                              lambda X, W, B: ops.gelu(ops.dense(X, W, B))), [x, w, bias],
        flop=2.0 * 128 * 768 * 3072,
        onnx_nodes=[("Gemm", ["x0", "w", "bias"], ["h"], {"transB": 1}),
                    ("Gelu", ["h"], ["y"], {})],
        initializers={"w": w, "bias": bias}, numpy=lambda x, w, b: _np_gelu(x @ w.T + b),
        torch=lambda t, x, w, b: t.nn.functional.gelu(t.nn.functional.linear(x, w, b))))
    x = _rand(rng, 1, 64, 112, 112)
    out.append(Row(
        "maxpool", "pool",
        _maker([x.shape], lambda X: ops.max_pool2d(X, 3, 2, 1)), [x],
        onnx_nodes=[("MaxPool", ["x0"], ["y"], {"kernel_shape": [3, 3], "strides": [2, 2],
                                                    "pads": [1, 1, 1, 1]})],
        numpy=_np_maxpool, torch=lambda t, x: t.nn.functional.max_pool2d(x, 3, 2, 1)))
    x = _rand(rng, 1, 2048, 7, 7)
    out.append(Row(
        "gap", "pool", _maker([x.shape], ops.global_avg_pool2d), [x],
        onnx_nodes=[("GlobalAveragePool", ["x0"], ["y"], {})],
        numpy=lambda x: x.mean((2, 3), keepdims=True),
        torch=lambda t, x: t.nn.functional.adaptive_avg_pool2d(x, 1)))
    return out


def _np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_layer_norm(x, g, b):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-5) * g + b


def _np_bn_relu(x, m, v, g, b):
    c = (slice(None), None, None)
    return np.maximum((x - m[c]) / np.sqrt(v[c] + 1e-5) * g[c] + b[c], 0)


def _np_maxpool(x):
    from numpy.lib.stride_tricks import sliding_window_view

    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    return sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::2, ::2].max((4, 5))


def ort_session(row: Row, threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    feeds = [helper.make_tensor_value_info(f"x{n}", TensorProto.FLOAT, a.shape)
             for n, a in enumerate(row.inputs[:row.feeds])]
    nodes = [helper.make_node(op, ins, outs, **attrs) for op, ins, outs, attrs in row.onnx_nodes]
    graph = helper.make_graph(
        nodes, row.name, feeds, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(a, k) for k, a in row.initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9  # what onnxruntime 1.2x reads
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    feed = {f"x{n}": a for n, a in enumerate(row.inputs[:row.feeds])}
    return lambda: sess.run(None, feed)[0]


def measure(row: Row, args, torch):
    """Build, check against onnxruntime, time in turns; returns a result dict or None."""
    phs, out = row.make()
    t0 = time.perf_counter()
    mod = build(schedule_for(out, "cpu"), phs + [out], target="cpu")
    cold = time.perf_counter() - t0
    result = np.empty(tuple(int(d) for d in out.shape), np.float32)
    ort_fn = ort_session(row, args.threads)
    want = ort_fn()
    mod(*row.inputs, result)
    err = float(np.abs(result - want).max() / max(np.abs(want).max(), 1e-30))
    if not err < row.tolerance:
        print(f"{row.name}: WRONG RESULT (relative error {err:.2e} against onnxruntime)")
        return None
    peers = {"numpy": lambda: row.numpy(*row.inputs), "onnxruntime": ort_fn}
    if torch is not None and row.torch is not None:
        tensors = [torch.from_numpy(a) for a in row.inputs]
        peers["torch"] = lambda: row.torch(torch, *tensors)
    med, mine = interleaved(peers, lambda: mod(*row.inputs, result), args)
    nbytes = sum(a.nbytes for a in row.inputs) + result.nbytes
    return {"row": row, "t": mine, "peers": med, "cold": cold, "bytes": nbytes,
            "parallel": mod.build_info.get("parallel")}


def interleaved(peers, mine, args):
    if args.quick:
        return harness.interleaved(peers, mine, args.repeat, pause=0.1, min_seconds=0.01)
    return harness.interleaved(peers, mine, args.repeat, pause=0.2)


def report(res, peers_order):
    row, t = res["row"], res["t"]
    rate = (f"{row.flop / t / 1e9:7.1f} GFLOP/s" if row.flop
            else f"{res['bytes'] / t / 1e9:7.1f} GB/s   ")
    cols = "".join(f" {res['peers'][p] * 1e3:9.3f} {res['peers'][p] / t:6.2f}x"
                   if p in res["peers"] else f" {'-':>9s} {'-':>7s}" for p in peers_order)
    print(f"{row.name:26s} {t * 1e3:9.3f} {rate}{cols} {res['cold']:7.1f}")


def targets(results):
    """The issue's targets, one line per row they apply to."""
    lines = []
    for res in results:
        row, peers, t = res["row"], res["peers"], res["t"]
        ort = peers["onnxruntime"] / t
        if row.name in FUSED:
            ok = peers["numpy"] / t >= 5 and ort >= 1.0
            lines.append(f"  {row.name:24s} vs numpy {peers['numpy'] / t:5.2f}x (>= 5), vs "
                         f"onnxruntime {ort:5.2f}x (>= 1.0): {'met' if ok else 'NOT met'}")
        elif row.name.startswith(WITHIN_2X):
            lines.append(f"  {row.name:24s} vs onnxruntime {ort:5.2f}x (>= 0.5): "
                         f"{'met' if ort >= 0.5 else 'NOT met'}")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="",
                    help="comma-separated rows or groups (conv, dense, bmm, norm, elemwise, "
                         "pool); default: all")
    ap.add_argument("--repeat", type=int, default=7, help="interleaved rounds (median)")
    ap.add_argument("--cache-dir", default=None,
                    help="kernel cache (default: a new temporary dir, so builds are cold)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke test: one conv layer, 3 short rounds")
    ap.add_argument("--all-conv", action="store_true", help="all 23 distinct ResNet-50 convs")
    ap.add_argument("--threads", type=int, default=2, help="threads for every contender")
    args = ap.parse_args(argv)
    if args.quick and args.repeat == 7:
        args.repeat = 3

    import numba
    import onnxruntime

    from runtime.timer import set_num_threads

    set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    harness.use_cache_dir(args.cache_dir)
    try:
        import torch  # never a dependency; compared when it is installed

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    convs = ([c[0] for c in RESNET50_CONVS] if args.all_conv
             else QUICK_CONVS if args.quick else CONV_SUBSET)
    table = rows(np.random.default_rng(0), convs)
    wanted = harness.selected(args.only)
    if wanted:
        table = [r for r in table if r.name in wanted or r.group in wanted]
    peers_order = ["numpy", "onnxruntime"] + (["torch"] if torch is not None else [])
    busy = harness.busy_now()
    print(f"tetune default schedules (schedule_for, cpu) vs {', '.join(peers_order)}; float32; "
          f"{args.threads} threads; numba {numba.__version__}, onnxruntime "
          f"{onnxruntime.__version__}, numpy {np.__version__}; busy cores before: {busy:.0%}")
    harness.warn_if_busy(busy)
    head = f"{'op':26s} {'tetune ms':>9s} {'rate':>15s}" + "".join(
        f" {p[:9] + ' ms':>9s} {'ratio':>7s}" for p in peers_order) + f" {'build s':>7s}"
    print(head)
    print("-" * len(head))
    results = []
    for row in table:
        res = measure(row, args, torch)
        if res is not None:
            results.append(res)
            report(res, peers_order)
    print("ratio = peer time / tetune time (> 1: tetune is faster)")
    lines = targets(results)
    if lines:
        print("targets (issue 4):")
        print("\n".join(lines))
    harness.report_busy_after()


if __name__ == "__main__":
    main()

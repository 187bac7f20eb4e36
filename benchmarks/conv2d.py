"""conv2d of ResNet's first 3x3 layer (1x64x56x56 input, 64 filters 3x3, stride 1, pad 1;
231 MFLOP) on the cpu target, against onnxruntime (a single Conv node built with
onnx.helper, 2 threads) and torch when it is installed, measured in turns in one process.

    python benchmarks/conv2d.py [--only nchw,nchwc,nchwc_full,library] [--repeat 9] [--no-warm]

Schedules:

``nchw``        the data as given: a padded copy of the input (its own stage), then the
                convolution with a register tile of 4 output channels x one output row (56
                columns: 3.5 zmm registers per channel).
``nchwc``       the blocked layouts of shared/research/numba_codegen.md, section 3: input
                ``[C/16, H+2, W+2, 16]`` (padded), weights ``[OC/32, C/16, 3, 3, 16, 32]``,
                output ``[OC/32, H, W, 32]``; a register tile of 7 output columns x 32 output
                channels (14 zmm accumulators).  Timed on data already in those layouts, as in
                a network whose layout pass keeps activations blocked between layers.
``nchwc_full``  the same kernel with the layout changes inside it (pack and pad the NCHW
                input, unpack the output to NCHW), so it takes and returns what onnxruntime
                does.
``library``     ``te.ops.conv2d`` with its default cpu schedule (``schedules/cpu/conv2d.py``):
                NCHW in and out, padded input rows computed per parallel row block, an
                8 ow x 32 oc register tile; unlike the others it packs the weights inside
                the kernel, on every call.

Weights are packed once, outside the timing, for every contender but ``library``
(onnxruntime pre-packs its initializers when the session is created).  Ratios are
onnxruntime time / tetune time, so > 1 means tetune is faster.  Run from the repository
root.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import te  # noqa: E402
from benchmarks import harness  # noqa: E402
from runtime import build  # noqa: E402
from schedules import create_schedule, schedule_for  # noqa: E402

N, C, H, W, OC, KH, KW = 1, 64, 56, 56, 64, 3, 3
FLOP = 2.0 * N * OC * H * W * C * KH * KW
IC_BLOCK, OC_BLOCK, OW_TILE = 16, 32, 7


def nchw(oc_tile=4, ow_tile=56):
    X = te.placeholder((C, H, W), name="X")
    Wt = te.placeholder((OC, C, KH, KW), name="Wt")
    pad = te.compute((C, H + 2, W + 2), lambda c, h, w: te.if_then_else(
        te.all(h >= 1, h <= H, w >= 1, w <= W), X[c, h - 1, w - 1], 0.0), name="pad")
    ic = te.reduce_axis((0, C), name="ic")
    kh = te.reduce_axis((0, KH), name="kh")
    kw = te.reduce_axis((0, KW), name="kw")
    Y = te.compute((OC, H, W), lambda o, h, w: te.sum(
        pad[ic, h + kh, w + kw] * Wt[o, ic, kh, kw], axis=[ic, kh, kw]), name="Y")
    s = create_schedule(Y.op)
    YL = s.cache_write(Y, "local")
    o, h, w = s[Y].op.axis
    oo, oi = s[Y].split(o, factor=oc_tile)
    wo, wi = s[Y].split(w, factor=ow_tile)
    s[Y].reorder(oo, h, wo, oi, wi)
    s[YL].compute_at(s[Y], wo)
    ol, hl, wl = s[YL].op.axis
    icl, khl, kwl = s[YL].op.reduce_axis
    s[YL].reorder(icl, khl, kwl, hl, ol, wl)
    s[YL].unroll(ol)
    s[YL].vectorize(wl)
    s[Y].unroll(oi)
    s[Y].vectorize(wi)
    fused = s[Y].fuse(oo, h)
    s[Y].parallel(fused)
    c, hh, ww = s[pad].op.axis
    s[pad].parallel(c)
    s[pad].vectorize(ww)
    return s, [X, Wt, Y]


def _nchwc_conv(Xc, Wc):
    icb = te.reduce_axis((0, C // IC_BLOCK), name="icb")
    kh = te.reduce_axis((0, KH), name="kh")
    kw = te.reduce_axis((0, KW), name="kw")
    ic = te.reduce_axis((0, IC_BLOCK), name="ic")
    return te.compute(
        (OC // OC_BLOCK, H, W, OC_BLOCK),
        lambda ob, h, w, oc: te.sum(Xc[icb, h + kh, w + kw, ic] * Wc[ob, icb, kh, kw, ic, oc],
                                    axis=[icb, kh, kw, ic]), name="Yc")


def _schedule_nchwc(s, Yc):
    YL = s.cache_write(Yc, "local")
    ob, h, w, oc = s[Yc].op.axis
    wo, wi = s[Yc].split(w, factor=OW_TILE)
    s[Yc].reorder(ob, h, wo, wi, oc)
    s[YL].compute_at(s[Yc], wo)
    _, _, wl, ocl = s[YL].op.axis
    icb, kh, kw, ic = s[YL].op.reduce_axis
    s[YL].reorder(icb, kh, kw, ic, wl, ocl)
    s[YL].unroll(wl)
    s[YL].vectorize(ocl)
    s[Yc].unroll(wi)
    s[Yc].vectorize(oc)
    return s[Yc].fuse(ob, h)


def nchwc():
    Xc = te.placeholder((C // IC_BLOCK, H + 2, W + 2, IC_BLOCK), name="Xc")
    Wc = te.placeholder((OC // OC_BLOCK, C // IC_BLOCK, KH, KW, IC_BLOCK, OC_BLOCK), name="Wc")
    Yc = _nchwc_conv(Xc, Wc)
    s = create_schedule(Yc.op)
    s[Yc].parallel(_schedule_nchwc(s, Yc))
    return s, [Xc, Wc, Yc]


def nchwc_full():
    X = te.placeholder((C, H, W), name="X")
    Wc = te.placeholder((OC // OC_BLOCK, C // IC_BLOCK, KH, KW, IC_BLOCK, OC_BLOCK), name="Wc")
    Xc = te.compute((C // IC_BLOCK, H + 2, W + 2, IC_BLOCK), lambda cb, h, w, c: te.if_then_else(
        te.all(h >= 1, h <= H, w >= 1, w <= W), X[cb * IC_BLOCK + c, h - 1, w - 1], 0.0),
        name="Xc")
    Yc = _nchwc_conv(Xc, Wc)
    Y = te.compute((OC, H, W), lambda o, h, w: Yc[o // OC_BLOCK, h, w, o % OC_BLOCK], name="Y")
    s = create_schedule(Y.op)
    fused = _schedule_nchwc(s, Yc)
    s[Yc].parallel(fused)
    cb, h, w, c = s[Xc].op.axis
    s[Xc].parallel(cb)
    s[Xc].vectorize(c)
    o, h, w = s[Y].op.axis
    s[Y].parallel(o)
    s[Y].vectorize(w)
    return s, [X, Wc, Y]


def library():
    """``te.ops.conv2d`` (NCHW, 4-D data) with its default cpu schedule
    (``schedules/cpu/conv2d.py``): packed weights and a 7-8 ow x 32 oc register tile."""
    X = te.placeholder((N, C, H, W), name="X")
    Wt = te.placeholder((OC, C, KH, KW), name="Wt")
    Y = te.ops.conv2d(X, Wt, padding=1)
    return schedule_for(Y, "cpu"), [X, Wt, Y]


SCHEDULES = {"nchw": nchw, "nchwc": nchwc, "nchwc_full": nchwc_full, "library": library,
             "nchw_8x28": lambda: nchw(8, 28), "nchw_2x56": lambda: nchw(2, 56)}
DEFAULT_SET = ["nchw", "nchwc", "nchwc_full", "library"]


def pack_input(x):
    """[1, C, H, W] -> padded [C/16, H+2, W+2, 16]."""
    xp = np.zeros((C, H + 2, W + 2), np.float32)
    xp[:, 1:-1, 1:-1] = x[0]
    return np.ascontiguousarray(xp.reshape(C // IC_BLOCK, IC_BLOCK, H + 2, W + 2)
                                .transpose(0, 2, 3, 1))


def pack_weights(w):
    """[OC, C, 3, 3] -> [OC/32, C/16, 3, 3, 16, 32]."""
    return np.ascontiguousarray(w.reshape(OC // OC_BLOCK, OC_BLOCK, C // IC_BLOCK, IC_BLOCK, KH, KW)
                                .transpose(0, 2, 4, 5, 3, 1))


def unpack_output(yc):
    return yc.transpose(0, 3, 1, 2).reshape(1, OC, H, W)


def ort_session(w, threads=2):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [N, C, H, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [N, OC, H, W])],
        initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def main(argv=None):
    ap = harness.parser(__doc__, SCHEDULES, DEFAULT_SET, repeat=9)
    ap.add_argument("--threads", type=int, default=2, help="threads for every contender")
    args = ap.parse_args(argv)

    import numba
    import onnxruntime

    from runtime.timer import set_num_threads

    set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    cache_dir = harness.use_cache_dir(args.cache_dir)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((OC, C, KH, KW)) / 24).astype(np.float32)
    sess = ort_session(w, args.threads)
    ref = sess.run(None, {"x": x})[0]
    ort_fn = lambda: sess.run(None, {"x": x})  # noqa: E731
    peers = {"onnxruntime": ort_fn}
    try:
        import torch  # never installed for this benchmark; used when present

        torch.set_num_threads(args.threads)
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        peers["torch"] = lambda: torch.nn.functional.conv2d(tx, tw, padding=1)
    except ImportError:
        pass

    xc, wc = pack_input(x), pack_weights(w)
    inputs = {"nchw": (x[0], w), "nchwc": (xc, wc), "nchwc_full": (x[0], wc), "library": (x, w),
              "nchw_8x28": (x[0], w), "nchw_2x56": (x[0], w)}
    busy = harness.busy_now()
    print(f"conv2d 1x{C}x{H}x{W}, {OC} filters {KH}x{KW}, pad 1 ({FLOP / 1e6:.0f} MFLOP) float32; "
          f"{args.threads} threads; onnxruntime {onnxruntime.__version__}, numba "
          f"{numba.__version__}; peers: {', '.join(peers)}; busy cores before: {busy:.0%}")
    harness.warn_if_busy(busy)
    header = (f"{'schedule':12s} {'ms':>7s} {'GFLOP/s':>8s} {'ORT ms':>7s} {'vs ORT':>7s}"
              + ("".join(f" {'vs ' + p:>9s}" for p in peers if p != "onnxruntime"))
              + f" {'cold build s':>12s} {'warm build s':>12s}  notes")
    print(header)
    print("-" * len(header))
    for name in harness.selected(args.only):
        s, targs = SCHEDULES[name]()
        t0 = time.perf_counter()
        mod = build(s, targs, target="cpu")
        cold = time.perf_counter() - t0
        ins = inputs[name]
        out_shape = tuple(int(d) for d in mod.func.params[-1].shape)
        out = np.full(out_shape, np.nan, np.float32)
        mod(*ins, out)
        got = unpack_output(out) if name == "nchwc" else out.reshape(ref.shape)
        err = float(np.abs(got - ref).max() / np.abs(ref).max())
        if not err < 1e-4:
            print(f"{name}: WRONG RESULT (relative error {err:.2e})")
            continue
        med, t_k = harness.interleaved(peers, lambda: mod.kernel(*ins, out), args.repeat,
                                       pause=0.3)  # peer thread pools spin after a call
        warm = (None if args.no_warm
                else harness.warm_build_seconds("benchmarks.conv2d", name, (), cache_dir))
        stats = mod.vector_stats()
        notes = (f"zmm FMA {stats['zmm_fma']}, tile {'+'.join(mod.build_info['register_tiles'])}"
                 + ("" if warm is None or warm[2] else ", warm build MISSED the cache"))
        ratios = "".join(f" {med[p] / t_k:8.2f}x" for p in peers if p != "onnxruntime")
        print(f"{name:12s} {t_k * 1e3:7.3f} {FLOP / t_k / 1e9:8.1f} {med['onnxruntime'] * 1e3:7.3f} "
              f"{med['onnxruntime'] / t_k:6.2f}x{ratios} {cold:12.2f} "
              f"{'-' if warm is None else f'{warm[1]:.2f}':>12s}  {notes}", flush=True)
    harness.report_busy_after()
    print(f"(warm build = build() in a fresh process with the kernel cache filled; kernel cache: "
          f"{cache_dir})")


if __name__ == "__main__":
    main()

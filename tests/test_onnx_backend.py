"""ONNX's backend node tests (``onnx.backend.test.case.node``) for every op tetune converts.

Each case is a small model with reference inputs and outputs; it is compiled for the
"python" target (plain CPython kernels: no numba compiles, the shapes are tiny) and must
match to the case's tolerance. Inputs that fix shapes (Reshape's shape, Slice's starts...)
are graph inputs in these cases; tetune compiles static shapes, so they are bound as
constants (the ``DynamicShapeError`` names them).

A case is skipped only when it uses a dtype te does not have (uint16/32/64, bfloat16, the
float8/int4 family, strings) or is listed in ``KNOWN`` with the reason; a case failing for a
bug tracked elsewhere is in ``KNOWN_FAILURES``. The last test prints the pass rate.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

import graph
import te

TARGET = "python"
# reductions over empty sets take log(0) and the like on purpose
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

# case name -> why it cannot pass; keep this short and each reason specific
KNOWN = {
    "test_resize_downsample_scales_linear_align_corners":
        "te.ops.resize: align_corners with scales uses the integer output size; ONNX uses "
        "scale * input size",
    "test_resize_downsample_sizes_nearest_not_smaller":
        "Resize keep_aspect_ratio_policy=not_smaller rounds the output size up",
    "test_causal_conv_with_state_silu_fp16_expanded":
        "float16: kernels compute in float64 and round once; the reference rounds per op "
        "(3 fp16 ulps apart)",
}
# case name -> a bug elsewhere in tetune that makes it fail today: run, and counted as an
# expected failure while it fails (a pass is a pass)
KNOWN_FAILURES: dict = {}
_NOT_IMPLEMENTED = {  # case-name word -> a feature tetune does not implement
    "cubic": "Resize mode=cubic", "tf_crop_and_resize": "Resize tf_crop_and_resize",
    "antialias": "Resize antialias", "half_pixel_symmetric": "Resize half_pixel_symmetric",
    "training_dropout": "Dropout in training mode (random masks)",
}
_EXPANDED = "expanded functions"


@functools.lru_cache(maxsize=1)
def _all_cases() -> tuple:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators divide by zero on purpose
        return tuple(c for c in collect_testcases() if c.model is not None)


@functools.lru_cache(maxsize=1)
def _groups() -> dict:
    """op type -> its single-node cases; the multi-node (expanded function) cases whose ops
    are all supported go under ``_EXPANDED``."""
    supported = set(graph.supported_ops())
    out: dict = {op: [] for op in _OPS}
    for case in _all_cases():
        ops = {n.op_type for n in case.model.graph.node}
        if any(n.domain not in ("", "ai.onnx") for n in case.model.graph.node):
            continue
        if not ops <= supported:
            continue
        key = next(iter(ops)) if len(case.model.graph.node) == 1 else _EXPANDED
        out.setdefault(key, []).append(case)
    return out


_OPS = sorted(graph.supported_ops()) + [_EXPANDED]
_RESULTS: dict = {}  # case name -> ("pass" | "skip" | "fail" | "known failure", message)


def _array(value):
    from onnx import TensorProto, numpy_helper

    if isinstance(value, TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, (list, tuple)) or value is None:
        return value
    return np.asarray(value)


def _skip_reason(case) -> str | None:
    if case.name in KNOWN:
        return KNOWN[case.name]
    for word, reason in _NOT_IMPLEMENTED.items():
        if word in case.name:
            return f"{reason} is not implemented"
    for inputs, outputs in case.data_sets:
        for value in list(inputs) + list(outputs):
            value = _array(value)
            if not isinstance(value, np.ndarray):
                return "sequence/optional values are not supported"
            if value.dtype.name not in te.dtypes.ALL_TYPES:
                return f"dtype {value.dtype.name} is not supported by te"
    return None


def _run_case(case) -> tuple:
    reason = _skip_reason(case)
    if reason:
        return "skip", reason
    try:
        for inputs, outputs in case.data_sets:
            names = [i.name for i in case.model.graph.input]
            feeds = dict(zip(names, (_array(v) for v in inputs)))
            try:
                module = graph.compile(case.model, target=TARGET)
            except graph.DynamicShapeError as err:  # shape-giving inputs become constants
                module = graph.compile(case.model, target=TARGET,
                                       constants={k: feeds[k] for k in err.inputs})
            got = module.run({k: v for k, v in feeds.items() if k in module.input_names})
            for name, value, want in zip(module.output_names, got, outputs):
                want = _array(want)
                assert value.shape == want.shape, f"{name}: shape {value.shape} != {want.shape}"
                assert value.dtype == want.dtype, f"{name}: dtype {value.dtype} != {want.dtype}"
                if want.dtype.kind == "f":
                    np.testing.assert_allclose(value, want, rtol=case.rtol, atol=case.atol,
                                               err_msg=name)
                else:
                    np.testing.assert_array_equal(value, want, err_msg=name)
    except graph.ConversionError as err:
        if "which tetune does not support" in str(err):
            return "skip", str(err)
        return _failed(case, f"{type(err).__name__}: {err}")
    except Exception as err:  # a failing case is reported with the others of its op
        return _failed(case, f"{type(err).__name__}: {str(err)[:300]}")
    return "pass", ""


def _failed(case, message: str) -> tuple:
    if case.name in KNOWN_FAILURES:
        return "known failure", f"{KNOWN_FAILURES[case.name]} [{message}]"
    return "fail", message


def _run_group(op: str) -> dict:
    results = {}
    for case in _groups().get(op, []):
        if case.name not in _RESULTS:
            _RESULTS[case.name] = _run_case(case)
        results[case.name] = _RESULTS[case.name]
    return results


@pytest.mark.parametrize("op", _OPS)
def test_node_cases(op):
    results = _run_group(op)
    if not results:
        pytest.skip(f"onnx has no node test case for {op}")
    failed = {name: msg for name, (status, msg) in results.items() if status == "fail"}
    assert not failed, "\n".join(f"{name}: {msg}" for name, msg in failed.items())
    if all(status == "skip" for status, _ in results.values()):
        pytest.skip("; ".join(sorted({msg for _, msg in results.values()})))


def test_zz_pass_rate(capsys):
    """Prints the pass rate over the cases of supported ops and over all node cases."""
    for op in _OPS:
        _run_group(op)
    counts = {"pass": 0, "skip": 0, "fail": 0, "known failure": 0}
    reasons: dict = {}
    for status, msg in _RESULTS.values():
        counts[status] += 1
        if status == "skip":
            key = msg if len(msg) < 90 else msg.split(",")[0]
            reasons[key] = reasons.get(key, 0) + 1
    ran = sum(counts.values())
    total = len(_all_cases())
    with capsys.disabled():
        print(f"\nONNX node tests on target {TARGET!r}: {counts['pass']}/{ran} cases of "
              f"supported ops pass ({counts['skip']} skipped, {counts['fail']} failed, "
              f"{counts['known failure']} known failures); "
              f"{counts['pass']}/{total} = {100 * counts['pass'] / total:.1f}% of all "
              "node cases")
        for msg, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            print(f"  skipped {n:4d}: {msg}")
        for name, (status, msg) in _RESULTS.items():
            if status == "known failure":
                print(f"  known failure: {name}: {msg}")
    assert counts["fail"] == 0

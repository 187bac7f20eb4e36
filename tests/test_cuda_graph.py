"""Whole networks on the cuda target, in numba's CUDA simulator: the weights and every
intermediate buffer live on the device, a run copies only the inputs in and the outputs out."""

import numpy as np
import onnx
import pytest
from cuda_sim import rerun, simulator  # noqa: F401 - simulator is an autouse fixture
from onnx import TensorProto, helper, numpy_helper

import graph
from runtime import cuda_env

test_in_subprocess = rerun(__file__)


def mlp_model(rng, n=4, k=12, m=8):
    """MatMul + bias + Relu, then a Reshape (a view the memory plan elides) and a Softmax."""
    w = rng.standard_normal((k, m)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"], name="mm"),
             helper.make_node("Add", ["mm", "b"], ["biased"], name="add"),
             helper.make_node("Relu", ["biased"], ["act"], name="relu"),
             helper.make_node("Reshape", ["act", "shape"], ["flat"], name="flat"),
             helper.make_node("Softmax", ["flat"], ["y"], name="softmax", axis=-1)]
    g = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n // 2, 2 * m])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
                     numpy_helper.from_array(np.array([n // 2, 2 * m], np.int64), "shape")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    return model, w, b


def reference(x, w, b):
    act = np.maximum(x @ w + b, 0).reshape(x.shape[0] // 2, -1)
    e = np.exp(act - act.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def compiled():
    rng = np.random.default_rng(7)
    model, w, b = mlp_model(rng)
    onnx.checker.check_model(model)
    return graph.compile(model, target="cuda"), w, b


def test_network_runs_on_the_device_with_resident_weights(compiled, rng):
    module, w, b = compiled
    assert module.on_device
    # weights and activations are device arrays; nothing is a host array any more
    assert all(cuda_env.is_device_array(buf) for buf in module.buffers.values())
    for _ in range(2):  # the second run reuses the same device buffers
        x = rng.standard_normal((4, 12)).astype(np.float32)
        (y,) = module.run({"x": x})
        assert isinstance(y, np.ndarray) and y.shape == (2, 16)
        np.testing.assert_allclose(y, reference(x, w, b), rtol=1e-5, atol=1e-6)


def test_profile_on_the_device(compiled, rng):
    module, _, _ = compiled
    table = module.profile({"x": rng.standard_normal((4, 12)).astype(np.float32)}, runs=1)
    assert len(table) == len(module.steps) and table.total_ms > 0


def test_wrong_input_shape_is_named(compiled):
    module, _, _ = compiled
    with pytest.raises(graph.GraphError, match="input 'x' must have shape"):
        module.run({"x": np.zeros((3, 12), np.float32)})

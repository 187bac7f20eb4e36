"""graph.testing: the networks built in code are valid ONNX, have the published
architectures, and run the same in onnxruntime, onnx's reference evaluator and tetune."""

import warnings

import numpy as np
import pytest

from graph import testing

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# test-sized configs of every builder: (id, model factory)
SMALL = {
    "small_cnn": lambda: testing.small_cnn(),
    "resnet_block": lambda: testing.resnet_block(),
    "resnet_block_bottleneck_s2": lambda: testing.resnet_block(bottleneck=True, stride=2),
    "inverted_residual": lambda: testing.inverted_residual(),
    "resnet50_tiny": lambda: testing.resnet50(image=32, width=8, blocks=(1, 1, 1, 1),
                                              classes=10),
    "mobilenet_v2_tiny": lambda: testing.mobilenet_v2(image=32, width_mult=0.25, classes=10),
    "bert_tiny": lambda: testing.bert_encoder(layers=1, seq=8, hidden=32, heads=2),
    "bert_tiny_decomposed_ln": lambda: testing.bert_encoder(layers=1, seq=8, hidden=32, heads=2,
                                                            decomposed_layernorm=True),
}


def run_onnxruntime(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def close(actual, expected, rtol):
    """Relative agreement, with an absolute floor scaled to the output (values near zero
    carry the rounding of the large ones they were summed from)."""
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * 0.1 * scale)


@pytest.mark.parametrize("name", SMALL)
def test_builds_valid_models_with_o1_outputs(name):
    model = SMALL[name]()
    onnx.checker.check_model(model, full_check=True)  # also runs strict shape inference
    assert model.opset_import[0].version == testing.OPSET
    (out,) = run_onnxruntime(model, testing.random_inputs(model))
    declared = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert list(out.shape) == declared
    assert np.isfinite(out).all()
    assert 0.1 < float(np.std(out)) < 10.0  # He-scaled weights keep activations O(1)


@pytest.mark.parametrize("name", ["small_cnn", "resnet_block_bottleneck_s2",
                                  "inverted_residual", "bert_tiny", "bert_tiny_decomposed_ln"])
def test_reference_evaluator_agrees_with_onnxruntime(name):
    from onnx.reference import ReferenceEvaluator

    model = SMALL[name]()
    feeds = testing.random_inputs(model, seed=1)
    (expected,) = run_onnxruntime(model, feeds)
    (actual,) = ReferenceEvaluator(model).run(None, feeds)
    close(actual, expected, rtol=1e-4)


def test_same_seed_same_bytes():
    a, b = testing.small_cnn(seed=3), testing.small_cnn(seed=3)
    assert a.SerializeToString() == b.SerializeToString()
    assert testing.small_cnn(seed=4).SerializeToString() != a.SerializeToString()


def _trainable_parameters(model) -> int:
    # batch-norm running statistics are buffers, not parameters (torchvision's count)
    stats = {n.input[k] for n in model.graph.node if n.op_type == "BatchNormalization"
             for k in (3, 4)}
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer
               if t.name not in stats and t.data_type == onnx.TensorProto.FLOAT and t.dims)


def test_full_size_architectures_have_the_published_parameter_counts():
    # torchvision's resnet50 / mobilenet_v2 and one BERT-base layer (HF BertLayer)
    assert _trainable_parameters(testing.resnet50()) == 25_557_032
    assert _trainable_parameters(testing.mobilenet_v2()) == 3_504_872
    assert _trainable_parameters(testing.bert_encoder(layers=1)) == 7_087_872


def test_small_cnn_is_small_and_inputs_are_named():
    model = testing.small_cnn()
    assert len(model.SerializeToString()) < 100_000
    feeds = testing.random_inputs(model)
    assert list(feeds) == ["input"] and feeds["input"].shape == (1, 3, 32, 32)
    assert feeds["input"].dtype == np.float32


def test_bad_heads_raise():
    with pytest.raises(ValueError, match="multiple of heads"):
        testing.bert_encoder(layers=1, seq=4, hidden=30, heads=4)


# -- tetune against onnxruntime ----------------------------------------------------------------

graph = pytest.importorskip("graph")
# with an empty kernel cache these two cost ~50 s of compiles; the rest are marked slow
FAST = ["small_cnn", "bert_tiny_decomposed_ln"]
SLOW = ["resnet_block", "resnet_block_bottleneck_s2", "inverted_residual", "resnet50_tiny",
        "mobilenet_v2_tiny", "bert_tiny"]


def _compare_with_onnxruntime(name):
    model = SMALL[name]()
    feeds = testing.random_inputs(model, seed=2)
    (expected,) = run_onnxruntime(model, feeds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # untuned workloads warn; defaults are the point here
        module = graph.compile(model, target="cpu")
    (actual,) = module.run(feeds)
    close(actual, expected, rtol=1e-4)


@pytest.mark.parametrize("name", FAST)
def test_tetune_matches_onnxruntime(name):
    _compare_with_onnxruntime(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_tetune_matches_onnxruntime_slow(name):
    _compare_with_onnxruntime(name)

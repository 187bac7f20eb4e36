"""Networks built in code, for tests, benchmarks and examples (TVM's ``relay.testing``).

Each function returns an ``onnx.ModelProto`` (opset 17, float32, checked with
``onnx.checker``) whose weights are drawn from ``np.random.default_rng(seed)``: no
downloads, and the same seed gives the same bytes. Weights are He-scaled and batch-norm
statistics are plausible (positive variances, gamma near one), so activations stay O(1)
through the whole network and a relative tolerance means the same thing at every layer.

    model = graph.testing.resnet50(image=224)
    feeds = graph.testing.random_inputs(model)
    out, = graph.compile(model).run(feeds)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OPSET", "NetBuilder", "bert_encoder", "inverted_residual", "mobilenet_v2",
           "random_inputs", "resnet50", "resnet_block", "small_cnn"]

OPSET = 17  # first opset with LayerNormalization; onnxruntime >= 1.13 runs all of it
IR_VERSION = 8  # the IR version that goes with opset 17, so older runtimes load the models


class NetBuilder:
    """Accumulates the nodes and initializers of one ONNX graph; every value gets a fresh
    name ``<prefix>_<n>``, so the layer helpers compose without bookkeeping."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.initializers: list = []
        self._count: dict = {}

    def fresh(self, prefix: str) -> str:
        n = self._count.get(prefix, 0)
        self._count[prefix] = n + 1
        return f"{prefix}_{n}"

    def const(self, prefix: str, array) -> str:
        from onnx import numpy_helper

        name = self.fresh(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def normal(self, prefix: str, shape, std: float, mean: float = 0.0) -> str:
        return self.const(prefix, (mean + std * self.rng.standard_normal(shape))
                          .astype(np.float32))

    def op(self, op_type: str, inputs, prefix: str | None = None, **attrs) -> str:
        """Append one single-output node; returns its output's name."""
        from onnx import helper

        out = self.fresh(prefix or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out],
                                           name=self.fresh("n_" + op_type.lower()), **attrs))
        return out

    # -- layers ---------------------------------------------------------------------------
    def conv(self, x: str, cin: int, cout: int, kernel: int, stride: int = 1,
             groups: int = 1, bias: bool = False) -> str:
        """A square, 'same'-padded convolution with He-initialized weights."""
        fan_in = cin // groups * kernel * kernel
        inputs = [x, self.normal("w", (cout, cin // groups, kernel, kernel),
                                 math.sqrt(2.0 / fan_in))]
        if bias:
            inputs.append(self.normal("b", (cout,), 0.05))
        pad = kernel // 2
        return self.op("Conv", inputs, kernel_shape=[kernel, kernel], strides=[stride, stride],
                       pads=[pad] * 4, group=groups)

    def batch_norm(self, x: str, channels: int, gamma: float = 1.0) -> str:
        """Inference-mode batch norm; ``gamma`` scales the learned scale (a small one
        damps a residual branch, as trained ResNets' last BN of a block does)."""
        rng = self.rng
        scale = gamma * rng.uniform(0.8, 1.2, channels)
        params = [scale, rng.normal(0.0, 0.05, channels), rng.normal(0.0, 0.05, channels),
                  rng.uniform(0.8, 1.6, channels)]  # scale, bias, mean, var > 0
        names = [self.const(p, a.astype(np.float32))
                 for p, a in zip(("gamma", "beta", "mean", "var"), params)]
        return self.op("BatchNormalization", [x, *names], prefix="bn", epsilon=1e-5)

    def conv_bn(self, x, cin, cout, kernel, stride=1, groups=1, act="relu", gamma=1.0):
        """Conv -> BatchNormalization -> the activation ("relu", "relu6" or None)."""
        y = self.batch_norm(self.conv(x, cin, cout, kernel, stride, groups), cout, gamma)
        if act == "relu":
            return self.op("Relu", [y])
        if act == "relu6":
            lo = self.const("zero", np.array(0.0, np.float32))
            hi = self.const("six", np.array(6.0, np.float32))
            return self.op("Clip", [y, lo, hi], prefix="relu6")
        return y

    def dense(self, x: str, fin: int, fout: int) -> str:
        """``x @ W + b`` as MatMul + Add (transformer exports write it so)."""
        w = self.normal("w", (fin, fout), 1.0 / math.sqrt(fin))
        return self.op("Add", [self.op("MatMul", [x, w]), self.normal("b", (fout,), 0.02)])

    def classifier(self, x: str, channels: int, classes: int) -> str:
        """Global average pool, flatten and a Gemm with a [classes, channels] weight."""
        x = self.op("Flatten", [self.op("GlobalAveragePool", [x], prefix="pool")], axis=1)
        w = self.normal("fc_w", (classes, channels), 1.0 / math.sqrt(channels))
        return self.op("Gemm", [x, w, self.normal("fc_b", (classes,), 0.02)], prefix="logits",
                       transB=1)

    def layer_norm(self, x: str, hidden: int, decomposed: bool = False) -> str:
        """LayerNormalization over the last axis, or the nine-node form older exporters
        write (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add)."""
        gamma = self.const("ln_g", self.rng.uniform(0.8, 1.2, hidden).astype(np.float32))
        beta = self.normal("ln_b", (hidden,), 0.02)
        if not decomposed:
            return self.op("LayerNormalization", [x, gamma, beta], prefix="ln", axis=-1,
                           epsilon=1e-12)
        mean = self.op("ReduceMean", [x], axes=[-1], keepdims=1)
        d = self.op("Sub", [x, mean])
        var = self.op("ReduceMean", [self.op("Pow", [d, self.const("two", np.float32(2))])],
                      axes=[-1], keepdims=1)
        std = self.op("Sqrt", [self.op("Add", [var, self.const("eps", np.float32(1e-12))])])
        return self.op("Add", [self.op("Mul", [self.op("Div", [d, std]), gamma]), beta],
                       prefix="ln")

    def gelu(self, x: str) -> str:
        """x * 0.5 * (1 + erf(x / sqrt 2)): the exact GELU as BERT exports write it."""
        erf = self.op("Erf", [self.op("Div", [x, self.const("sqrt2", np.float32(math.sqrt(2)))])])
        half = self.op("Mul", [x, self.const("half", np.float32(0.5))])
        return self.op("Mul", [half, self.op("Add", [erf, self.const("one", np.float32(1))])],
                       prefix="gelu")

    def build(self, name: str, inputs: dict, outputs: dict):
        """The checked ``ModelProto``; ``inputs`` / ``outputs`` map names to shapes."""
        import onnx
        from onnx import TensorProto, helper

        def info(items):
            return [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s))
                    for n, s in items.items()]

        g = helper.make_graph(self.nodes, name, info(inputs), info(outputs), self.initializers)
        model = helper.make_model(g, producer_name="tetune.graph.testing",
                                  opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model

    def rename(self, value: str, name: str) -> str:
        """Give ``value`` the graph-level ``name`` (the producing node's output is renamed)."""
        for node in self.nodes:
            for k, out in enumerate(node.output):
                if out == value:
                    node.output[k] = name
        for node in self.nodes:
            for k, inp in enumerate(node.input):
                if inp == value:
                    node.input[k] = name
        return name


# -- CNNs -------------------------------------------------------------------------------------


def _bottleneck(net: NetBuilder, x: str, cin: int, width: int, stride: int) -> tuple:
    """ResNet v1.5's bottleneck (the stride sits on the 3x3 conv); returns (y, channels)."""
    cout = 4 * width
    y = net.conv_bn(x, cin, width, 1)
    y = net.conv_bn(y, width, width, 3, stride)
    y = net.conv_bn(y, width, cout, 1, act=None, gamma=0.3)
    if stride != 1 or cin != cout:
        x = net.conv_bn(x, cin, cout, 1, stride, act=None)
    return net.op("Relu", [net.op("Add", [y, x])]), cout


def _basic_block(net: NetBuilder, x: str, cin: int, cout: int, stride: int) -> str:
    y = net.conv_bn(x, cin, cout, 3, stride)
    y = net.conv_bn(y, cout, cout, 3, act=None, gamma=0.3)
    if stride != 1 or cin != cout:
        x = net.conv_bn(x, cin, cout, 1, stride, act=None)
    return net.op("Relu", [net.op("Add", [y, x])])


def resnet50(batch: int = 1, image: int = 224, width: int = 64, blocks=(3, 4, 6, 3),
             classes: int = 1000, seed: int = 0):
    """ResNet-50 v1.5 (``input`` [batch, 3, image, image] -> ``output`` [batch, classes]);
    ``width`` (the first stage's bottleneck width) and ``blocks`` (per stage) shrink it for
    tests: ``resnet50(image=32, width=8, blocks=(1, 1, 1, 1), classes=10)``."""
    net = NetBuilder(seed)
    x = net.conv_bn("input", 3, width, 7, 2)
    x = net.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    channels = width
    for stage, n in enumerate(blocks):
        for b in range(n):
            stride = 2 if stage > 0 and b == 0 else 1
            x, channels = _bottleneck(net, x, channels, width << stage, stride)
    net.rename(net.classifier(x, channels, classes), "output")
    return net.build("resnet50", {"input": (batch, 3, image, image)},
                     {"output": (batch, classes)})


def resnet_block(batch: int = 1, channels: int = 16, image: int = 8, stride: int = 1,
                 bottleneck: bool = False, seed: int = 0):
    """One residual block (``input`` -> ``output``): basic (two 3x3 convs) or bottleneck
    (1x1-3x3-1x1, output 4 * ``channels``); with ``stride`` 2 it also has the 1x1
    downsampling shortcut."""
    net = NetBuilder(seed)
    cin = channels * 4 if bottleneck else channels
    if bottleneck:
        y, cout = _bottleneck(net, "input", cin, channels, stride)
    else:
        cout = channels * stride
        y = _basic_block(net, "input", cin, cout, stride)
    net.rename(y, "output")
    out = -(-image // stride)
    return net.build("resnet_block", {"input": (batch, cin, image, image)},
                     {"output": (batch, cout, out, out)})


def _divisible(v: float, divisor: int = 8) -> int:
    # MobileNet's channel rounding: to a multiple of 8, never more than 10 % below v
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


def _inverted(net: NetBuilder, x: str, cin: int, cout: int, stride: int, expand: int) -> str:
    hidden = cin * expand
    y = net.conv_bn(x, cin, hidden, 1, act="relu6") if expand != 1 else x
    y = net.conv_bn(y, hidden, hidden, 3, stride, groups=hidden, act="relu6")
    y = net.conv_bn(y, hidden, cout, 1, act=None, gamma=0.5 if stride == 1 and cin == cout
                    else 1.0)
    return net.op("Add", [x, y]) if stride == 1 and cin == cout else y


# (expansion t, channels c, repeats n, first stride s), from the MobileNetV2 paper
_MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                 (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2(batch: int = 1, image: int = 224, width_mult: float = 1.0,
                 classes: int = 1000, seed: int = 0):
    """MobileNetV2 (``input`` [batch, 3, image, image] -> ``output`` [batch, classes]):
    inverted residuals with depthwise 3x3 convs and ReLU6 (Clip); ``width_mult`` scales
    the channels (0.25 makes a test-sized net)."""
    net = NetBuilder(seed)
    channels = _divisible(32 * width_mult)
    x = net.conv_bn("input", 3, channels, 3, 2, act="relu6")
    for t, c, n, s in _MOBILENET_V2:
        cout = _divisible(c * width_mult)
        for k in range(n):
            x = _inverted(net, x, channels, cout, s if k == 0 else 1, t)
            channels = cout
    last = _divisible(1280 * max(1.0, width_mult))
    x = net.conv_bn(x, channels, last, 1, act="relu6")
    net.rename(net.classifier(x, last, classes), "output")
    return net.build("mobilenet_v2", {"input": (batch, 3, image, image)},
                     {"output": (batch, classes)})


def inverted_residual(batch: int = 1, channels: int = 16, image: int = 8, expand: int = 6,
                      seed: int = 0):
    """One MobileNetV2 block with its residual add (``input`` -> ``output``, same shape)."""
    net = NetBuilder(seed)
    net.rename(_inverted(net, "input", channels, channels, 1, expand), "output")
    shape = (batch, channels, image, image)
    return net.build("inverted_residual", {"input": shape}, {"output": shape})


def small_cnn(batch: int = 1, image: int = 32, classes: int = 10, seed: int = 0):
    """The bundled example: conv-bn-relu, max pool, conv-relu, global pool, Gemm
    (``input`` [batch, 3, image, image] -> ``output`` [batch, classes]); ~5k weights, a
    handful of kernels, quick to compile and to tune."""
    net = NetBuilder(seed)
    x = net.conv_bn("input", 3, 16, 3)
    x = net.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = net.op("Relu", [net.conv(x, 16, 32, 3, bias=True)])
    net.rename(net.classifier(x, 32, classes), "output")
    return net.build("small_cnn", {"input": (batch, 3, image, image)},
                     {"output": (batch, classes)})


# -- transformers -----------------------------------------------------------------------------


def _attention(net: NetBuilder, x: str, batch: int, seq: int, hidden: int, heads: int) -> str:
    """Multi-head self-attention without a mask; returns the output projection."""
    d = hidden // heads
    split = net.const("heads_shape", np.array([batch, seq, heads, d], np.int64))

    def heads_first(v, perm):  # [b, s, hidden] -> [b, heads, s, d] (or [b, heads, d, s])
        return net.op("Transpose", [net.op("Reshape", [v, split])], perm=perm)

    q = heads_first(net.dense(x, hidden, hidden), [0, 2, 1, 3])
    k = heads_first(net.dense(x, hidden, hidden), [0, 2, 3, 1])
    v = heads_first(net.dense(x, hidden, hidden), [0, 2, 1, 3])
    scores = net.op("Div", [net.op("MatMul", [q, k]),
                            net.const("sqrt_d", np.float32(math.sqrt(d)))])
    context = net.op("MatMul", [net.op("Softmax", [scores], axis=-1), v])
    merged = net.op("Reshape", [net.op("Transpose", [context], perm=[0, 2, 1, 3]),
                                net.const("hidden_shape",
                                          np.array([batch, seq, hidden], np.int64))])
    return net.dense(merged, hidden, hidden)


def bert_encoder(layers: int = 2, seq: int = 128, hidden: int = 768, heads: int = 12,
                 intermediate: int | None = None, batch: int = 1,
                 decomposed_layernorm: bool = False, seed: int = 0):
    """BERT's encoder stack on hidden states (``hidden_states`` [batch, seq, hidden] ->
    ``output``, same shape; no embeddings, no mask): per layer self-attention, add & norm,
    a GELU (written with Erf) feed-forward of ``intermediate`` (default 4 * hidden), add &
    norm. ``decomposed_layernorm`` writes each LayerNormalization as its nine-node form."""
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
    intermediate = intermediate or 4 * hidden
    net = NetBuilder(seed)
    x = "hidden_states"
    for _ in range(layers):
        attn = _attention(net, x, batch, seq, hidden, heads)
        x = net.layer_norm(net.op("Add", [x, attn]), hidden, decomposed_layernorm)
        ff = net.dense(net.gelu(net.dense(x, hidden, intermediate)), intermediate, hidden)
        x = net.layer_norm(net.op("Add", [x, ff]), hidden, decomposed_layernorm)
    net.rename(x, "output")
    shape = (batch, seq, hidden)
    return net.build("bert_encoder", {"hidden_states": shape}, {"output": shape})


# -- inputs -----------------------------------------------------------------------------------


def random_inputs(model, seed: int = 0) -> dict:
    """Standard-normal float32 arrays for every graph input of ``model`` that is not an
    initializer, keyed by name (the shapes must be static)."""
    rng = np.random.default_rng(seed)
    weights = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in weights:
            continue
        dims = value.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            raise ValueError(f"input {value.name!r} has a symbolic shape; give its arrays "
                             "yourself")
        feeds[value.name] = rng.standard_normal([d.dim_value for d in dims]).astype(np.float32)
    return feeds

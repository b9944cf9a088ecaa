"""Built-in ONNX models, generated offline from seeded weights.

The real architectures use the published layer shapes (torchvision's
ResNet-18/50 and MobileNetV2) so compile and tuning work is realistic, while
the weights are random: numbers are about speed and agreement between
runtimes, not accuracy. Weights are scaled so that activations stay bounded
through depth and the logits are spread out: a softmax that saturates into
one-hot output would make the top-5 check meaningless.

``dynamic_*`` generators reproduce what converters export (symbolic batch
dimension, Reshape targets computed at run time via Shape -> Gather ->
Concat) so the shape-freezing path is exercised without downloading anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

#: Bump when any generator's output changes: it is part of the model cache key.
GENERATOR_VERSION = 1


@dataclass
class _Builder:
    """Accumulates ONNX nodes and seeded initializers."""

    seed: int
    nodes: list[Any] = field(default_factory=list)
    inits: list[Any] = field(default_factory=list)
    count: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], n_out: int = 1, **attrs: Any) -> str:
        from onnx import helper

        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=outs[0], **attrs))
        return outs[0]

    def conv(
        self, x: str, cin: int, cout: int, k: int, stride: int = 1, group: int = 1, bias: bool = False
    ) -> str:
        fan_in = cin // group * k * k
        w = self.rng.normal(0.0, np.sqrt(2.0 / fan_in), (cout, cin // group, k, k)).astype(np.float32)
        inputs = [x, self.const("w", w)]
        if bias:
            inputs.append(self.const("b", self.rng.normal(0, 0.01, cout).astype(np.float32)))
        pad = k // 2
        return self.node(
            "Conv", inputs, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=group
        )

    def bn(self, x: str, c: int, gamma: float = 1.0) -> str:
        scale = (gamma * self.rng.uniform(0.8, 1.2, c)).astype(np.float32)
        shift = self.rng.normal(0, 0.05, c).astype(np.float32)
        mean = self.rng.normal(0, 0.05, c).astype(np.float32)
        var = self.rng.uniform(0.9, 1.1, c).astype(np.float32)
        args = [self.const(n, v) for n, v in (("scale", scale), ("shift", shift), ("mean", mean), ("var", var))]
        return self.node("BatchNormalization", [x, *args], epsilon=1e-5)

    def conv_bn(self, x: str, cin: int, cout: int, k: int, stride: int = 1, group: int = 1,
                act: str | None = "relu", gamma: float = 1.0) -> str:
        y = self.bn(self.conv(x, cin, cout, k, stride, group), cout, gamma)
        if act == "relu":
            return self.node("Relu", [y])
        if act == "relu6":
            lo = self.const("lo", np.array(0.0, np.float32))
            hi = self.const("hi", np.array(6.0, np.float32))
            return self.node("Clip", [y, lo, hi])
        return y

    def classifier(self, x: str, cin: int, classes: int, logit_scale: float = 3.0) -> str:
        """Global pool, flatten, dense; weights sized so logits have std ~ ``logit_scale``."""
        pooled = self.node("GlobalAveragePool", [x])
        flat = self.node("Flatten", [pooled], axis=1)
        w = self.rng.normal(0.0, 1.0 / np.sqrt(cin), (classes, cin)).astype(np.float32)
        b = self.rng.normal(0, 0.01, classes).astype(np.float32)
        logits = self.node("Gemm", [flat, self.const("fc_w", w), self.const("fc_b", b)], transB=1)
        # Standardise the logits per input whatever the activation scale of the
        # trunk, so the softmax is spread (not one-hot, not uniform).
        scale = self.const("ln_scale", np.full(classes, logit_scale, np.float32))
        bias = self.const("ln_bias", np.zeros(classes, np.float32))
        return self.node("LayerNormalization", [logits, scale, bias], axis=-1, epsilon=1e-5)

    def model(self, name: str, inputs: list[tuple[str, list[int | str]]],
              outputs: list[tuple[str, list[int | str]]]) -> onnx.ModelProto:
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            self.nodes,
            name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                  producer_name="tvm-bench")
        model.ir_version = 8
        return model


def _rename_output(b: _Builder, tensor: str, name: str) -> None:
    """Give the graph output a stable, user-facing name."""
    for node in b.nodes:
        node.output[:] = [name if o == tensor else o for o in node.output]
        node.input[:] = [name if i == tensor else i for i in node.input]


def tiny_cnn(seed: int = 0, size: int = 64, classes: int = 10) -> onnx.ModelProto:
    """Three conv layers and a classifier: the model the harness's own tests tune."""
    b = _Builder(seed)
    x = b.conv_bn("data", 3, 16, 3, stride=2)
    x = b.conv_bn(x, 16, 32, 3, stride=2)
    x = b.conv_bn(x, 32, 32, 3)
    out = b.classifier(x, 32, classes)
    _rename_output(b, out, "logits")
    return b.model("tiny_cnn", [("data", [1, 3, size, size])], [("logits", [1, classes])])


def _resnet(blocks: list[int], bottleneck: bool, seed: int, classes: int, name: str) -> onnx.ModelProto:
    b = _Builder(seed)
    x = b.conv_bn("data", 3, 64, 7, stride=2)
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    expansion = 4 if bottleneck else 1
    for stage, n in enumerate(blocks):
        width = 64 * 2**stage
        for i in range(n):
            stride = 2 if (stage > 0 and i == 0) else 1
            cout = width * expansion
            # Small gamma on the last BN of a branch keeps the residual stream's
            # variance from doubling at every block (cf. zero-init-residual).
            if bottleneck:
                y = b.conv_bn(x, cin, width, 1)
                y = b.conv_bn(y, width, width, 3, stride)
                y = b.conv_bn(y, width, cout, 1, act=None, gamma=0.2)
            else:
                y = b.conv_bn(x, cin, width, 3, stride)
                y = b.conv_bn(y, width, cout, 3, act=None, gamma=0.2)
            short = x if (stride == 1 and cin == cout) else b.conv_bn(x, cin, cout, 1, stride, act=None)
            x = b.node("Relu", [b.node("Add", [y, short])])
            cin = cout
    out = b.classifier(x, cin, classes)
    _rename_output(b, out, "logits")
    return b.model(name, [("data", [1, 3, 224, 224])], [("logits", [1, classes])])


def resnet18(seed: int = 0, classes: int = 1000) -> onnx.ModelProto:
    """ResNet-18 (He et al. 2015) with torchvision's layer shapes."""
    return _resnet([2, 2, 2, 2], False, seed, classes, "resnet18")


def resnet50(seed: int = 0, classes: int = 1000) -> onnx.ModelProto:
    """ResNet-50 v1.5 (stride on the 3x3), the classic TVM tutorial's model."""
    return _resnet([3, 4, 6, 3], True, seed, classes, "resnet50")


def mobilenet_v2(seed: int = 0, classes: int = 1000) -> onnx.ModelProto:
    """MobileNetV2 (Sandler et al. 2018), width 1.0, torchvision's layer table."""
    b = _Builder(seed)
    x = b.conv_bn("data", 3, 32, 3, stride=2, act="relu6")
    cin = 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = x if t == 1 else b.conv_bn(x, cin, hidden, 1, act="relu6")
            y = b.conv_bn(y, hidden, hidden, 3, stride, group=hidden, act="relu6")
            y = b.conv_bn(y, hidden, c, 1, act=None, gamma=0.3)
            x = b.node("Add", [x, y]) if (stride == 1 and cin == c) else y
            cin = c
    x = b.conv_bn(x, cin, 1280, 1, act="relu6")
    out = b.classifier(x, 1280, classes)
    _rename_output(b, out, "logits")
    return b.model("mobilenet_v2", [("data", [1, 3, 224, 224])], [("logits", [1, classes])])


def _dynamic_flatten(b: _Builder, x: str) -> str:
    """Reshape to (batch, -1) with the batch read at run time, as converters export it."""
    shape = b.node("Shape", [x])
    batch = b.node("Gather", [shape, b.const("idx0", np.array([0], np.int64))], axis=0)
    target = b.node("Concat", [batch, b.const("minus1", np.array([-1], np.int64))], axis=0)
    return b.node("Reshape", [x, target])


def dynamic_cnn(seed: int = 0, size: int = 32, classes: int = 10) -> onnx.ModelProto:
    """Symbolic batch and a run-time Reshape target: what torch.onnx/paddle2onnx emit."""
    b = _Builder(seed)
    x = b.conv_bn("x", 3, 8, 3, stride=2)
    x = b.conv_bn(x, 8, 16, 3, stride=2)
    flat = _dynamic_flatten(b, x)
    feat = 16 * (size // 4) ** 2
    w = b.rng.normal(0, 1.0 / np.sqrt(feat), (feat, classes)).astype(np.float32)
    out = b.node("MatMul", [flat, b.const("fc_w", w)])
    scale = b.const("ln_scale", np.full(classes, 3.0, np.float32))
    out = b.node("LayerNormalization", [out, scale, b.const("ln_bias", np.zeros(classes, np.float32))],
                 axis=-1, epsilon=1e-5)
    _rename_output(b, out, "logits")
    return b.model("dynamic_cnn", [("x", ["batch", 3, size, size])], [("logits", ["batch", classes])])


def two_tower(seed: int = 0, size: int = 32, classes: int = 10) -> onnx.ModelProto:
    """Two inputs, two outputs (logits and an embedding), dynamic batch: multi-I/O models."""
    b = _Builder(seed)
    a = b.conv_bn("image", 3, 8, 3, stride=2)
    a = _dynamic_flatten(b, b.node("GlobalAveragePool", [a]))
    wa = b.rng.normal(0, 0.5, (8, 16)).astype(np.float32)
    wb = b.rng.normal(0, 0.5, (4, 16)).astype(np.float32)
    emb = b.node("Add", [b.node("MatMul", [a, b.const("wa", wa)]),
                         b.node("MatMul", ["meta", b.const("wb", wb)])])
    emb = b.node("Relu", [emb])
    wc = b.rng.normal(0, 1.0, (16, classes)).astype(np.float32)
    logits = b.node("MatMul", [emb, b.const("wc", wc)])
    _rename_output(b, logits, "logits")
    _rename_output(b, emb, "embedding")
    return b.model("two_tower", [("image", ["batch", 3, size, size]), ("meta", ["batch", 4])],
                   [("logits", ["batch", classes]), ("embedding", ["batch", 16])])


#: name -> generator; each accepts ``seed`` plus the keyword arguments shown in its signature.
GENERATORS: dict[str, Callable[..., onnx.ModelProto]] = {
    "tiny_cnn": tiny_cnn,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "dynamic_cnn": dynamic_cnn,
    "two_tower": two_tower,
}

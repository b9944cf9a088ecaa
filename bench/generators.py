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

The zoo (``ZOO``) covers the operator families of real third-party exports
that the classifiers above never reach: transposed-convolution and Resize
upsampling, run-time shape subgraphs and int64 shape arithmetic, grouped
convolutions, attention blocks, Split/Concat necks and If. Each is tiny, so
the tests build, tune and check every one of them in both layouts; a real
export that broke (an FPN decoder's ConvTranspose under NHWC) is what they
are for.
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

    def dense(self, x: str, cin: int, cout: int, std: float | None = None, bias: bool = True) -> str:
        """MatMul (+ Add) over the last axis, as converters export a Linear layer."""
        w = self.rng.normal(0.0, std if std is not None else 1.0 / np.sqrt(cin), (cin, cout)).astype(np.float32)
        y = self.node("MatMul", [x, self.const("w", w)])
        return self.node("Add", [y, self.const("b", self.rng.normal(0, 0.01, cout).astype(np.float32))]) \
            if bias else y

    def layer_norm(self, x: str, dim: int, scale: float = 1.0) -> str:
        return self.node("LayerNormalization", [x, self.const("ln_scale", np.full(dim, scale, np.float32)),
                                                self.const("ln_bias", np.zeros(dim, np.float32))],
                         axis=-1, epsilon=1e-5)

    def scalar(self, prefix: str, value: np.ndarray) -> str:
        """A 0-d initializer (``const`` stores 0-d arrays as 1-d: ascontiguousarray promotes them)."""
        from onnx import numpy_helper

        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value).copy(), name))
        return name

    def ints(self, prefix: str, *values: int) -> str:
        return self.const(prefix, np.array(values, np.int64))

    def model(self, name: str, inputs: list[tuple[str, list[int | str]]],
              outputs: list[tuple[str, list[int | str]]], opset: int = 17) -> onnx.ModelProto:
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            self.nodes,
            name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
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


# --- the zoo: operator families of real exports --------------------------------------------------------------


def _per_position_head(b: _Builder, x: str, cin: int, classes: int) -> str:
    """1x1 conv to class scores, NCHW -> NHWC so the class axis is last (the check's), standardised."""
    scores = b.conv(x, cin, classes, 1, bias=True)
    return b.layer_norm(b.node("Transpose", [scores], perm=[0, 2, 3, 1]), classes, 1.5)


def upsample_decoder(seed: int = 0, size: int = 32, classes: int = 8) -> onnx.ModelProto:
    """An FPN-style decoder that upsamples with ConvTranspose (segmentation, detection, super-resolution)."""
    b = _Builder(seed)
    e1 = b.conv_bn("image", 3, 16, 3, stride=2)
    e2 = b.conv_bn(e1, 16, 32, 3, stride=2)
    x = e2
    for cin, cout, skip in ((32, 16, e1), (16, 8, None)):
        w = b.rng.normal(0.0, np.sqrt(2.0 / (cin * 4)), (cin, cout, 4, 4)).astype(np.float32)  # IOHW
        x = b.node("ConvTranspose", [x, b.const("wt", w)], kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1])
        x = b.node("Relu", [x if skip is None else b.node("Add", [x, skip])])
    out = _per_position_head(b, x, 8, classes)
    _rename_output(b, out, "scores")
    return b.model("upsample_decoder", [("image", [1, 3, size, size])], [("scores", [1, size, size, classes])])


def _standardize(b: _Builder, x: str, scale: float = 3.0) -> str:
    """LayerNorm spelled in opset-9 operators (ReduceMean, Sub, Mul, Sqrt, Div), as older exports have it."""
    mean = b.node("ReduceMean", [x], axes=[-1])
    d = b.node("Sub", [x, mean])
    var = b.node("ReduceMean", [b.node("Mul", [d, d])], axes=[-1])
    std = b.node("Sqrt", [b.node("Add", [var, b.const("eps", np.array(1e-5, np.float32))])])
    return b.node("Mul", [b.node("Div", [d, std]), b.const("scale", np.array(scale, np.float32))])


def resize_fpn(seed: int = 0, size: int = 32, classes: int = 10, upsample: bool = False) -> onnx.ModelProto:
    """A feature pyramid merged top-down with Resize (nearest, then linear by output size); with
    ``upsample``, the opset-9 Upsample operator of older exports (see upsample_fpn)."""
    b = _Builder(seed)
    c1 = b.conv_bn("image", 3, 16, 3, stride=2)
    c2 = b.conv_bn(c1, 16, 32, 3, stride=2)
    c3 = b.conv_bn(c2, 32, 64, 3, stride=2)
    p = b.conv(c3, 64, 32, 1, bias=True)
    for lateral, cin, mode in ((c2, 32, "nearest"), (c1, 16, "linear")):
        if upsample:
            up = b.node("Upsample", [p, b.const("scales", np.array([1, 1, 2, 2], np.float32))], mode=mode)
        elif mode == "nearest":
            up = b.node("Resize", [p, "", b.const("scales", np.array([1, 1, 2, 2], np.float32))], mode="nearest")
        else:
            side = size // (2 if lateral == c1 else 4)
            up = b.node("Resize", [p, "", "", b.ints("sizes", 1, 32, side, side)], mode="linear",
                        coordinate_transformation_mode="half_pixel")
        p = b.node("Relu", [b.node("Add", [up, b.conv(lateral, cin, 32, 1, bias=True)])])
    pooled = b.node("Flatten", [b.node("GlobalAveragePool", [p])], axis=1)
    w = b.rng.normal(0.0, 1.0 / np.sqrt(32), (classes, 32)).astype(np.float32)
    logits = b.node("Gemm", [pooled, b.const("fc_w", w), b.const("fc_b", np.zeros(classes, np.float32))], transB=1)
    out = _standardize(b, logits) if upsample else b.layer_norm(logits, classes, 3.0)
    _rename_output(b, out, "logits")
    name = "upsample_fpn" if upsample else "resize_fpn"
    return b.model(name, [("image", [1, 3, size, size])], [("logits", [1, classes])], opset=9 if upsample else 17)


def dynamic_seq(seed: int = 0, seq: int = 16, dim: int = 32, classes: int = 10) -> onnx.ModelProto:
    """Dynamic batch and sequence axes with the shape subgraph converters emit around them: Shape, Gather,
    Range (positions), ConstantOfShape (a mask) and Expand (a broadcast bias)."""
    from onnx import TensorProto, helper

    b = _Builder(seed)
    shape = b.node("Shape", ["tokens"])
    # scalar indices, as torch.onnx exports size(i): the Gathers give scalars, Unsqueeze makes them 1-D
    batch, length = (b.node("Gather", [shape, b.scalar(f"i{i}", np.array(i, np.int64))], axis=0) for i in (0, 1))
    positions = b.node("Range", [b.scalar("start", np.array(0, np.int64)), length,
                                 b.scalar("step", np.array(1, np.int64))])
    table = b.rng.normal(0, 0.5, (4 * seq, dim)).astype(np.float32)
    h = b.node("Add", ["tokens", b.node("Gather", [b.const("pos_table", table), positions], axis=0)])
    dims = [b.node("Unsqueeze", [d, b.ints("ax0", 0)]) for d in (batch, length)]
    ones = b.node("ConstantOfShape", [b.node("Concat", [*dims, b.ints("one", 1)], axis=0)],
                  value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))
    bias = b.node("Expand", [b.const("bias", b.rng.normal(0, 0.1, dim).astype(np.float32)), b.node("Shape", [h])])
    h = b.node("Add", [b.node("Mul", [h, ones]), bias])
    h = b.node("Relu", [b.dense(h, dim, dim)])
    out = b.layer_norm(b.dense(h, dim, classes), classes, 1.5)
    _rename_output(b, out, "logits")
    return b.model("dynamic_seq", [("tokens", ["batch", "seq", dim])], [("logits", ["batch", "seq", classes])])


def shape_arith(seed: int = 0, size: int = 16, classes: int = 10) -> onnx.ModelProto:
    """Space-to-depth and flatten with every Reshape target computed from int64 shape arithmetic (Div, Mul,
    Cast -> Floor -> Cast), the pattern of traced floor divisions in torch exports."""
    from onnx import TensorProto

    b = _Builder(seed)
    y = b.conv_bn("image", 3, 8, 3, stride=2)
    shape = b.node("Shape", [y])
    n, c, h, w = (b.node("Gather", [shape, b.ints(f"i{i}", i)], axis=0) for i in range(4))
    two = b.ints("two", 2)
    h2 = b.node("Div", [h, two])
    w2 = b.node("Cast", [b.node("Floor", [b.node("Div", [b.node("Cast", [w], to=TensorProto.FLOAT),
                                                           b.const("twof", np.array([2.0], np.float32))])])],
                to=TensorProto.INT64)
    t = b.node("Reshape", [y, b.node("Concat", [n, c, h2, two, w2, two], axis=0)])
    t = b.node("Transpose", [t], perm=[0, 1, 3, 5, 2, 4])
    t = b.node("Reshape", [t, b.node("Concat", [n, b.node("Mul", [c, b.ints("four", 4)]), h2, w2], axis=0)])
    z = b.conv_bn(t, 32, 16, 3)
    zs = b.node("Shape", [z])
    feat = b.node("Mul", [b.node("Mul", [b.node("Gather", [zs, b.ints("j1", 1)], axis=0),
                                          b.node("Gather", [zs, b.ints("j2", 2)], axis=0)]),
                          b.node("Gather", [zs, b.ints("j3", 3)], axis=0)])
    flat = b.node("Reshape", [z, b.node("Concat", [n, feat], axis=0)])
    out = b.layer_norm(b.dense(flat, 16 * (size // 4) ** 2, classes), classes, 3.0)
    _rename_output(b, out, "logits")
    return b.model("shape_arith", [("image", ["batch", 3, size, size])], [("logits", ["batch", classes])])


def grouped_cnn(seed: int = 0, size: int = 32, classes: int = 10) -> onnx.ModelProto:
    """Depthwise (group = channels) and grouped (group 4) convolutions, stride 1 and 2."""
    b = _Builder(seed)
    x = b.conv_bn("image", 3, 16, 3, stride=2)
    x = b.conv_bn(x, 16, 16, 3, group=16)
    x = b.conv_bn(x, 16, 32, 3, group=4)
    x = b.conv_bn(x, 32, 32, 3, stride=2, group=32)
    x = b.conv_bn(x, 32, 64, 1)
    out = b.classifier(x, 64, classes)
    _rename_output(b, out, "logits")
    return b.model("grouped_cnn", [("image", [1, 3, size, size])], [("logits", [1, classes])])


def attention(seed: int = 0, seq: int = 16, dim: int = 32, heads: int = 4, classes: int = 10) -> onnx.ModelProto:
    """A transformer encoder block as torch exports it: LayerNorm, MatMul projections, per-head Reshape and
    Transpose, scaled Softmax attention, and an MLP with the Erf form of GELU."""
    b = _Builder(seed)
    head = dim // heads

    def split_heads(t: str) -> str:
        return b.node("Transpose", [b.node("Reshape", [t, b.ints("heads", 1, seq, heads, head)])], perm=[0, 2, 1, 3])

    x = b.layer_norm("tokens", dim)
    q, k, v = (split_heads(b.dense(x, dim, dim)) for _ in range(3))
    scores = b.node("MatMul", [q, b.node("Transpose", [k], perm=[0, 1, 3, 2])])
    scores = b.node("Div", [scores, b.const("sqrt_d", np.array(np.sqrt(head), np.float32))])
    ctx = b.node("MatMul", [b.node("Softmax", [scores], axis=-1), v])
    ctx = b.node("Reshape", [b.node("Transpose", [ctx], perm=[0, 2, 1, 3]), b.ints("merge", 1, seq, dim)])
    x = b.node("Add", ["tokens", b.dense(ctx, dim, dim)])
    hidden = b.dense(b.layer_norm(x, dim), dim, 4 * dim)
    erf = b.node("Erf", [b.node("Div", [hidden, b.const("sqrt2", np.array(np.sqrt(2.0), np.float32))])])
    gelu = b.node("Mul", [b.node("Mul", [hidden, b.node("Add", [erf, b.const("one", np.array(1.0, np.float32))])]),
                          b.const("half", np.array(0.5, np.float32))])
    x = b.node("Add", [x, b.dense(gelu, 4 * dim, dim)])
    out = b.layer_norm(b.dense(b.layer_norm(x, dim), dim, classes), classes, 1.5)
    _rename_output(b, out, "logits")
    return b.model("attention", [("tokens", [1, seq, dim])], [("logits", [1, seq, classes])])


def split_concat(seed: int = 0, size: int = 32, classes: int = 10) -> onnx.ModelProto:
    """A YOLO-style stem and neck: Focus (strided Slices, Concat), a CSP block (Split, Concat) and spatial
    pyramid pooling (MaxPools, Concat)."""
    b = _Builder(seed)
    quarters = [b.node("Slice", ["image", b.ints("starts", dy, dx), b.ints("ends", size, size),
                                 b.ints("axes", 2, 3), b.ints("steps", 2, 2)]) for dy, dx in ((0, 0), (1, 0), (0, 1),
                                                                                              (1, 1))]
    x = b.conv_bn(b.node("Concat", quarters, axis=1), 12, 16, 3)
    left, right = b.node("Split", [x, b.ints("split", 8, 8)], n_out=2, axis=1), None
    right = b.nodes[-1].output[1]
    right = b.conv_bn(b.conv_bn(right, 8, 8, 3), 8, 8, 3)
    x = b.conv_bn(b.node("Concat", [left, right], axis=1), 16, 32, 3, stride=2)
    pools = [b.node("MaxPool", [x], kernel_shape=[k, k], strides=[1, 1], pads=[k // 2] * 4) for k in (5, 9, 13)]
    x = b.conv_bn(b.node("Concat", [x, *pools], axis=1), 128, 32, 1)
    out = b.classifier(x, 32, classes)
    _rename_output(b, out, "logits")
    return b.model("split_concat", [("image", [1, 3, size, size])], [("logits", [1, classes])])


def if_branch(seed: int = 0, size: int = 16, classes: int = 10) -> onnx.ModelProto:
    """An If on a constant condition (a converter's traced config flag) whose branches read the outer graph,
    with a dynamic batch, so the model is also frozen."""
    from onnx import TensorProto, helper, numpy_helper

    b = _Builder(seed)
    x = b.conv_bn("image", 3, 8, 3, stride=2)
    branches = []
    for op in ("Relu", "Sigmoid"):
        out = f"{op.lower()}_out"
        branches.append(helper.make_graph([helper.make_node(op, [x], [out])], f"{op.lower()}_branch", [],
                                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)]))
    cond = b.name("flag")
    b.nodes.append(helper.make_node("Constant", [], [cond], value=numpy_helper.from_array(np.array(True), "flag")))
    picked = b.node("If", [cond], then_branch=branches[0], else_branch=branches[1])
    flat = _dynamic_flatten(b, b.node("GlobalAveragePool", [picked]))
    out = b.layer_norm(b.dense(flat, 8, classes, std=1.0), classes, 3.0)
    _rename_output(b, out, "logits")
    return b.model("if_branch", [("image", ["batch", 3, size, size])], [("logits", ["batch", classes])])


def upsample_fpn(seed: int = 0, size: int = 32, classes: int = 10) -> onnx.ModelProto:
    """``resize_fpn`` as an opset-9 export: Upsample instead of Resize, LayerNorm spelled out."""
    return resize_fpn(seed, size, classes, upsample=True)


#: The zoo of real-export operator families; the tests run each untuned, tuned and against ONNX Runtime.
ZOO: dict[str, Callable[..., onnx.ModelProto]] = {
    "upsample_decoder": upsample_decoder,
    "resize_fpn": resize_fpn,
    "upsample_fpn": upsample_fpn,
    "dynamic_seq": dynamic_seq,
    "shape_arith": shape_arith,
    "grouped_cnn": grouped_cnn,
    "attention": attention,
    "split_concat": split_concat,
    "if_branch": if_branch,
}

#: name -> generator; each accepts ``seed`` plus the keyword arguments shown in its signature.
GENERATORS: dict[str, Callable[..., onnx.ModelProto]] = {
    "tiny_cnn": tiny_cnn,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "dynamic_cnn": dynamic_cnn,
    "two_tower": two_tower,
    **ZOO,
}

"""FLOP counts (multiply-add = 2) for hand-checkable graphs and the published architectures."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.generators import GENERATORS
from bench.stages.flops import count_flops


def model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        [numpy_helper.from_array(np.zeros(s, np.float32), n) for n, s in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_single_conv() -> None:
    """3x3 conv, 8->16 channels, 32x32 'same' output: 2 x 16*32*32 x 8*9 FLOPs."""
    m = model([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
              [("x", [1, 8, 32, 32])], [("y", [1, 16, 32, 32])], [("w", [16, 8, 3, 3])])
    assert count_flops(m).total == 2 * 16 * 32 * 32 * 8 * 9


def test_grouped_and_depthwise_conv_with_bias() -> None:
    """Depthwise 3x3 on 32 channels, stride 2, with bias: 2 x out x 9 + out."""
    out = 1 * 32 * 16 * 16
    m = model([helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                strides=[2, 2], group=32)],
              [("x", [1, 32, 32, 32])], [("y", [1, 32, 16, 16])], [("w", [32, 1, 3, 3]), ("b", [32])])
    assert count_flops(m).total == 2 * out * 9 + out


def test_gemm_and_batched_matmul() -> None:
    """Gemm (4x64)@(64x10)+bias and a batched MatMul (3,5,7)@(7,2)."""
    m = model([helper.make_node("Gemm", ["a", "w", "b"], ["y"], transB=1),
               helper.make_node("MatMul", ["p", "q"], ["z"])],
              [("a", [4, 64]), ("p", [3, 5, 7])], [("y", [4, 10]), ("z", [3, 5, 2])],
              [("w", [10, 64]), ("b", [10]), ("q", [7, 2])])
    c = count_flops(m)
    assert c.by_op == {"Gemm": 2 * 4 * 10 * 64 + 40, "MatMul": 2 * 3 * 5 * 2 * 7}


def test_conv_transpose() -> None:
    """ConvTranspose 4->2 channels, 2x2 kernel, stride 2 on 8x8: each input feeds 2*4 outputs."""
    m = model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
              [("x", [1, 4, 8, 8])], [("y", [1, 2, 16, 16])], [("w", [4, 2, 2, 2])])
    assert count_flops(m).total == 2 * (4 * 8 * 8) * 2 * 4


def test_elementwise_pooling_and_free_ops() -> None:
    """Relu costs one per element, MaxPool kernel-size per output, Reshape nothing."""
    m = model([helper.make_node("Relu", ["x"], ["r"]),
               helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
               helper.make_node("Flatten", ["p"], ["y"])],
              [("x", [1, 4, 8, 8])], [("y", [1, 64])])
    assert count_flops(m).by_op == {"Relu": 256, "MaxPool": 64 * 4, "Flatten": 0}


def test_unsupported_ops_are_listed_not_guessed() -> None:
    """An op without a formula is reported and contributes nothing."""
    m = model([helper.make_node("DFT", ["x"], ["y"])], [("x", [1, 8, 2])], [("y", [1, 8, 2])])
    c = count_flops(m)
    assert c.total == 0 and c.unsupported == ["DFT"]


@pytest.mark.parametrize(("name", "gmac"), [("resnet50", 4.1), ("resnet18", 1.8), ("mobilenet_v2", 0.3)])
def test_published_architectures(name: str, gmac: float) -> None:
    """Conv+Gemm multiply-adds match the published GMAC within 1% (ResNet-50: 4.1)."""
    c = count_flops(GENERATORS[name](seed=0))
    macs = (c.by_op["Conv"] + c.by_op["Gemm"]) / 2 / 1e9
    assert macs == pytest.approx(gmac, rel=0.01)
    assert c.unsupported == []

"""``tuning.layout``: NHWC convolutions give the same answer, and ReLU6 does not cost a transpose pair."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

if TYPE_CHECKING:
    from bench.stages.model import LoadedModel



def _graph(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], shape: list[int],
           out: list[int]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, out)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    sess = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]  # type: ignore[no-any-return]


def _model(tmp_path: Path, nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], x: np.ndarray,
           out: list[int]) -> LoadedModel:
    from bench.stages.model import LoadedModel

    path = tmp_path / "m.onnx"
    onnx.save(_graph(nodes, inits, list(x.shape), out), path)
    return LoadedModel("m", path, "0" * 64, {"x": x}, ((0, nodes[-1].output[0]),))


@pytest.mark.tvm
def test_clip_with_finite_constant_bounds_imports_as_relax_operators(tmp_path: Path) -> None:
    """Initializer and Constant-node bounds become R.maximum / R.minimum, an absent bound is skipped, a NaN
    bound keeps the importer's own Clip (ONNX reads it as no bound); the answer is unchanged."""
    from bench.stages import build
    from bench.suite.target import resolve

    f32 = np.float32
    inits = {"zero": np.array(0, f32), "nan": np.array(np.nan, f32), "three": np.array(3, f32)}
    nodes = [
        helper.make_node("Constant", [], ["six"], value=numpy_helper.from_array(np.array(6, f32))),
        helper.make_node("Clip", ["x", "zero", "six"], ["a"], name="relu6"),
        helper.make_node("Clip", ["a", "nan", "three"], ["b"], name="nan_low"),
        helper.make_node("Clip", ["b", "", "three"], ["c"], name="high_only"),
        helper.make_node("Mul", ["c", "three"], ["y"]),
    ]
    x = np.linspace(-10, 10, 16, dtype=f32).reshape(2, 8)
    model = _model(tmp_path, nodes, inits, x, [2, 8])

    text = build.import_onnx(model, "suite.yaml", "models[0]", clip_ops=True).script()
    assert text.count("R.maximum(") == 1 and text.count("R.minimum(") == 2, text
    assert text.count("R.call_tir(") == 2, text  # the NaN-bound Clip: the importer's maximum and minimum
    stock = build.import_onnx(model, "suite.yaml", "models[0]").script()
    assert "R.maximum(" not in stock and "R.minimum(" not in stock

    target = resolve("llvm -num-cores=2", "cpu")
    prepared = build.prepare(model, target, "suite.yaml", "models[0]", "NHWC")
    got = build.load_local(build.compile_executable(prepared, model, target, "s", "k"), model, target).outputs[0]
    np.testing.assert_array_equal(got, _run(onnx.load(model.path), x))


@pytest.mark.tvm
def test_nhwc_build_matches_nchw_and_keeps_relu6_inside_the_layout(tmp_path: Path) -> None:
    """Conv -> batch norm -> ReLU6 -> depthwise conv -> ReLU6 -> pool: converted to NHWC, no kernel transposes around a
    ReLU6 (only the graph's input and output are transposed), and the output equals the NCHW build's."""
    from bench.stages import build
    from bench.suite.target import resolve

    rng = np.random.default_rng(0)
    f32 = np.float32
    inits = {"w1": rng.standard_normal((16, 3, 3, 3)).astype(f32), "w2": rng.standard_normal((16, 1, 3, 3))
             .astype(f32), "zero": np.array([0], f32), "six": np.array([6], f32),  # shape (1,), as exporters write
             **{k: rng.uniform(0.5, 1.5, 16).astype(f32) for k in ("scale", "bias", "mean", "var")}}
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c0"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c0", "scale", "bias", "mean", "var"], ["c1"]),
        helper.make_node("Clip", ["c1", "zero", "six"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=16),
        helper.make_node("Clip", ["c2", "zero", "six"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["y"]),
    ]
    x = rng.standard_normal((1, 3, 16, 16)).astype(f32)
    model = _model(tmp_path, nodes, inits, x, [1, 16, 1, 1])
    target = resolve("llvm -num-cores=2", "cpu")

    outputs = {}
    for layout in (None, "NHWC"):
        prepared = build.prepare(model, target, "suite.yaml", "models[0]", layout)
        names = [gv.name_hint for gv in prepared.mod.functions]
        if layout:
            assert not [n for n in names if "transpose" in n and ("maximum" in n or "minimum" in n)], names
            assert sum("transpose" in n for n in names) <= 2, names
        outputs[layout] = build.load_local(build.compile_executable(prepared, model, target, "s", "k"),
                                           model, target).outputs[0]
    np.testing.assert_allclose(outputs["NHWC"], outputs[None], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outputs[None], _run(onnx.load(model.path), x), rtol=1e-4, atol=1e-4)


@pytest.mark.tvm
def test_an_operator_tvm_cannot_lower_converted_keeps_the_models_layout(tmp_path: Path) -> None:
    """Conv -> Resize -> ConvTranspose in NHWC: conv2d and the resize are converted, conv2d_transpose (no NHWC
    lowering in TVM 0.27; ConvertLayout carries the layout into it anyway) stays NCHW, the module builds, the
    record says which was which, and the answer equals ONNX Runtime's."""
    from bench.stages import build
    from bench.suite.target import resolve

    rng = np.random.default_rng(0)
    f32 = np.float32
    inits = {"w1": rng.normal(0, 0.3, (16, 3, 3, 3)).astype(f32), "w2": rng.normal(0, 0.3, (16, 8, 4, 4)).astype(f32),
             "scales": np.array([1, 1, 2, 2], f32)}
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c0"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("Resize", ["r0", "", "scales"], ["u0"], mode="nearest"),
        helper.make_node("ConvTranspose", ["u0", "w2"], ["y"], kernel_shape=[4, 4], strides=[2, 2], pads=[1] * 4),
    ]
    x = rng.standard_normal((1, 3, 16, 16)).astype(f32)
    model = _model(tmp_path, nodes, inits, x, [1, 8, 32, 32])
    target = resolve("llvm -num-cores=2", "cpu")

    prepared = build.prepare(model, target, "suite.yaml", "models[0]", "NHWC")
    assert prepared.layout_ops == {"converted": ["relax.image.resize2d", "relax.nn.conv2d"],
                                   "kept": ["relax.nn.conv2d_transpose"], "unlowerable": ["relax.nn.conv2d_transpose"]}
    got = build.load_local(build.compile_executable(prepared, model, target, "s", "k"), model, target).outputs[0]
    np.testing.assert_allclose(got, _run(onnx.load(model.path), x), rtol=1e-4, atol=1e-4)
    assert build.prepare(model, target, "suite.yaml", "models[0]").layout_ops is None


def test_tvm_errors_read_as_the_error_and_the_offending_call() -> None:
    """TVM's multi-line errors become one line: the error and the offending operator with its layouts, never the
    "# Metadata omitted" trailer that used to be shown as the whole reason."""
    from bench.stages.build import tvm_reason

    err = RuntimeError(
        "CodeGenVM cannot emit this Relax operator directly. Run the appropriate lowering pass.\n"
        "Offending call:\n"
        'R.nn.conv2d_transpose(alloc1, metadata["ir.GenericConst"][0], strides=[2, 2], data_layout="NHWC", '
        'kernel_layout="IOHW", out_layout="NHWC", out_dtype=None)\n'
        "# Metadata omitted. Use show_meta=True in script() method to show it.\n")
    assert tvm_reason(err) == ("CodeGenVM cannot emit this Relax operator directly. Run the appropriate lowering "
                               "pass.; offending call: nn.conv2d_transpose(data_layout=NHWC, kernel_layout=IOHW, "
                               "out_layout=NHWC)")
    assert tvm_reason(ValueError("")) == "ValueError"
    assert tvm_reason(ValueError("one line")) == "one line"

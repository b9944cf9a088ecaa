"""Model stage: generators, shape freezing of converter-style exports, inputs and errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from bench.errors import ModelError
from bench.generators import GENERATORS
from bench.stages.model import load_model
from bench.suite.case import expand
from bench.suite.schema import RpcSpec, load_suite


@pytest.mark.parametrize(
    ("name", "shape", "classes"),
    [("tiny_cnn", [1, 3, 64, 64], 10), ("resnet18", [1, 3, 224, 224], 1000),
     ("resnet50", [1, 3, 224, 224], 1000), ("mobilenet_v2", [1, 3, 224, 224], 1000)],
)
def test_generators_make_valid_deterministic_models(name: str, shape: list[int], classes: int) -> None:
    """Each built-in passes the ONNX checker, has the standard shapes and is seed-deterministic."""
    model = GENERATORS[name](seed=0)
    onnx.checker.check_model(model)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == shape
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [1, classes]
    assert model.SerializeToString() == GENERATORS[name](seed=0).SerializeToString()
    assert model.SerializeToString() != GENERATORS[name](seed=1).SerializeToString()


def test_resnet50_has_the_published_parameter_count() -> None:
    """ResNet-50 has 25.5 M parameters (plus BN statistics), as in torchvision."""
    model = GENERATORS["resnet50"](seed=0)
    params = sum(int(np.prod(i.dims)) for i in model.graph.initializer if len(i.dims) in (2, 4))
    assert 25.4e6 < params < 25.6e6


def test_logits_are_spread() -> None:
    """Generated classifiers give a spread softmax, so the top-5 check is meaningful."""
    import onnxruntime as ort

    sess = ort.InferenceSession(GENERATORS["mobilenet_v2"](seed=0).SerializeToString())
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    p = np.exp(sess.run(None, {"data": x})[0][0])
    p /= p.sum()
    top = np.sort(p)[::-1]
    assert 0.05 < top[0] < 0.95 and top[4] > 1e-3


def suite_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(body)
    return path


def first_case(path: Path):
    return expand(load_suite(path))[0]


@pytest.mark.tvm
def test_dynamic_export_is_frozen_and_imports(tmp_path: Path) -> None:
    """A symbolic batch with a run-time Reshape target is frozen so TVM can import it."""
    from bench.stages.build import import_onnx

    path = suite_file(tmp_path, """
models:
  - name: dyn
    source: {generator: dynamic_cnn}
    inputs: [{name: x, shape: [2, 3, 32, 32]}]
targets: [llvm]
""")
    model = load_model(first_case(path), tmp_path / "cache")
    assert model.path.name.startswith("frozen-")
    frozen = onnx.load(str(model.path))
    assert not any(n.op_type == "Shape" for n in frozen.graph.node)
    assert model.inputs["x"].shape == (2, 3, 32, 32)
    import_onnx(model, "s.yaml", "models[0]")


@pytest.mark.tvm
def test_symbolic_input_without_declaration_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Symbolic dims need a declared shape; the error says which input and what to add."""
    monkeypatch.chdir(tmp_path)
    path = suite_file(tmp_path, "models: [{name: dyn, source: {generator: dynamic_cnn}}]\ntargets: [llvm]\n")
    with pytest.raises(ModelError) as info:
        load_model(first_case(path), tmp_path / "cache")
    assert str(info.value) == ("s.yaml: models[0].inputs: input 'x' has symbolic shape ['batch', 3, 32, 32]: "
                               "declare 'inputs' with a static shape")


@pytest.mark.tvm
def test_multi_input_multi_output_selects_output_by_name(tmp_path: Path) -> None:
    """Models with several inputs and outputs work; the suite picks the checked output."""
    path = suite_file(tmp_path, """
models:
  - name: tt
    source: {generator: two_tower}
    inputs: [{name: image, shape: [1, 3, 32, 32]}, {name: meta, shape: [1, 4], seed: 7}]
    output: embedding
targets: [llvm]
""")
    model = load_model(first_case(path), tmp_path / "cache")
    assert model.outputs == ((1, "embedding"),)
    assert list(model.inputs) == ["image", "meta"]
    assert np.array_equal(model.inputs["meta"], np.random.default_rng(7).standard_normal((1, 4)).astype(np.float32))


@pytest.mark.tvm
@pytest.mark.parametrize(
    ("inputs", "output", "message"),
    [
        ("[{name: picture, shape: [1, 3, 32, 32]}]", "0",
         "s.yaml: models[0].inputs[0].name: the model has no input 'picture' (inputs: image, meta)"),
        ("[{name: image, shape: [1, 3, 32, 32]}]", "0",
         "s.yaml: models[0].inputs: model input 'meta' is not declared"),
        ("[{name: image, shape: [1, 1, 32, 32]}, {name: meta, shape: [1, 4]}]", "0",
         "s.yaml: models[0].inputs[0].shape: shape [1, 1, 32, 32] does not match the model's input 'image'"),
        ("[{name: image, shape: [1, 3, 32, 32]}, {name: meta, shape: [1, 4]}]", "probs",
         "s.yaml: models[0].output: the model has no output 'probs' (outputs: logits, embedding; or 'all')"),
        ("[{name: image, shape: [1, 3, 32, 32]}, {name: meta, shape: [1, 4]}]", "5",
         "s.yaml: models[0].output: output index 5 out of range"),
    ],
)
def test_input_and_output_mismatches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inputs: str, output: str,
                                     message: str) -> None:
    """Declared inputs and outputs are checked against the graph, with file and key."""
    monkeypatch.chdir(tmp_path)
    path = suite_file(tmp_path, f"""
models:
  - name: tt
    source: {{generator: two_tower}}
    inputs: {inputs}
    output: {output}
targets: [llvm]
""")
    with pytest.raises(ModelError) as info:
        load_model(first_case(path), tmp_path / "cache")
    assert str(info.value).startswith(message)


@pytest.mark.tvm
@pytest.mark.parametrize(("content", "message"), [
    (b"\x00\x01garbage", "is not a valid ONNX file"),
    (b"", "has an empty graph"),
    (GENERATORS["tiny_cnn"](seed=0).SerializeToString()[:3000], "is not a valid ONNX file"),
    (b"<html>404 Not Found</html>", "is not a valid ONNX file"),
], ids=["garbage", "empty", "truncated", "html"])
def test_broken_model_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, message: str) -> None:
    """A file that is not ONNX is reported with the suite file and key."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.onnx").write_bytes(content)
    path = suite_file(tmp_path, "models: [{name: m, source: {path: m.onnx}}]\ntargets: [llvm]\n")
    with pytest.raises(ModelError) as info:
        load_model(first_case(path), tmp_path / "cache")
    assert str(info.value).startswith("s.yaml: models[0].source: m.onnx ")
    assert message in str(info.value)


@pytest.mark.tvm
def test_unsupported_operator_named_with_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator TVM's importer lacks is named, with the node, before anything is built."""
    from onnx import TensorProto, helper

    from bench.stages.build import import_onnx

    monkeypatch.chdir(tmp_path)
    node = helper.make_node("DFT", ["x"], ["y"], name="spectrum")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "dft.onnx")
    path = suite_file(tmp_path, "models: [{name: fft, source: {path: dft.onnx}}]\ntargets: [llvm]\n")
    model = load_model(first_case(path), tmp_path / "cache")
    with pytest.raises(ModelError) as info:
        import_onnx(model, "s.yaml", "models[0]")
    assert str(info.value) == ("s.yaml: models[0]: model 'fft': operator 'DFT' (node 'spectrum') is not "
                               "supported by TVM's ONNX importer")


@pytest.mark.tvm
def test_tuning_key_tracks_model_target_and_budget(tmp_path: Path) -> None:
    """The tuning cache key changes with the model bytes, the resolved target and the budget."""
    from bench.stages.tuning_db import tuning_key

    path = suite_file(tmp_path, """
models: [{name: t, source: {generator: tiny_cnn}}]
targets: ["llvm -mcpu=core-avx2", "llvm -mcpu=skylake", {name: same, target: {kind: llvm, mcpu: core-avx2}}]
budgets: [8, 16]
""")
    cases = [c for c in expand(load_suite(path)) if c.variant == "tuned"]
    model = load_model(cases[0], tmp_path / "cache")
    keys = {c.id: tuning_key(c, model) for c in cases}
    assert keys["t-llvm_core-avx2-b8-tuned"] == keys["t-same-b8-tuned"]  # same target, two spellings
    assert len({keys["t-llvm_core-avx2-b8-tuned"], keys["t-llvm_skylake-b8-tuned"],
                keys["t-llvm_core-avx2-b16-tuned"]}) == 3
    other = type(model)(model.name, model.path, "0" * 64, model.inputs, ((0, "logits"),))
    assert tuning_key(cases[0], other) != keys[cases[0].id]


@pytest.mark.tvm
def test_image_input_with_imagenet_preprocessing_and_labels(tmp_path: Path) -> None:
    """An image is resized, center-cropped, normalised to NCHW; labels come from a file."""
    from PIL import Image

    from bench.stages.model import IMAGENET_MEAN, IMAGENET_STD

    Image.new("RGB", (320, 240), (255, 0, 128)).save(tmp_path / "pink.png")
    (tmp_path / "labels.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    path = suite_file(tmp_path, """
models:
  - name: t
    source: {generator: tiny_cnn}
    inputs: [{name: data, shape: [1, 3, 64, 64], data: {image: pink.png}}]
    labels: labels.txt
targets: [llvm]
""")
    model = load_model(first_case(path), tmp_path / "cache")
    x = model.inputs["data"]
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    expected = [(v / 255 - m) / s for v, m, s in zip((255, 0, 128), IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    np.testing.assert_allclose(x[0, :, 32, 32], expected, rtol=1e-5)
    assert model.labels is not None and model.labels[3] == "class3" and len(model.labels) == 10


@pytest.mark.tvm
def test_unreadable_image_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An image file that is not an image names the file and key."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"nope")
    path = suite_file(tmp_path, """
models:
  - name: t
    source: {generator: tiny_cnn}
    inputs: [{name: data, shape: [1, 3, 64, 64], data: {image: bad.png}}]
targets: [llvm]
""")
    with pytest.raises(ModelError) as info:
        load_model(first_case(path), tmp_path / "cache")
    assert str(info.value).startswith("s.yaml: models[0].inputs[0].data.image: cannot read image bad.png")


@pytest.mark.tvm
def test_tampered_model_cache_entry_is_set_aside_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A generated model whose cached bytes no longer match their recorded sha256 is moved and regenerated."""
    monkeypatch.chdir(tmp_path)
    path = suite_file(tmp_path, "models: [{name: m, source: {generator: tiny_cnn}}]\ntargets: [llvm]\n")
    cache = tmp_path / "cache"
    first = load_model(first_case(path), cache)
    cached = next((cache / "models").glob("gen-tiny_cnn-*.onnx"))
    cached.write_bytes(cached.read_bytes()[:-10] + b"0123456789")
    messages: list[str] = []
    again = load_model(first_case(path), cache, messages.append)
    assert again.sha256 == first.sha256 and cached.read_bytes() != b""
    assert "content does not match its recorded sha256" in messages[0]
    assert len(list((cache / "quarantine").glob("*gen-tiny_cnn-*.onnx"))) == 1


def scalar_model(path: Path) -> Path:
    """x float32 [1, 4], sr int64 scalar, ids int64 [3]: y = x * sr, z = ids + 1 (two outputs)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT), helper.make_node("Mul", ["x", "srf"], ["y"]),
         helper.make_node("Add", ["ids", "one"], ["z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("sr", TensorProto.INT64, []),
         helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("z", TensorProto.INT64, [3])],
        [helper.make_tensor("one", TensorProto.INT64, [], [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.tvm
def test_scalar_constant_range_and_npy_inputs(tmp_path: Path) -> None:
    """A scalar int64 input takes a constant, token ids a range, and a tensor can come from a .npy file;
    ``output: all`` checks every output."""
    scalar_model(tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.arange(4, dtype=np.float32).reshape(1, 4))
    path = suite_file(tmp_path, """
models:
  - name: m
    source: {path: m.onnx}
    inputs:
      - {name: x, shape: [1, 4], data: {npy: x.npy}}
      - {name: sr, shape: [], dtype: int64, data: {value: 16000}}
      - {name: ids, shape: [3], dtype: int64, data: {random: {low: 30000, high: 30522}}, seed: 3}
    output: all
targets: [llvm]
""")
    model = load_model(first_case(path), tmp_path / "cache")
    assert model.inputs["sr"].shape == () and model.inputs["sr"].dtype == np.int64 and model.inputs["sr"] == 16000
    assert np.array_equal(model.inputs["x"], np.arange(4, dtype=np.float32).reshape(1, 4))
    ids = model.inputs["ids"]
    assert ids.dtype == np.int64 and ((ids >= 30000) & (ids < 30522)).all()
    assert np.array_equal(ids, np.random.default_rng(3).integers(30000, 30522, size=[3], dtype="int64"))
    assert model.outputs == ((0, "y"), (1, "z"))
    import onnxruntime as ort

    y, _ = ort.InferenceSession(str(model.path)).run(None, model.inputs)
    assert np.array_equal(y, model.inputs["x"] * 16000)


@pytest.mark.tvm
@pytest.mark.parametrize(
    ("output", "expected"),
    [("1", ((1, "z"),)), ("[z, 0]", ((1, "z"), (0, "y"))), ("y", ((0, "y"),))],
)
def test_output_selection(tmp_path: Path, output: str, expected: tuple) -> None:
    scalar_model(tmp_path / "m.onnx")
    path = suite_file(tmp_path, f"""
models:
  - name: m
    source: {{path: m.onnx}}
    inputs: [{{name: x, shape: [1, 4]}}, {{name: sr, shape: [], dtype: int64}}, {{name: ids, shape: [3], dtype: int64}}]
    output: {output}
targets: [llvm]
""")
    assert load_model(first_case(path), tmp_path / "cache").outputs == expected


@pytest.mark.tvm
def test_scalar_declared_as_a_vector_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    scalar_model(tmp_path / "m.onnx")
    path = suite_file(tmp_path, """
models:
  - name: m
    source: {path: m.onnx}
    inputs: [{name: x, shape: [1, 4]}, {name: sr, shape: [1], dtype: int64}, {name: ids, shape: [3], dtype: int64}]
    output: [0, w]
targets: [llvm]
""")
    with pytest.raises(ModelError, match=r"^s.yaml: models\[0\].inputs\[1\].shape: shape \[1\] does not match the "
                                         r"model's input 'sr' \[\]$"):
        load_model(first_case(path), tmp_path / "cache")


def tuned_tiny_case(folder: Path, target: str, tuning: str) -> Any:
    """The tuned case of a one-model suite (tiny CNN, budget 8) with these tuning settings, in its own folder."""
    folder.mkdir(exist_ok=True)
    path = suite_file(folder, f"""
models: [{{name: t, source: {{generator: tiny_cnn}}}}]
targets: ["{target}"]
budgets: [8]
tuning: {{{tuning}}}
""")
    [case] = [c for c in expand(load_suite(path)) if c.variant == "tuned"]
    return case


@pytest.mark.tvm
def test_tuning_layout_resolves_per_target_and_enters_the_key(tmp_path: Path) -> None:
    """``auto`` is NHWC on CPU and the model's own layout on GPU; NHWC and the model's layout are two tuning
    keys, and the model's layout keeps the key it had before the setting existed (caches stay valid)."""
    from bench.stages.tuning_db import key_settings, tuning_key

    def tuned(layout: str, target: str = "llvm -num-cores=2") -> Any:
        return tuned_tiny_case(tmp_path / layout, target, f"layout: {layout}")

    auto, nhwc, model_layout = tuned("auto"), tuned("NHWC"), tuned("model")
    assert (auto.conv_layout, nhwc.conv_layout, model_layout.conv_layout) == ("NHWC", "NHWC", None)
    assert tuned("auto", "cuda -arch=sm_90").conv_layout is None
    model = load_model(auto, tmp_path / "cache")
    assert tuning_key(auto, model) == tuning_key(nhwc, model) != tuning_key(model_layout, model)
    assert "layout" not in key_settings(model_layout, model) and key_settings(nhwc, model)["layout"] == "NHWC"


@pytest.mark.tvm
def test_cache_flush_follows_the_weights_against_the_cache_and_enters_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` flushes on CPU when the weights outgrow the last-level cache, never for a GPU or a remote
    device; a flushed search is a tuning key of its own, and where nothing is flushed the key is the one
    from before the setting existed (caches stay valid)."""
    import bench.stages.tuning_db
    from bench.stages.metaschedule import make_runner
    from bench.stages.tuning_db import cache_flush, key_settings, tuning_key

    def tuned(flush: str, target: str = "llvm -num-cores=2") -> Any:
        return tuned_tiny_case(tmp_path / f"{flush}-{target.split()[0]}", target, f"cache_flush: {flush}")

    auto, on, off = tuned("auto"), tuned("true"), tuned("false")
    model = load_model(auto, tmp_path / "cache")
    weights = model.weight_bytes
    assert 10_000 < weights < 1_000_000  # the tiny CNN's convolution and dense weights, in float32
    monkeypatch.setattr(bench.stages.tuning_db, "last_level_cache_bytes", lambda: weights - 1)
    assert cache_flush(auto, model)[0] and cache_flush(on, model)[0] and not cache_flush(off, model)[0]
    assert "MiB of weights" in cache_flush(auto, model)[1]
    assert not cache_flush(tuned("true", "cuda -arch=sm_90"), model)[0]
    remote = replace(auto, target=replace(auto.target, rpc=RpcSpec(key="box")))
    assert cache_flush(remote, model) == (False, "auto: a remote device's caches are not known here "
                                                 "(set tuning.cache_flush)")
    flushed_key = tuning_key(auto, model)
    assert flushed_key == tuning_key(on, model) != tuning_key(off, model)
    monkeypatch.setattr(bench.stages.tuning_db, "last_level_cache_bytes", lambda: weights)
    assert not cache_flush(auto, model)[0] and tuning_key(auto, model) == tuning_key(off, model)
    assert "cache_flush" not in key_settings(off, model) and key_settings(on, model)["cache_flush"] is True
    for flush in (True, False):
        runner = make_runner(auto, None, tmp_path, lambda message: None, flush=flush)
        assert runner.evaluator_config.enable_cpu_cache_flush is flush

"""The reference runtime: ONNX Runtime runs the frozen model, or the model as shipped where it refuses that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.errors import ModelError
from bench.stages import reference
from bench.stages.model import load_model
from bench.suite.case import expand
from bench.suite.schema import load_suite

#: Suites resolve their targets through TVM.
pytestmark = pytest.mark.tvm

SUITE = """
models:
  - name: dyn
    source: {generator: dynamic_cnn}
    inputs: [{name: x, shape: [2, 3, 32, 32]}]
targets: [llvm]
"""


def _model(tmp_path: Path) -> Any:
    (tmp_path / "s.yaml").write_text(SUITE)
    return load_model(expand(load_suite(tmp_path / "s.yaml"))[0], tmp_path / "cache", progress=lambda _: None)


def test_onnx_runtime_runs_the_frozen_model_where_it_can(tmp_path: Path) -> None:
    """A frozen model keeps its source and the suite's sizes for its symbolic dims; ORT runs the frozen file."""
    model = _model(tmp_path)
    assert model.path.name.startswith("frozen-") and model.source is not None and model.free_dims == {"batch": 2}
    ref = reference.open_reference(model, threads=1)
    assert ref.model == "frozen" and ref.run()[0].shape == (2, 10)


def test_onnx_runtime_runs_the_model_as_shipped_when_it_refuses_the_frozen_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If ORT refuses the harness's frozen file, it runs the file as shipped with its free dimensions set to the
    suite's sizes (same answer), says so once, and names the reason; if that fails too, one line names the model
    and both reasons: no traceback, no "internal error"."""
    model = _model(tmp_path)
    expected = reference.open_reference(model, threads=1).run()
    opened: list[tuple[str, dict[str, int]]] = []
    real_open = reference._open

    def refuse_frozen(path: str, threads: int | None, free_dims: dict[str, int]) -> Any:
        opened.append((Path(path).name, free_dims))
        if path == str(model.path):
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Node (If_0) Op (If) [ShapeInferenceError] First "
                               "input tensor must have rank 3\nmore detail")
        return real_open(path, threads, free_dims)

    monkeypatch.setattr(reference, "_open", refuse_frozen)
    messages: list[str] = []
    ref = reference.open_reference(model, threads=1, progress=messages.append)
    assert ref.model == "as shipped"
    assert opened == [(model.path.name, {}), (model.source.name, {"batch": 2})]
    np.testing.assert_allclose(ref.run()[0], expected[0], rtol=1e-5, atol=1e-6)
    assert messages == ["[ort] model 'dyn': ONNX Runtime refused the frozen model (frozen: [ONNXRuntimeError] : 1 : "
                        "FAIL : Node (If_0) Op (If) [ShapeInferenceError] First input tensor must have rank 3); "
                        "running it as shipped, free dimensions set (batch=2)"]

    def refuse_all(path: str, threads: int | None, free_dims: dict[str, int]) -> Any:
        raise RuntimeError(f"cannot load {Path(path).name}")

    monkeypatch.setattr(reference, "_open", refuse_all)
    with pytest.raises(ModelError) as info:
        reference.open_reference(model, threads=1, where="s.yaml", key="models[0]")
    assert str(info.value) == (f"s.yaml: models[0]: model 'dyn': ONNX Runtime cannot run it (frozen: cannot load "
                               f"{model.path.name}; as shipped: cannot load {model.source.name})")

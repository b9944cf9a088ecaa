"""The generator zoo: operator families of real exports build untuned and tuned, in both layouts, and agree with
ONNX Runtime (bench.generators.ZOO; suites/zoo.yaml runs the same models through pytest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.generators import ZOO
from bench.stages import check
from bench.suite.case import expand
from bench.suite.schema import load_suite

pytestmark = [pytest.mark.slow, pytest.mark.tvm]

#: Models without convolutions, where the layout changes nothing: built in the default layout only.
NO_CONV = {"dynamic_seq", "attention"}
CASES = [(name, layout) for name in ZOO for layout in ("auto", "model") if layout == "auto" or name not in NO_CONV]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from bench.run.session import BenchSession

    return BenchSession(tmp_path_factory.mktemp("zoo-cache"), progress=lambda _: None)


def test_the_zoo_suite_names_every_zoo_model() -> None:
    """suites/zoo.yaml runs every generator of the zoo, so a new one cannot be left out of it."""
    suite = load_suite(Path(__file__).resolve().parents[2] / "suites" / "zoo.yaml")
    assert [m.source.generator for m in suite.spec.models] == list(ZOO)


@pytest.mark.parametrize(("name", "layout"), CASES, ids=[f"{n}-{lay}" for n, lay in CASES])
def test_zoo_model_builds_tunes_and_agrees_with_onnx_runtime(session: Any, tmp_path: Path, name: str, layout: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Untuned and tuned (16 trials; a population of 16, as the search's quality is not the point) builds give
    ONNX Runtime's top-5 on every output position; in NHWC every convolution is converted, and only operators TVM
    cannot lower converted (conv2d_transpose) keep the model's layout. ONNX Runtime runs the frozen model where the
    harness froze one."""
    monkeypatch.setenv("TVM_NUM_THREADS", "2")  # the target's threads, for the runner processes tuning starts
    zoo = load_suite(Path(__file__).resolve().parents[2] / "suites" / "zoo.yaml")
    spec = next(m for m in zoo.spec.models if m.name == name)
    inputs = "" if spec.inputs is None else (f"\n    inputs: [{{name: {spec.inputs[0].name}, "
                                             f"shape: {spec.inputs[0].shape}}}]")
    (tmp_path / "s.yaml").write_text(f"""
name: zoo-{layout}
ort: false
models:
  - name: {name}
    source: {{generator: {name}}}{inputs}
targets: [{{name: cpu, target: "llvm -num-cores=2"}}]
budgets: [{{name: b16, trials: 16}}]
tuning: {{layout: {layout}, population: 16}}
""")
    [case] = [c for c in expand(load_suite(tmp_path / "s.yaml")) if c.variant == "tuned"]
    model = session.model(case)
    prepared = session.prepared(case, model)
    untuned = session.untuned(case, model, prepared)
    reference = session.reference_output(case, model)
    assert session.ort(case, model).model == ("frozen" if model.source is not None else "as shipped")
    _, tuned = session.tuned(case, model)
    for runtime, outputs in (("untuned", untuned.outputs), ("tuned", tuned.outputs)):
        verdict = check.compare_outputs(outputs, reference, model.outputs, case.check, (runtime, "onnxruntime"))
        assert verdict.ok, verdict.message
    assert tuned.scheduled_flop_share is not None and tuned.scheduled_flop_share >= 0.5
    if layout == "model" or name in NO_CONV:
        assert prepared.layout_ops is None or "relax.nn.conv2d" not in prepared.layout_ops["converted"]
        return
    assert prepared.layout_ops is not None and "relax.nn.conv2d" in prepared.layout_ops["converted"]
    unlowerable = {"upsample_decoder": ["relax.nn.conv2d_transpose"]}.get(name, [])
    assert prepared.layout_ops["unlowerable"] == unlowerable, prepared.layout_ops

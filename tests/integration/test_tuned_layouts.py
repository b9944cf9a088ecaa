"""Tuned builds in NHWC with prepacked weights: the kernels really change, the answer does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.run.session import BenchSession
from bench.stages import build
from bench.suite.case import expand
from bench.suite.schema import load_suite

pytestmark = [pytest.mark.slow, pytest.mark.tvm]

SUITE = """
name: layouts
ort: false
models: [{{name: tiny, source: {{generator: tiny_cnn}}}}]
targets: [{{name: cpu, target: "llvm -num-cores=2"}}]
budgets: [{{name: b16, trials: 16}}]
tuning: {{layout: {layout}, cpu_weight_prepack: {prepack}, population: 16}}
"""


@pytest.mark.parametrize(("layout", "prepack"), [("auto", True), ("model", False)])
def test_tuned_build_in_its_layout_matches_untuned(tmp_path: Path, layout: str, prepack: bool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """NHWC + prepack: every tuned convolution reads weights laid out at build time (``_prepacked`` kernels,
    no weight rewrite left to run per call); NCHW without: none. Both agree with the untuned build."""
    monkeypatch.setenv("TVM_NUM_THREADS", "2")  # the target's threads, for the runner processes tuning starts
    (tmp_path / "s.yaml").write_text(SUITE.format(layout=layout, prepack=str(prepack).lower()))
    [case] = [c for c in expand(load_suite(tmp_path / "s.yaml")) if c.variant == "tuned"]
    session = BenchSession(tmp_path / "cache", progress=lambda _: None)
    model = session.model(case)
    tuned, built = session.tuned(case, model)
    untuned = session.untuned(case, model, session.prepared(case, model))

    prepared = session.prepared(case, model)
    names = [gv.name_hint for gv in build.apply_database(prepared, case.target.tvm(), tuned.work_dir,
                                                         case.weight_prepack).functions]
    convs = [n for n in names if "conv2d" in n]
    assert convs, names
    if prepack:
        assert case.conv_layout == "NHWC" and all(n.endswith("_prepacked") for n in convs), convs
    else:
        assert case.conv_layout is None and not any("prepacked" in n for n in names), names
    assert not [n for n in names if "layout_transform" in n or "te_layout_transform" in n], names
    assert built.scheduled_flop_share == 1.0
    np.testing.assert_allclose(built.outputs[0], untuned.outputs[0], rtol=1e-4, atol=1e-4)

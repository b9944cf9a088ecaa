"""Matrix expansion: cross product, exclude/include, variants and readable ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import SuiteError
from bench.suite.case import expand
from bench.suite.schema import load_suite

SUITE = """
models:
  - {name: tiny, source: {generator: tiny_cnn}}
  - {name: r18, source: {generator: resnet18}}
targets:
  - llvm -num-cores=2
  - {name: avx2, target: "llvm -mcpu=core-avx2"}
budgets: [0, 16, {name: big, trials: 256, max_trials_per_task: 32}]
"""

pytestmark = pytest.mark.tvm  # expanding a suite resolves its targets with TVM


def cases(tmp_path: Path, extra: str = "") -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(SUITE + extra)
    return [c.id for c in expand(load_suite(path))]


def test_cross_product_with_variants(tmp_path: Path) -> None:
    """Every CPU model x target gets one untuned, one ort and one tuned item per non-zero budget."""
    ids = cases(tmp_path)
    assert ids[:5] == ["tiny-llvm-untuned", "tiny-llvm-ort", "tiny-llvm-b16-tuned", "tiny-llvm-big-tuned",
                       "tiny-avx2-untuned"]
    assert len(ids) == 2 * 2 * 4
    assert len(set(ids)) == len(ids)


def test_exclude_and_include(tmp_path: Path) -> None:
    """Exclude removes matching combinations; include adds explicit ones back."""
    ids = cases(tmp_path, "matrix:\n  exclude: [{model: r18}, {budget: big}]\n"
                          "  include: [{model: r18, target: avx2, budget: b16}]\n")
    assert ids == ["tiny-llvm-untuned", "tiny-llvm-ort", "tiny-llvm-b16-tuned", "tiny-avx2-untuned",
                   "tiny-avx2-ort", "tiny-avx2-b16-tuned", "r18-avx2-untuned", "r18-avx2-ort", "r18-avx2-b16-tuned"]


def test_zero_budget_means_untuned_only(tmp_path: Path) -> None:
    """Budget 0 produces only the untuned (and ort) variants."""
    ids = cases(tmp_path, "matrix:\n  exclude: [{budget: b16}, {budget: big}]\n")
    assert all(i.endswith(("-untuned", "-ort")) for i in ids) and len(ids) == 8


def test_ort_peer_switches_off_per_suite_and_model(tmp_path: Path) -> None:
    """ort: false on the suite removes the peer; a model can turn it back on."""
    ids = cases(tmp_path, "ort: false\n")
    assert not any(i.endswith("-ort") for i in ids)
    path = tmp_path / "m2.yaml"
    path.write_text(SUITE.replace("{name: r18, source: {generator: resnet18}}",
                                  "{name: r18, source: {generator: resnet18}, ort: true}") + "ort: false\n")
    assert [c.id for c in expand(load_suite(path)) if c.variant == "ort"] == ["r18-llvm-ort", "r18-avx2-ort"]


def test_no_ort_peer_on_gpu_targets(tmp_path: Path) -> None:
    """The ONNX Runtime peer is a CPU peer: GPU targets get untuned and tuned only."""
    path = tmp_path / "g.yaml"
    path.write_text("models: [{name: t, source: {generator: tiny_cnn}}]\n"
                    "targets: [{name: gpu, target: {kind: cuda, arch: sm_90, host: llvm}}]\nbudgets: [8]\n")
    assert [c.id for c in expand(load_suite(path))] == ["t-gpu-untuned", "t-gpu-b8-tuned"]


def test_cases_carry_resolved_settings(tmp_path: Path) -> None:
    """A case knows its budget, target JSON and per-model timing."""
    path = tmp_path / "m.yaml"
    path.write_text(SUITE.replace("{name: tiny, source: {generator: tiny_cnn}}",
                                  "{name: tiny, source: {generator: tiny_cnn}, timing: {rounds: 4, min_rounds: 2}}"))
    by_id = {c.id: c for c in expand(load_suite(path))}
    case = by_id["tiny-avx2-big-tuned"]
    assert case.budget.trials == 256 and case.budget.max_trials_per_task == 32
    assert '"mcpu": "core-avx2"' in case.target.json
    assert case.timing.rounds == 4
    assert case.tuned_key != by_id["tiny-avx2-b16-tuned"].tuned_key


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("matrix:\n  exclude: [{model: vgg}]\n",
         "m.yaml: matrix.exclude[0].model: unknown model 'vgg'; known: tiny, r18"),
        ("matrix:\n  include: [{model: tiny}]\n", "m.yaml: matrix.include[0]: an include entry names a model"),
    ],
)
def test_bad_matrix_references(tmp_path: Path, extra: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Matrix entries must name known models, targets and budgets."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SuiteError) as info:
        cases(tmp_path, extra)
    assert str(info.value).startswith(message)


def test_unknown_target_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A target TVM does not know fails validation with file and key."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.yaml").write_text(SUITE.replace("llvm -num-cores=2", "llvm -mcpu=pentium9000"))
    with pytest.raises(SuiteError) as info:
        expand(load_suite(tmp_path / "t.yaml"))
    assert str(info.value).startswith("t.yaml: targets[0]: LLVM does not know the CPU 'pentium9000'")


def test_colliding_target_ids_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two targets with the same id would make ambiguous test ids."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.yaml").write_text(SUITE.replace("{name: avx2, target: \"llvm -mcpu=core-avx2\"}", "llvm"))
    with pytest.raises(SuiteError, match=r"targets\[1\]: two targets have the id 'llvm'"):
        expand(load_suite(tmp_path / "t.yaml"))

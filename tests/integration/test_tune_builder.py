"""The tuning builder: candidates compiled as the final build is, linked where the runner can load them as they are."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest

from bench.stages import metaschedule

pytestmark = [pytest.mark.tvm]


def _matmul() -> Any:
    import tvm
    from tvm import te

    a = te.placeholder((32, 32), name="A")
    b = te.placeholder((32, 32), name="B")
    k = te.reduce_axis((0, 32), name="k")
    c = te.compute((32, 32), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tvm.IRModule({"main": te.create_prim_func([a, b, c])})


@pytest.mark.parametrize("shared", [True, False])
def test_candidates_reach_the_runner_linked_on_this_host_and_archived_for_a_device(shared: bool) -> None:
    """A local runner gets a shared library it loads as it is; a remote one gets the tar it links itself.
    Either way the candidate is measured."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    mod = _matmul()
    target = tvm.target.Target({"kind": "llvm", "num-cores": 1})
    builder = metaschedule.pooled_builder(1, 60.0, shared=shared)
    try:
        [result] = builder.build([ms.builder.BuilderInput(mod, target)])
    finally:
        builder.close()
    assert result.error_msg is None, result.error_msg
    artifact = Path(result.artifact_path)
    assert artifact.suffix == (".so" if shared else ".tar")
    assert shared != tarfile.is_tarfile(artifact)

    runner = ms.runner.LocalRunner(timeout_sec=60,
                                   evaluator_config=ms.runner.EvaluatorConfig(number=1, repeat=1))
    [future] = runner.run([ms.runner.RunnerInput(str(artifact), "cpu",
                                                 ms.arg_info.ArgInfo.from_prim_func(mod["main"]))])
    measured = future.result()
    assert measured.error_msg is None, measured.error_msg
    assert len(measured.run_secs) == 1 and float(measured.run_secs[0]) > 0


def test_candidates_compile_with_the_target_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """The final build compiles with the target as resolved, so candidates must too: a ResNet-18 candidate
    timed 1.07 ms at LLVM -O2 ran 29 ms at the final build's -O3."""
    import tvm
    import tvm.driver

    seen: list[Any] = []
    monkeypatch.setattr(tvm.driver, "build", lambda mod, target: seen.append(target.export()))
    for target in ({"kind": "llvm", "mcpu": "znver4"}, {"kind": "llvm", "opt-level": 1}):
        metaschedule.fast_build(_matmul(), tvm.target.Target(target), None)
        assert seen.pop() == tvm.target.Target(target).export()


def test_each_cpu_target_gets_its_own_architectures_intrinsics() -> None:
    """The architecture comes from the target's mtriple, else this host's; one nobody knows gets every CPU's."""
    import platform

    import tvm

    for triple, arch in (("aarch64-linux-gnu", "arm"), ("armv7l-linux-gnueabihf", "arm"),
                         ("riscv64-unknown-linux-gnu", "riscv"), ("x86_64-linux-gnu", "x86"), ("wasm32", None)):
        assert metaschedule.cpu_arch(tvm.target.Target({"kind": "llvm", "mtriple": triple})) == arch, triple
    host = metaschedule.cpu_arch(tvm.target.Target("llvm"))
    assert host == {"x86_64": "x86", "aarch64": "arm"}.get(platform.machine(), host)


SPACES = """
import importlib
import sys
from pathlib import Path

from bench.run.session import BenchSession
from bench.stages import metaschedule
from bench.suite.case import expand
from bench.suite.schema import load_suite
from tvm.s_tir import meta_schedule as ms

[case] = [c for c in expand(load_suite(Path(sys.argv[1]))) if c.variant == "tuned"]
target = case.target.tvm()
session = BenchSession(Path(sys.argv[2]), progress=lambda _: None)
tasks = ms.relax_integration.extract_tasks(session.prepared(case, session.model(case)).mod, target, {})


def spaces():
    for task in tasks:
        context = ms.TuneContext(task.dispatched[0], target=target, space_generator="post-order-apply",
                                 search_strategy="evolutionary", task_name=task.task_name, rand_state=0)
        print(task.task_name, [str(s.trace) for s in context.generate_design_space()])


def parsed():
    print("cuda intrinsics parsed:", "tvm.s_tir.tensor_intrin.cuda" in sys.modules,
          "arm intrinsics parsed:", "tvm.s_tir.tensor_intrin.arm_cpu" in sys.modules)


metaschedule.register_intrinsics(target)  # what a tuning does
spaces()
parsed()
print("--- TVM's whole package")
del sys.modules["tvm.s_tir.tensor_intrin"]  # the stub: TVM's own __init__ runs now, as a tuning without us
importlib.import_module("tvm.s_tir.tensor_intrin")
spaces()
parsed()
"""


@pytest.mark.slow
def test_a_cpu_tuning_parses_only_cpu_intrinsics_and_searches_the_same_spaces(tmp_path: Path) -> None:
    """register_intrinsics for this host's target skips CUDA's, ROCm's and Hexagon's TVMScript intrinsics
    (10-18 s per tuning process) and the other CPU architectures' (1.3 s), and every task of the zoo's
    grouped_cnn (NHWC convolutions, depthwise and grouped) gets the same design spaces as after TVM's whole
    tensor_intrin package is imported, in the same process."""
    import subprocess
    import sys

    import tvm

    arm_host = metaschedule.cpu_arch(tvm.target.Target("llvm")) == "arm"

    (tmp_path / "s.yaml").write_text("""
models: [{name: g, source: {generator: grouped_cnn}}]
targets: [{name: cpu, target: "llvm -num-cores=2"}]
budgets: [{name: b8, trials: 8}]
""")
    proc = subprocess.run([sys.executable, "-c", SPACES, str(tmp_path / "s.yaml"), str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours, whole = (part.splitlines() for part in proc.stdout.split("--- TVM's whole package\n"))
    assert ours[-1] == f"cuda intrinsics parsed: False arm intrinsics parsed: {arm_host}"
    assert whole[-1] == "cuda intrinsics parsed: True arm intrinsics parsed: True"
    assert len(ours) > 5 and ours[:-1] == whole[:-1]

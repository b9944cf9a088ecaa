"""The memory a build plans to allocate, read while TVM compiles it (bench.stages.memory_plan)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench.stages.model import LoadedModel

F32 = np.float32


def _conv_mlp(tmp_path: Path, batch: int) -> LoadedModel:
    """A padded 3x3 convolution (whose padded input is a kernel workspace), ReLU, flatten, a dense layer."""
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((8, 3, 3, 3)).astype(F32),
             "d": rng.standard_normal((8 * 16 * 16, 10)).astype(F32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("MatMul", ["f", "d"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = tmp_path / f"m{batch}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    x = rng.standard_normal((batch, 3, 16, 16)).astype(F32)
    return LoadedModel("m", path, "0" * 64, {"x": x}, ((0, "y"),))


@pytest.mark.tvm
def test_the_plan_is_tvms_own_estimate_in_bytes_and_grows_with_the_batch(tmp_path: Path) -> None:
    """The planned and unplanned bytes are those TVM's estimate_memory_usage prints (rounded to GB) for the module
    the build compiled; the constants are the weights; a larger batch plans more; watching changes no answer."""
    import tvm
    from tvm import relax

    from bench.stages import build, memory_plan
    from bench.suite.target import resolve

    target = resolve("llvm -num-cores=2", "cpu")
    plans = {}
    for batch in (1, 4):
        model = _conv_mlp(tmp_path, batch)
        prepared = build.prepare(model, target, "s", "k", None)
        compiled = build.compile_executable(prepared, model, target, "s", "k")
        plan = compiled.memory_plan
        assert plan is not None
        plans[batch] = plan

        printed: list[str] = []

        @tvm.ir.instrument.pass_instrument
        class Estimate:
            def __init__(self, out: list[str]) -> None:
                self.out = out

            def run_after_pass(self, mod: object, info: object) -> None:
                if str(info.name).endswith("StaticPlanBlockMemory"):  # type: ignore[attr-defined]
                    self.out.append(relax.analysis.estimate_memory_usage(mod))

        with tvm.transform.PassContext(opt_level=2, instruments=[Estimate(printed)]):
            plain = tvm.compile(prepared.mod, target=target.tvm())
        gb = [float(v) for v in re.findall(r"total size ([\d.e-]+) GB", printed[0])]
        assert [f"{plan.unplanned_bytes / 2**30:.4}", f"{plan.planned_bytes / 2**30:.4}"] == [f"{v:.4}" for v in gb]
        assert plan.constant_bytes == model.weight_bytes == (8 * 3 * 3 * 3 + 8 * 16 * 16 * 10) * 4
        assert plan.workspace_bytes >= batch * 3 * 18 * 18 * 4  # the padded input
        assert plan.dynamic_allocations == 0 and plan.allocations >= 1

        dev = tvm.cpu()
        watched = build.load_local(compiled, model, target).outputs[0]
        unwatched = relax.VirtualMachine(plain, dev)["main"](tvm.runtime.tensor(model.inputs["x"], dev)).numpy()
        np.testing.assert_array_equal(watched, unwatched)
    assert plans[4].planned_bytes == 4 * plans[1].planned_bytes
    assert plans[4].workspace_bytes == 4 * plans[1].workspace_bytes
    assert plans[4].constant_bytes == plans[1].constant_bytes
    assert memory_plan.MemoryPlan(**plans[1].as_dict()) == plans[1]


@pytest.mark.tvm
def test_no_plan_where_the_pipeline_ran_no_planning_pass_or_a_module_cannot_be_read() -> None:
    """A pipeline the harness does not know (no StaticPlanBlockMemory) gives no plan rather than zeros; a module
    the watch cannot read gives no plan and says why, and does not fail the build."""
    from types import SimpleNamespace

    from bench.stages.memory_plan import PlanWatch

    assert PlanWatch().plan() is None
    watch = PlanWatch()
    watch.run_after_pass(object(), SimpleNamespace(name="relax.StaticPlanBlockMemory"))
    assert watch.plan() is None and watch.error is not None
    assert watch.error.startswith("after relax.StaticPlanBlockMemory: AttributeError")

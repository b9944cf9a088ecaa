"""Work per inference: floating-point operations counted from the ONNX graph.

Convention: a multiply-add is 2 FLOPs (so ResNet-50's 4.1 GMAC is 8.2 GFLOP),
element-wise ops cost 1 FLOP per output element, and data movement (Reshape,
Transpose, Concat, ...) costs nothing. Shapes come from ONNX shape inference
on the frozen (static-shape) model. Operators we have no formula for are
listed in ``unsupported`` rather than guessed, so a reader knows the total is
a lower bound. An ``If`` counts its costlier branch: which one runs is known
only at run time, and both usually do the same work for other settings
(Silero VAD's 16 kHz and 8 kHz paths).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

#: Output elements x this many FLOPs.
ELEMENTWISE = {
    "Add": 1, "Sub": 1, "Mul": 1, "Div": 1, "Relu": 1, "LeakyRelu": 2, "PRelu": 2, "Clip": 2, "Max": 1,
    "Min": 1, "Sigmoid": 4, "Tanh": 4, "HardSigmoid": 3, "HardSwish": 4, "Exp": 1, "Log": 1, "Sqrt": 1,
    "Neg": 1, "Abs": 1, "Pow": 1, "Erf": 1, "Reciprocal": 1, "Sum": 1, "Mean": 1, "Where": 1, "Equal": 1,
    "Less": 1, "Greater": 1, "Not": 1, "And": 1, "Or": 1, "Gelu": 8,
    # Inference-mode normalisations: BatchNorm is a scale and a shift; LayerNorm is
    # mean, variance (2 passes), normalise, scale, shift.
    "BatchNormalization": 2, "LayerNormalization": 8, "InstanceNormalization": 8,
    # Softmax: max, subtract, exp, sum, divide.
    "Softmax": 5, "LogSoftmax": 5,
}
#: Ops that move or reinterpret data: zero FLOPs.
FREE = {
    "Reshape", "Flatten", "Transpose", "Concat", "Split", "Gather", "Shape", "Squeeze", "Unsqueeze", "Identity",
    "Constant", "Slice", "Cast", "Dropout", "Pad", "Expand", "Tile", "ConstantOfShape", "Range", "Size",
    "DepthToSpace", "SpaceToDepth", "GatherElements", "ScatterND", "NonZero", "CastLike",
}
#: Reductions over the input: one FLOP per input element.
REDUCTIONS = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceProd", "GlobalAveragePool",
              "GlobalMaxPool", "ArgMax", "ArgMin"}


@dataclass(frozen=True)
class FlopCount:
    total: int
    by_op: dict[str, int]
    unsupported: list[str] = field(default_factory=list)

    @property
    def gflop(self) -> float:
        return self.total / 1e9

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "gflop": round(self.gflop, 6), "by_op": dict(self.by_op),
                "unsupported": list(self.unsupported)}


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _subgraphs(node: Any) -> list[Any]:
    return [a.g for a in node.attribute if a.HasField("g")] + [g for a in node.attribute for g in a.graphs]


def _shapes(model: Any) -> dict[str, list[int]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    out: dict[str, list[int]] = {}

    def collect(graph: Any) -> None:
        for vi in [*graph.input, *graph.value_info, *graph.output]:
            dims = vi.type.tensor_type.shape.dim
            if dims and all(d.HasField("dim_value") for d in dims):
                out[vi.name] = [d.dim_value for d in dims]
            elif vi.type.tensor_type.HasField("shape") and not dims:
                out[vi.name] = []
        for init in graph.initializer:
            out[init.name] = list(init.dims)
        for node in graph.node:
            for sub in _subgraphs(node):
                collect(sub)

    collect(inferred.graph)
    return out


def _node_flops(node: Any, shapes: dict[str, list[int]]) -> int | None:
    """FLOPs of one node, or None when the formula or a shape is missing."""
    op = node.op_type
    ins = [shapes.get(i) if i else None for i in node.input]
    out = shapes.get(node.output[0]) if node.output else None
    if op in FREE:
        return 0
    if out is None:
        return None
    if op in ELEMENTWISE:
        return ELEMENTWISE[op] * prod(out)
    if op in REDUCTIONS:
        return prod(ins[0]) if ins and ins[0] is not None else None
    if op == "Conv":
        w = ins[1]
        if w is None:
            return None
        macs = prod(out) * w[1] * prod(w[2:])  # w is (Cout, Cin/group, k...): each output sums Cin/group x k MACs
        bias = prod(out) if len(node.input) > 2 and node.input[2] else 0
        return 2 * macs + bias
    if op == "ConvTranspose":
        x, w = ins[0], ins[1]
        if x is None or w is None:
            return None
        macs = prod(x) * w[1] * prod(w[2:])  # w is (Cin, Cout/group, k...): each input feeds Cout/group x k
        bias = prod(out) if len(node.input) > 2 and node.input[2] else 0
        return 2 * macs + bias
    if op == "Gemm":
        a = ins[0]
        if a is None:
            return None
        k = a[0] if int(_attr(node, "transA", 0)) else a[1]
        bias = prod(out) if len(node.input) > 2 and node.input[2] else 0
        return 2 * prod(out) * k + bias
    if op == "MatMul":
        a = ins[0]
        if a is None:
            return None
        return 2 * prod(out) * a[-1]  # batched: every output element is a K-long dot product
    if op in ("MaxPool", "AveragePool", "LpPool"):
        kernel = _attr(node, "kernel_shape", None)
        return prod(out) * prod(kernel) if kernel else None
    return None


def count_flops(model: Any) -> FlopCount:
    """Count FLOPs of an ONNX model (ModelProto or path) with static input shapes."""
    import onnx

    if isinstance(model, (str, Path)):
        model = onnx.load(str(model))
    shapes = _shapes(model)
    unsupported: set[str] = set()

    def count(graph: Any) -> dict[str, int]:
        by_op: dict[str, int] = defaultdict(int)
        for node in graph.node:
            if node.op_type == "If":
                branches = [count(sub) for sub in _subgraphs(node)]
                for op, work in max(branches, key=lambda b: sum(b.values()), default={}).items():
                    by_op[op] += work
                continue
            flops = _node_flops(node, shapes)
            if flops is None:
                unsupported.add(node.op_type)
                continue
            by_op[node.op_type] += flops
        return by_op

    by_op = count(model.graph)
    return FlopCount(sum(by_op.values()), dict(sorted(by_op.items())), sorted(unsupported))


def tvm_task_flops(prepared_mod: Any, target: Any) -> int:
    """MetaSchedule's own count for the same model: sum of task weight x estimated TIR FLOPs."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops

    total = 0.0
    for task in ms.relax_integration.extract_tasks(prepared_mod, target, {}):
        total += task.weight * float(estimate_tir_flops(task.dispatched[0]))
    return int(total)

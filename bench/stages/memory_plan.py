"""What a build plans to allocate: exact figures read from the modules TVM's own build pipeline passes on.

A pass instrument watches the one compilation the item runs, so the figures are those of the build that is
timed, not of a second compilation. Relax's ``StaticPlanBlockMemory`` decides the storage each call of ``main``
allocates; the kernels' lowered global-scope buffers are the workspaces each kernel allocates while it runs.
Neither moves with the host, so the gate compares them exactly (docs/guide.md#memory). TVM 0.25-0.27 expose no
count of the bytes the VM's allocator hands out during a call: what a call really allocates shows only in the
measure stage's sampled resident memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

#: The Relax pass after which ``main``'s allocations are the planned ones, and the TIR pass after which the
#: kernels' buffers are final (after StorageRewrite, before code generation); TVM names both the same in 0.25-0.27
#: up to a namespace prefix.
PLANNING_PASS = "StaticPlanBlockMemory"
LOWERED_PASS = "VerifyMemory"


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes a build allocates by its own plan, per call of ``main``; all exact."""

    #: Storage the planner allocates plus the tensors it leaves to allocate one by one (the outputs).
    planned_bytes: int
    #: Every intermediate tensor allocated on its own, as without planning: what the planner saved.
    unplanned_bytes: int
    #: Allocations after planning.
    allocations: int
    #: Allocations whose size is known only at run time; their bytes are in no figure.
    dynamic_allocations: int
    #: The largest kernel's global-scope buffers (its padded inputs, caches): kernels run one at a time,
    #: so this much more is live at the worst moment.
    workspace_bytes: int
    #: The constants the build holds: the weights, after any layout prepacking folded into them.
    constant_bytes: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _size(shape: Any, dtype: str) -> int | None:
    """Bytes of a tensor of ``shape`` (a Relax ShapeExpr) and ``dtype``; None if a dimension is symbolic."""
    import tvm

    size = 1
    for dim in shape.values:
        value = getattr(dim, "value", None)
        if not isinstance(value, int):
            return None
        size *= value
    dt = tvm.DataType(dtype)
    return int(size * ((dt.bits + 7) // 8) * dt.lanes)


def relax_plan(mod: Any) -> dict[str, int]:
    """``main``'s allocations in a module just after StaticPlanBlockMemory, counted as TVM's own
    ``relax.analysis.estimate_memory_usage`` counts them (which only prints them, rounded to GB)."""
    import tvm
    from tvm import relax

    from bench.stages.tvm_api import constant_array, is_constant

    ops = {name: tvm.ir.Op.get(f"relax.{name}")
           for name in ("builtin.alloc_tensor", "memory.alloc_tensor", "memory.alloc_storage")}
    found = {"planned_bytes": 0, "unplanned_bytes": 0, "allocations": 0, "dynamic_allocations": 0,
             "constant_bytes": 0}
    seen_constants: set[int] = set()

    def visit(expr: Any) -> None:
        if is_constant(expr):
            if expr.__chandle__() not in seen_constants:  # one weight used twice is held once
                seen_constants.add(expr.__chandle__())
                with contextlib.suppress(Exception):  # a constant without an array (a shape, a string)
                    found["constant_bytes"] += int(constant_array(expr).nbytes)
            return
        if not isinstance(expr, relax.Call):
            return
        if expr.op.same_as(ops["builtin.alloc_tensor"]):
            size = _size(expr.args[0], expr.args[1].value)
            if size is None:
                found["dynamic_allocations"] += 1
                return
            found["unplanned_bytes"] += size
            found["planned_bytes"] += size
            found["allocations"] += 1
        elif expr.op.same_as(ops["memory.alloc_tensor"]):
            size = _size(expr.args[2], expr.args[3].value)
            if size is None:
                found["dynamic_allocations"] += 1
            else:
                found["unplanned_bytes"] += size
        elif expr.op.same_as(ops["memory.alloc_storage"]):
            size = _size(expr.args[0], "uint8")
            if size is None:
                found["dynamic_allocations"] += 1
                return
            found["planned_bytes"] += size
            found["allocations"] += 1

    for gv, func in mod.functions.items():
        if gv.name_hint == "main" and isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    return found


def largest_workspace(mod: Any) -> int:
    """The most global-scope bytes any one lowered kernel allocates."""
    from tvm.s_tir.analysis import calculate_allocated_bytes

    sizes = calculate_allocated_bytes(mod)
    return max((int(scopes.get("global", 0)) for scopes in sizes.values()), default=0)


class PlanWatch:
    """Collects the figures while TVM compiles (a pass instrument, installed by ``watching``). Reading them
    never fails the build: a module it cannot read leaves the build without a plan, and ``error`` says why."""

    def __init__(self) -> None:
        self.relax: dict[str, int] | None = None
        self.workspace: int | None = None
        self.error: str | None = None

    def run_after_pass(self, mod: Any, info: Any) -> None:
        name = str(info.name).rsplit(".", 1)[-1]
        try:
            if name == PLANNING_PASS and self.relax is None:
                self.relax = relax_plan(mod)
            elif name == LOWERED_PASS:
                self.workspace = max(self.workspace or 0, largest_workspace(mod))
        except Exception as err:  # an IR this TVM shapes otherwise: no figure rather than no build
            self.error = f"after {info.name}: {type(err).__name__}: {err}".splitlines()[0]

    def plan(self) -> MemoryPlan | None:
        """The build's plan; None when the pipeline ran no planning pass (a pipeline the harness does not know)
        or a figure could not be read."""
        if self.relax is None or self.workspace is None or self.error is not None:
            return None
        return MemoryPlan(workspace_bytes=self.workspace, **self.relax)


@contextlib.contextmanager
def watching() -> Iterator[PlanWatch]:
    """Compile inside this to read the build's plan: the current pass context's settings are kept, with the
    watch added to its instruments."""
    import tvm
    from tvm.ir.instrument import pass_instrument

    watch = PlanWatch()

    @pass_instrument
    class Instrument:
        def run_after_pass(self, mod: Any, info: Any) -> None:
            watch.run_after_pass(mod, info)

    current = tvm.transform.PassContext.current()
    with tvm.transform.PassContext(opt_level=current.opt_level, required_pass=list(current.required_pass),
                                   disabled_pass=list(current.disabled_pass), config=dict(current.config),
                                   instruments=[*current.instruments, Instrument()]):
        yield watch

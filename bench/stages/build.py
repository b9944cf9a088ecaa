"""Build stage: ONNX -> Relax -> a runnable VM, untuned or with tuning records.

The honest untuned baseline. TVM 0.27 has no default CPU schedules, and a
plain ``tvm.compile`` does not even fuse, so we build both variants from the
same prepared module: the ``static_shape_tuning`` pipeline's own pre-tuning
passes (DecomposeOpsForInference, CanonicalizeBindings, the ``zero`` pipeline:
legalize, fold, fuse). Untuned compiles that module as is, which is exactly
what the pipeline produces with ``total_trials=0`` and an empty database;
tuned applies the MetaSchedule database to the *same* module first, so the
structural hashes of its kernels match the tuned tasks. With ``tuning.layout``
the module is prepared with its convolutions in that layout (NHWC by
default on CPU), for both variants.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BuildError, ModelError
from bench.stages.memory_plan import MemoryPlan, watching
from bench.stages.tvm_api import constant_array, is_constant

if TYPE_CHECKING:
    import numpy as np

    from bench.stages.model import LoadedModel
    from bench.suite.target import ResolvedTarget


@dataclass(frozen=True)
class Prepared:
    """The fused Relax module both variants are compiled from."""

    mod: Any = field(repr=False)
    import_s: float
    kernels: int
    #: With a layout conversion: the layout-aware operators (Relax names) ``converted`` to it, those ``kept`` in
    #: the model's layout, and the ``unlowerable`` ones among them, kept because TVM cannot lower them converted.
    layout_ops: dict[str, list[str]] | None = None


#: ``timer(number, repeat)``: seconds per call for each of ``repeat`` rounds of ``number`` calls, timed on
#: the device's own clock (TVM's time_evaluator) after one discarded warm-up call.
DeviceTimer = Callable[[int, int], list[float]]


@dataclass(frozen=True)
class Built:
    """A compiled model: ``run`` is one inference, the callable that gets timed.

    ``timer`` is set where the model runs on another machine: timing ``run``
    from here would measure the network, so the device times itself.
    """

    run: Callable[[], Any] = field(repr=False)
    outputs: list[np.ndarray] = field(repr=False)
    compile_s: float
    scheduled: int
    kernels: int
    timer: DeviceTimer | None = field(default=None, repr=False)
    #: Share of the model's kernel FLOPs in tuned (scheduled) kernels.
    scheduled_flop_share: float | None = None
    #: What the build allocates by its own plan (exact), where this process compiled it.
    memory_plan: MemoryPlan | None = None


@dataclass(frozen=True)
class Compiled:
    """An executable before it is loaded anywhere: the host builds, a device may run it."""

    executable: Any = field(repr=False)
    compile_s: float
    scheduled: int
    kernels: int
    #: Share of the model's kernel FLOPs (each kernel times its call sites) in scheduled kernels: when only
    #: some tasks are tuned by design (``tuning.ops``), this, not the kernel count, says whether the build is tuned.
    scheduled_flop_share: float | None = None
    #: What the build allocates by its own plan, read while TVM compiled it (bench.stages.memory_plan).
    memory_plan: MemoryPlan | None = None


def _failing_node(tb: Any) -> Any:
    """The ONNX node the importer was converting when it raised, if any."""
    node = None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_construct_nodes":
            node = tb.tb_frame.f_locals.get("node", node)
        tb = tb.tb_next
    return node


def _clip_as_relax_ops(stock: Any) -> Any:
    """Clip as Relax's maximum and minimum operators.

    TVM's importer emits Clip as opaque kernel calls (``emit_te``), which
    ConvertLayout cannot see through: every ReLU6 of an NHWC MobileNetV2
    would be wrapped in a pair of transposes. Relax's own operators lower
    to the same kernels. Bounds that may be NaN (ONNX reads a NaN bound as
    no bound) keep the importer's conversion.
    """
    import numpy as np
    from tvm import relax

    class Clip(stock):  # type: ignore[misc]
        @classmethod
        def _impl_v13(cls, bb: Any, inputs: list[Any], attr: Any, params: Any) -> Any:
            x, *bounds = inputs
            if not all(b is None or is_constant(b) for b in bounds):
                return super()._impl_v13(bb, inputs, attr, params)
            lo, hi = [None if b is None else constant_array(b) for b in [*bounds, None, None][:2]]
            if not all(a is None or np.isfinite(a).all() for a in (lo, hi)):
                return super()._impl_v13(bb, inputs, attr, params)
            # as 0-d constants: a shape-(1,) bound (seen in exported models) would make ConvertLayout fall
            # back to the model's layout for the whole Clip
            lo, hi = [None if a is None else relax.const(a.reshape(()) if a.size == 1 else a) for a in (lo, hi)]
            if lo is not None:
                x = bb.emit(relax.op.maximum(x, lo))
            return bb.emit(relax.op.minimum(x, hi)) if hi is not None else x

    return Clip


def _upsample_scales_input(stock: Any) -> Any:
    """Upsample from opset 9 on, whose scales are an input: TVM 0.27's converter reads only the opset-7
    attribute and fails on every opset-9 export with "object of type 'NoneType' has no len()"."""

    class Upsample(stock):  # type: ignore[misc]
        @classmethod
        def _impl_v9(cls, bb: Any, inputs: list[Any], attr: Any, params: Any) -> Any:
            if attr.get("scales") is None and len(inputs) > 1 and is_constant(inputs[1]):
                attr = {**attr, "scales": [float(v) for v in constant_array(inputs[1]).reshape(-1)]}
            return super()._impl_v9(bb, inputs, attr, params)

    return Upsample


@contextlib.contextmanager
def importer_fixes(clip_ops: bool) -> Iterator[None]:
    """While importing, the converters above replace TVM's (Clip only where a layout pass follows)."""
    from tvm.relax.frontend.onnx import onnx_frontend

    original = onnx_frontend._get_convert_map
    stock = original()
    fixes = {"Upsample": _upsample_scales_input(stock["Upsample"])}
    if clip_ops:
        fixes["Clip"] = _clip_as_relax_ops(stock["Clip"])
    onnx_frontend._get_convert_map = lambda: {**original(), **fixes}
    try:
        yield
    finally:
        onnx_frontend._get_convert_map = original


def import_onnx(model: LoadedModel, where: str, key: str, clip_ops: bool = False) -> Any:
    """ONNX -> Relax with weights bound as constants; errors name the op and node.

    ``clip_ops``: import Clip as Relax operators (see _clip_as_relax_ops) so layout passes see through it.
    """
    import onnx
    from tvm.relax.frontend.onnx import from_onnx
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    proto = onnx.load(str(model.path))
    supported = set(_get_convert_map()) | {"If", "Constant"}
    for node in proto.graph.node:
        if node.op_type not in supported:
            raise ModelError(f"model {model.name!r}: operator {node.op_type!r} (node {node.name!r}) is not "
                             "supported by TVM's ONNX importer", where, key)
    try:
        with importer_fixes(clip_ops):
            return from_onnx(proto, shape_dict=model.shapes,
                             dtype_dict={k: str(v.dtype) for k, v in model.inputs.items()})
    except Exception as err:  # the importer raises anything; name where it happened
        node = _failing_node(sys.exc_info()[2])
        at = f"operator {node.op_type!r} (node {node.name!r})" if node is not None else "import"
        raise ModelError(f"model {model.name!r}: TVM failed at {at}: {tvm_reason(err)}", where, key) from None


def prim_funcs(mod: Any) -> list[Any]:
    import tvm

    return [f for _, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc)]


def count_scheduled(mod: Any) -> int:
    """Kernels carrying ``tirx.is_scheduled``: the proof that tuning records applied."""
    return sum(1 for f in prim_funcs(mod) if f.attrs is not None and bool(f.attrs.get("tirx.is_scheduled", False)))


#: ``tuning.layout`` -> (data, weight) layouts for relax.nn.conv2d. HWIO keeps output channels innermost in
#: the weights, so a kernel can vectorize over them; NHWC keeps input channels innermost in the activations.
CONV_LAYOUTS = {"NHWC": ["NHWC", "HWIO"]}


def prepare(model: LoadedModel, target: ResolvedTarget, where: str, key: str,
            layout: str | None = None) -> Prepared:
    """Import and fuse; with ``layout``, convolutions are converted to it first (inputs and outputs keep theirs).

    ConvertLayout converts conv2d and then carries the layout into every
    operator downstream that can infer one, including some that TVM cannot
    lower in it (TVM 0.27 has no NHWC conv2d_transpose), which then fail
    only at VM codegen. So after fusing, any layout-aware operator left
    unlowered is pinned to the model's layout and the conversion is redone:
    the model builds, converted where TVM can lower it.
    """
    import tvm
    from tvm import relax

    start = time.perf_counter()
    mod = import_onnx(model, where, key, clip_ops=layout is not None)
    pinned: dict[str, list[str]] = {}
    layout_ops: dict[str, list[str]] | None = None
    try:
        with target.tvm():
            base = tvm.transform.Sequential([relax.transform.DecomposeOpsForInference(),
                                             relax.transform.CanonicalizeBindings()])(mod)
            while True:
                converted = base
                if layout:
                    desired = {"relax.nn.conv2d": CONV_LAYOUTS[layout], **pinned}
                    converted = relax.transform.ConvertLayout(desired)(base)
                lowered = relax.get_pipeline("zero")(converted)
                stuck = _unlowered(lowered)
                retry = {op: _model_layouts(base, op) for op in stuck if layout and op not in pinned}
                if not retry:
                    break
                pinned.update(retry)
    except Exception as err:  # TVM pass failures surface as many exception types
        raise BuildError(f"model {model.name!r}: lowering for {target.name} failed: {tvm_reason(err)}",
                         where, key) from None
    if stuck:
        op, how = next(iter(stuck.items()))
        raise BuildError(f"model {model.name!r}: TVM {tvm.__version__} cannot lower {op} ({how}) for "
                         f"{target.name}", where, key)
    if layout:
        ops = _layout_ops(converted)
        layout_ops = {"converted": sorted(op for op, seen in ops.items() if layout in seen),
                      "kept": sorted(op for op, seen in ops.items() if layout not in seen),
                      "unlowerable": sorted(pinned)}
    return Prepared(lowered, time.perf_counter() - start, len(prim_funcs(lowered)), layout_ops)


#: Attributes that hold an operator's data layout in Relax (convolutions and pools: data_layout or layout,
#: resize: layout).
_LAYOUT_ATTRS = ("data_layout", "layout")


def _calls(mod: Any) -> Iterator[Any]:
    """Every call of a Relax operator (not of a kernel) in the module's Relax functions."""
    import tvm
    from tvm import relax

    found: list[Any] = []

    def visit(expr: Any) -> None:
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
            found.append(expr)

    for _, func in mod.functions.items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    return iter(found)


def _attr(call: Any, name: str) -> str | None:
    try:
        value = getattr(call.attrs, name, None)
    except Exception:  # attrs objects raise their own error types for missing fields
        return None
    return str(value) if value is not None else None


def _layout_ops(mod: Any) -> dict[str, set[str]]:
    """Relax operator -> the data layouts its calls use, for operators that have one."""
    ops: dict[str, set[str]] = {}
    for call in _calls(mod):
        for name in _LAYOUT_ATTRS:
            if (value := _attr(call, name)) is not None:
                ops.setdefault(call.op.name, set()).add(value)
                break
    return ops


def _unlowered(mod: Any) -> dict[str, str]:
    """Layout-aware operators that legalization left as they were (no kernel): op -> its layouts."""
    stuck: dict[str, str] = {}
    for call in _calls(mod):
        layouts = [f'{n}="{v}"' for n in (*_LAYOUT_ATTRS, "kernel_layout") if (v := _attr(call, n)) is not None]
        if layouts:
            stuck.setdefault(call.op.name, ", ".join(layouts))
    return stuck


def _model_layouts(mod: Any, op: str) -> list[str]:
    """The layouts ``op`` has in the model as imported: ConvertLayout's desired layouts that keep it there."""
    for call in _calls(mod):
        if call.op.name == op:
            if (kernel := _attr(call, "kernel_layout")) is not None:
                return [str(_attr(call, "data_layout")), kernel]
            return [next(v for n in _LAYOUT_ATTRS if (v := _attr(call, n)) is not None)]
    raise AssertionError(f"{op} is not in the module")


def tvm_reason(err: BaseException) -> str:
    """TVM's error in one line: the error itself and, where TVM names one, the offending call's operator and
    layouts, never a trailer such as "# Metadata omitted"."""
    lines = [line.strip() for line in str(err).strip().splitlines()]
    lines = [line for line in lines if line and not line.startswith(("#", "File ", "Traceback", "^"))]
    if not lines:
        return type(err).__name__
    reason = lines[0]
    for line in lines[1:]:
        call = re.match(r"R\.([\w.]+)\(", line)
        if call:
            attrs = re.findall(r'(\w*layout)="(\w+)"', line)
            reason += f"; offending call: {call.group(1)}(" + ", ".join(f"{k}={v}" for k, v in attrs) + ")"
            break
    return reason


#: Kernels whose weights are never marked free to change layout: TVM 0.27 tunes transposed convolutions with a
#: weight layout rewrite into wrong answers (the zoo's upsample_decoder: max error 5.9 at 8 trials, both layouts).
NO_PREPACK = ("conv2d_transpose",)


def tuning_module(prepared: Prepared, prepack: bool) -> Any:
    """The module MetaSchedule tunes: with ``prepack``, weights are marked free to change layout, except
    in the kernels of NO_PREPACK."""
    import tvm
    from tvm import relax

    if not prepack:
        return prepared.mod
    mod = relax.transform.AttachAttrLayoutFreeBuffers()(prepared.mod)
    for gv, func in list(mod.functions.items()):
        if (isinstance(func, tvm.tirx.PrimFunc) and any(k in gv.name_hint for k in NO_PREPACK)
                and func.attrs is not None and "layout_free_buffers" in func.attrs):
            mod[gv] = func.with_attr("layout_free_buffers", [])
    return mod


def apply_database(prepared: Prepared, target: Any, work_dir: Path, prepack: bool) -> Any:
    """The tuned module: each kernel replaced by its best schedule in the database.

    With ``prepack`` the tuned kernels' weight layout rewrites are split out
    and folded into the constant weights (the static_shape_tuning pipeline's
    ``cpu_weight_prepack`` passes), so they run once here, not per call.
    """
    import tvm
    from tvm import relax

    with target:
        mod = relax.transform.MetaScheduleApplyDatabase(str(work_dir))(tuning_module(prepared, prepack))
        if not prepack:
            return mod
        return tvm.transform.Sequential([relax.transform.SplitLayoutRewritePreproc(),
                                         relax.transform.LiftTransformParams(),
                                         relax.transform.FoldConstant(),
                                         # the rewrites ran on the constants: drop their kernels
                                         relax.transform.DeadCodeElimination(["main"])])(mod)


def compile_executable(prepared: Prepared, model: LoadedModel, target: ResolvedTarget, where: str, key: str,
                       work_dir: Path | None = None, prepack: bool = False) -> Compiled:
    """Compile, applying the MetaSchedule database in ``work_dir`` if given (see apply_database)."""
    import tvm

    start = time.perf_counter()
    mod = prepared.mod
    try:
        tgt = target.tvm()
        if work_dir is not None:
            mod = apply_database(prepared, tgt, work_dir, prepack)
        # Without a database nothing is scheduled: no need to estimate every kernel's FLOPs to say so.
        share = scheduled_flop_share(mod) if work_dir is not None else 0.0
        with watching() as watch:
            executable = tvm.compile(mod, target=tgt)
    except Exception as err:
        hint = ("; the build converts convolutions to another layout: `tuning.layout: model` keeps the model's"
                if prepared.layout_ops is not None else "")
        raise BuildError(f"model {model.name!r}: compiling for {target.name} failed: {tvm_reason(err)}{hint}",
                         where, key) from None
    return Compiled(executable, time.perf_counter() - start, count_scheduled(mod), len(prim_funcs(mod)), share,
                    watch.plan())


def scheduled_flop_share(mod: Any) -> float | None:
    """FLOPs in scheduled kernels / all kernel FLOPs, each kernel counted once per call site in the model."""
    import tvm
    from tvm import relax
    from tvm.s_tir.analysis import estimate_tir_flops

    calls: dict[str, int] = {}

    def visit(expr: Any) -> None:
        if isinstance(expr, relax.Call):
            for arg in expr.args:
                if isinstance(arg, tvm.ir.GlobalVar):
                    calls[arg.name_hint] = calls.get(arg.name_hint, 0) + 1

    for _, func in mod.functions.items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    total = scheduled = 0.0
    for gv, func in mod.functions.items():
        if not isinstance(func, tvm.tirx.PrimFunc) or gv.name_hint not in calls:
            continue
        try:
            flops = float(estimate_tir_flops(tvm.IRModule({gv: func}))) * calls[gv.name_hint]
        except Exception:  # a kernel the estimator cannot read counts as no work
            continue
        total += flops
        if func.attrs is not None and bool(func.attrs.get("tirx.is_scheduled", False)):
            scheduled += flops
    return round(scheduled / total, 4) if total else None


def load_local(compiled: Compiled, model: LoadedModel, target: ResolvedTarget) -> Built:
    import tvm
    from tvm import relax

    tgt = target.tvm()
    dev = tvm.device(tgt.get_target_device_type(), 0)
    vm = relax.VirtualMachine(compiled.executable, dev)
    main = vm["main"]
    args = [tvm.runtime.tensor(v, dev) for v in model.inputs.values()]
    sync = dev.sync if target.is_gpu else None  # CPU calls return when done

    def run() -> Any:
        out = main(*args)
        if sync is not None:
            sync()
        return out

    outputs = _to_numpy(run())
    return Built(run, outputs, compiled.compile_s, compiled.scheduled, compiled.kernels,
                 scheduled_flop_share=compiled.scheduled_flop_share, memory_plan=compiled.memory_plan)


def load_exported(library: Path, model: LoadedModel, target: ResolvedTarget) -> Built:
    """An exported library loaded into this process (its own dlopen copy) and run once: how a build is timed
    against its baseline build, both from their libraries."""
    import tvm
    from tvm import relax

    tgt = target.tvm()
    dev = tvm.device(tgt.get_target_device_type(), 0)
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), dev)
    main = vm["main"]
    args = [tvm.runtime.tensor(v, dev) for v in model.inputs.values()]

    def run() -> Any:
        return main(*args)

    return Built(run, _to_numpy(run()), 0.0, 0, 0)


def export_library(compiled: Compiled, target: ResolvedTarget, path: Path, where: str, key: str) -> Path:
    """Link the executable into a shared library for the device, with the target's compiler."""
    export = target.export
    fcompile = None
    if export is not None and export.ndk:
        from tvm.contrib import ndk

        fcompile = ndk.create_shared
    elif export is not None and export.cc:
        from tvm.contrib import cc

        fcompile = cc.cross_compiler(export.cc, options=list(export.options))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        compiled.executable.export_library(str(path), fcompile=fcompile)
    except Exception as err:
        raise BuildError(f"exporting the library for {target.name} to {path} failed: {tvm_reason(err)}",
                         where, f"{key}.export" if export is not None else key) from None
    return path


def load_remote(library: Path, remote: Any, model: LoadedModel, target: ResolvedTarget, compiled: Compiled,
                where: str, key: str) -> Built:
    """Upload the library to a device session, load it there, run once and bring the outputs back.

    The VM's stateful API is used because TVM's time_evaluator cannot pass a
    tuple result back over RPC.
    """
    import tvm
    from tvm import relax

    from bench.errors import BenchError

    tgt = target.tvm()
    try:
        remote.upload(bytearray(library.read_bytes()), target=library.name)  # TVM's path form leaks the file
        rlib = remote.load_module(library.name)
    except Exception as err:
        raise BenchError(f"target {target.name!r}: uploading or loading {library.name} on the device with key "
                         f"{target.rpc.key!r} failed: {tvm_reason(err)}", where, key) from None
    dev = remote.device(tgt.get_target_device_type(), 0)
    vm = relax.VirtualMachine(rlib, dev)
    args = [tvm.runtime.tensor(v, dev) for v in model.inputs.values()]
    vm.set_input("main", *args)

    def run() -> Any:
        vm.invoke_stateful("main")
        return vm.get_outputs("main")

    def timer(number: int, repeat: int) -> list[float]:
        result = vm.time_evaluator("invoke_stateful", dev, number=number, repeat=repeat)("main")
        return [float(x) for x in result.results]

    outputs = _to_numpy(run())
    return Built(run, outputs, compiled.compile_s, compiled.scheduled, compiled.kernels, timer,
                 compiled.scheduled_flop_share, compiled.memory_plan)


def _to_numpy(out: Any) -> list[np.ndarray]:
    if hasattr(out, "numpy"):
        return [out.numpy()]
    flat: list[np.ndarray] = []
    for o in out:
        flat.extend(_to_numpy(o))
    return flat


def device_present(target: ResolvedTarget) -> bool:
    import tvm

    tgt = target.tvm()
    return bool(tvm.device(tgt.get_target_device_type(), 0).exist)

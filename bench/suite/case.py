"""Suite -> cases: the matrix expanded, targets resolved, one case per variant.

A case id reads ``resnet50-llvm_core-avx2-b256-tuned`` so ``-k`` selects by
model, target, budget or variant (and ``-tvm0.26.0-`` after the target when
several TVMs are under test). Untuned and ort (ONNX Runtime, CPU targets)
come before tuned so the tuned item can report its speedup over untuned and
its ratio to ONNX Runtime, both measured in the same session.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path
from typing import Literal

from bench.errors import SuiteError
from bench.suite.schema import (
    BudgetSpec,
    CheckSpec,
    LimitsSpec,
    MatrixEntry,
    ModelSpec,
    Suite,
    TargetSpec,
    TimingSpec,
    TuningSpec,
    TvmSpec,
)
from bench.suite.target import ResolvedTarget, parse_target_string, resolve

Variant = Literal["untuned", "ort", "tuned"]
#: The variants by name, for code that compares or keys on them.
UNTUNED: Variant = "untuned"
ORT: Variant = "ort"
TUNED: Variant = "tuned"
#: Variants measured once per (model, target), whatever the number of budgets.
PER_TARGET = (UNTUNED, ORT)


@dataclass(frozen=True)
class TvmUnderTest:
    """The TVM a case runs on: the harness's own, a release installed into the cache, or a build of yours."""

    name: str
    source: Literal["installed", "version", "path"]
    #: A release (source ``version``).
    version: str | None = None
    #: A build's folder (source ``path``), absolute.
    path: Path | None = None
    #: Where it was named, for errors: ``tvm[1]`` in the suite, or ``--bench-tvm``.
    key: str = "tvm"


#: The default: the TVM installed with the harness, in its own environment.
INSTALLED = TvmUnderTest("installed", "installed")


def resolve_tvms(suite: Suite, override: tuple[TvmSpec, ...] | None = None) -> list[TvmUnderTest]:
    """The suite's TVMs under test, or ``--bench-tvm``'s (paths relative to the suite, or to the working
    directory for the option); the harness's own when neither names one."""
    specs = override if override else tuple(suite.spec.tvm)
    if not specs:
        return [INSTALLED]
    out = []
    for i, spec in enumerate(specs):
        key = "--bench-tvm" if override else f"tvm[{i}]"
        if spec.version is not None:
            out.append(TvmUnderTest(spec.id, "version", version=spec.version, key=key))
        else:
            path = suite.resolve_file(str(spec.path)) if not override else Path(str(spec.path)).resolve()
            out.append(TvmUnderTest(spec.id, "path", path=path, key=key))
    names = [t.name for t in out]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise SuiteError(f"two TVMs under test are named {name!r}; give one a 'name'", suite.where, out[i].key)
    return out


@dataclass(frozen=True)
class Case:
    """One pytest item: a model on a target with a budget, in one variant."""

    suite: Suite
    model_index: int
    model: ModelSpec
    target: ResolvedTarget
    budget: BudgetSpec
    variant: Variant
    timing: TimingSpec
    check: CheckSpec
    tuning: TuningSpec
    limits: LimitsSpec
    #: The TVM this case builds, tunes and runs with.
    tvm: TvmUnderTest = INSTALLED
    #: Whether the id names the TVM: only when several are under test, so that one TVM swapped for another
    #: (``--bench-tvm``) keeps the ids, and the history follows each case across the change.
    tvm_in_id: bool = field(default=False, compare=False)

    @property
    def id(self) -> str:
        where = f"{self.model.name}-{self.target.name}"
        if self.tvm_in_id and self.variant != ORT:
            where += f"-tvm{self.tvm.name}"
        if self.variant in PER_TARGET:  # one untuned (and ort) item serves every budget
            return f"{where}-{self.variant}"
        return f"{where}-{self.budget.id}-{self.variant}"

    @property
    def conv_layout(self) -> str | None:
        """The layout both builds' convolutions use: ``tuning.layout`` resolved; None is the model's own."""
        layout = self.tuning.layout
        if layout == "auto":
            return "NHWC" if self.target.kind == "llvm" else None
        return None if layout == "model" else layout

    @property
    def weight_prepack(self) -> bool:
        """``tuning.cpu_weight_prepack`` where it applies: MetaSchedule rewrites weight layouts on CPU only."""
        return self.tuning.cpu_weight_prepack and self.target.kind == "llvm"

    @property
    def ort_peer(self) -> bool:
        """Whether ONNX Runtime is timed beside this case's builds (an ``ort`` item; CPU targets only)."""
        ort = self.model.ort if self.model.ort is not None else self.suite.spec.ort
        return bool(ort) and self.target.kind == "llvm"

    @property
    def model_key(self) -> tuple[str, str]:
        """Identifies the model (and so its untuned build) within a session."""
        return (str(self.suite.path), self.model.name)

    @property
    def ort_key(self) -> tuple[str, str, str]:
        """Identifies the ONNX Runtime peer: one per (model, target), whatever the TVM."""
        return (*self.model_key, self.target.identity)

    @property
    def untuned_key(self) -> tuple[str, str, str, str]:
        return (*self.ort_key, self.tvm.name)

    @property
    def tuned_key(self) -> tuple[str, str, str, str, int, int | None]:
        return (*self.untuned_key, self.budget.trials, self.budget.max_trials_per_task)


def resolve_targets(suite: Suite) -> list[ResolvedTarget]:
    out: list[ResolvedTarget] = []
    for i, entry in enumerate(suite.spec.targets):
        spec = entry if isinstance(entry, TargetSpec) else TargetSpec(target=entry)
        key = f"targets[{i}]" + (".target" if isinstance(entry, TargetSpec) else "")
        if spec.rpc is not None:
            _check_remote(spec, suite, f"targets[{i}]")
        try:
            resolved = resolve(spec.target, spec.name)
        except ValueError as err:
            raise SuiteError(str(err), suite.where, key) from None
        out.append(replace(resolved, rpc=spec.rpc, export=spec.export, key_path=f"targets[{i}]"))
    names = [t.name for t in out]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise SuiteError(f"two targets have the id {name!r}; give one a 'name'", suite.where, f"targets[{i}]")
    return out


def _check_remote(spec: TargetSpec, suite: Suite, key: str) -> None:
    """An rpc target must say what the device is: its core count, and a compiler that can link for it."""
    import shutil

    raw = parse_target_string(spec.target) if isinstance(spec.target, str) else dict(spec.target)
    if raw.get("kind") == "native":
        raise SuiteError("'native' is this host's CPU; an rpc target names the device's (kind: llvm, mtriple, "
                         "mcpu, num-cores)", suite.where, f"{key}.target")
    if raw.get("kind") == "llvm" and "num-cores" not in raw:
        raise SuiteError("an rpc target must name the device's core count (num-cores): it sets the threads TVM "
                         "runs with there, and the host's count would be a guess", suite.where, f"{key}.target")
    export = spec.export
    if export is not None and export.cc is not None and shutil.which(export.cc) is None:
        raise SuiteError(f"compiler {export.cc!r} not found on PATH (install it, or give its full path)",
                         suite.where, f"{key}.export.cc")
    triple = raw.get("mtriple")
    if triple and (export is None or (export.cc is None and not export.ndk)):
        from tvm.target import codegen

        host = codegen.llvm_get_system_triple()
        if triple.split("-")[0] != host.split("-")[0]:
            raise SuiteError(f"the target's mtriple {triple!r} is not this host's ({host}): name a compiler that "
                             "links for it, e.g. export: {cc: aarch64-linux-gnu-g++}, or export: {ndk: true}",
                             suite.where, f"{key}.export.cc")


def _matches(entry: MatrixEntry, model: str, target: str, budget: str) -> bool:
    return all(want is None or want == got for want, got in
               ((entry.model, model), (entry.target, target), (entry.budget, budget)))


def expand(suite: Suite, tvms: tuple[TvmSpec, ...] | None = None) -> list[Case]:
    """All cases of a suite in a stable order (``tvms``: ``--bench-tvm``'s); raises SuiteError on bad references."""
    spec = suite.spec
    targets = resolve_targets(suite)
    under_test = resolve_tvms(suite, tvms)
    budgets = spec.budgets
    names = {"model": [m.name for m in spec.models], "target": [t.name for t in targets],
             "budget": [b.id for b in budgets]}
    for section in ("include", "exclude"):
        for i, entry in enumerate(getattr(spec.matrix, section)):
            for part in ("model", "target", "budget"):
                value = getattr(entry, part)
                if value is not None and value not in names[part]:
                    raise SuiteError(f"unknown {part} {value!r}; known: {', '.join(names[part])}",
                                     suite.where, f"matrix.{section}[{i}].{part}")
            if section == "include" and None in (entry.model, entry.target, entry.budget):
                raise SuiteError("an include entry names a model, a target and a budget", suite.where,
                                 f"matrix.include[{i}]")
    combos: list[tuple[int, int, int]] = []
    if spec.matrix.cross:
        combos = list(product(range(len(spec.models)), range(len(targets)), range(len(budgets))))
    combos = [c for c in combos if not any(
        _matches(e, spec.models[c[0]].name, targets[c[1]].name, budgets[c[2]].id) for e in spec.matrix.exclude)]
    for entry in spec.matrix.include:
        combo = (names["model"].index(entry.model), names["target"].index(entry.target),  # type: ignore[arg-type]
                 names["budget"].index(entry.budget))  # type: ignore[arg-type]
        if combo not in combos:
            combos.append(combo)
    cases: list[Case] = []
    # One TVM after another, so one worker serves each TVM's cases in turn.
    for tvm, (mi, ti, bi) in product(under_test, combos):
        budget = budgets[bi]
        model = spec.models[mi]
        # An rpc target keeps its ort item, which skips with the reason (ONNX Runtime has no remote form).
        ort = (model.ort if model.ort is not None else spec.ort) and targets[ti].kind == "llvm"
        variants: list[Variant] = [UNTUNED]
        if ort:
            variants.append(ORT)
        if budget.trials > 0:
            variants.append(TUNED)
        for variant in variants:
            cases.append(Case(suite, mi, spec.models[mi], targets[ti], budget, variant,
                              suite.model_timing(mi), suite.model_check(mi), spec.tuning,
                              suite.model_limits(mi), tvm, tvm_in_id=len(under_test) > 1))
    # With several budgets the untuned items would repeat per budget, and with several TVMs the ort item
    # would repeat per TVM: keep the first.
    seen: set[tuple[str, ...]] = set()
    unique: list[Case] = []
    for case in cases:
        if case.variant in PER_TARGET:
            key = (*(case.ort_key if case.variant == ORT else case.untuned_key), case.variant)
            if key in seen:
                continue
            seen.add(key)
        unique.append(case)
    return unique

"""The table that closes the terminal output: untuned, tuned and ONNX Runtime side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.stages.record import library_bytes, peak_mib, planned_bytes
from bench.suite.case import ORT, TUNED, UNTUNED

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench.run.runner import CaseResult


def _tvm_column(r: CaseResult) -> str:
    """The TVM's label (its version, or ``name@commit``), or the name it was given where that differs (two names
    for one release, as in an A/A comparison)."""
    label, name = str(r.info.get("tvm_label") or r.case.tvm.name), r.case.tvm.name
    return label if name in ("installed", label) or label.startswith(f"{name}@") else name


def summary_lines(results: list[CaseResult]) -> list[str]:
    """One row per (model, target, budget): the three medians, speedups, GFLOP/s and % of peak.

    ``tuned/ort`` divides two items' medians, timed minutes apart; ``side by side`` is the median ratio of
    the two timed in turn within the tuned item (``timing.side_by_side``), the one to trust on a machine
    whose speed drifts. ``library KiB``: the untuned and tuned builds' exported libraries (exact);
    ``planned KiB``: the memory their plans allocate per call, the model's intermediate tensors (exact);
    ``peak MiB``: each item's highest sampled resident memory of its worker tree over its stages (a cold
    tuned item's includes the tuning's processes; docs/guide.md#memory). ``vs baseline``: untuned and
    tuned against their cases' baseline builds, timed in pairs (``same``: byte-identical; ``!``: slower
    beyond the gate's threshold). ``tvm``: the TVM under test, by version (``name@commit`` for a build);
    one ONNX Runtime item serves every TVM's rows of its model and target; ``vs 1st TVM``: with several TVMs,
    untuned and tuned against the first TVM's builds, timed in pairs, each TVM in its own worker."""
    groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    ort_items: dict[tuple[str, str, str], CaseResult] = {}
    for r in results:
        where = (r.case.suite.name, r.case.model.name, r.case.target.name)
        if r.case.variant == ORT:
            ort_items[where] = r
            continue
        group = groups.setdefault((*where, _tvm_column(r)), {TUNED: {}})
        if r.case.variant == TUNED:
            group[TUNED][r.case.budget.id] = r
        else:
            group[r.case.variant] = r
    for where in ort_items:  # an ort item whose TVM items did not run still gets its row
        if not any(key[:3] == where for key in groups):
            groups[(*where, "-")] = {TUNED: {}}

    def ms(r: CaseResult | None) -> str:
        return f"{r.stats['median'] * 1e3:.3f}" if r is not None else "-"

    def work(r: CaseResult | None) -> str:
        if r is None or r.info.get("gflops_per_s") is None:
            return "-"
        pct = r.info.get("pct_of_peak")
        return f"{r.info['gflops_per_s']:.1f}" + (f" ({pct:.0f}%)" if pct is not None else "")

    def kib(r: CaseResult | None, size_of: Callable[[Any], int | None]) -> str:
        size = size_of(r.info) if r is not None else None
        return "-" if size is None else f"{size / 1024:.0f}"

    def peak(r: CaseResult | None) -> str:
        mib = peak_mib(r.info) if r is not None else None
        return "-" if mib is None else f"{mib:.0f}"

    def vs_baseline(r: CaseResult | None, key: str = "vs_baseline") -> str:
        paired = r.info.get(key) if r is not None else None
        if not isinstance(paired, dict) or paired.get("ratio") is None:
            return "-"
        if paired.get("identical"):
            return "same"
        return f"{paired['ratio'] - 1:+.1%}" + ("!" if paired.get("decision") == "slower" else "")

    head = (f"{'model':<16} {'target':<14} {'tvm':<13} {'budget':<8} {'untuned ms':>11} {'tuned ms':>10} {'ort ms':>9} "
            f"{'speedup':>8} {'tuned/ort':>9} {'side by side':>12}  "
            f"{'GFLOP/s (% of peak): untuned / tuned / ort':<44} {'library KiB':>13} {'planned KiB':>13} "
            f"{'peak MiB':>16} "
            f"{'vs baseline':>15} {'vs 1st TVM':>15}  check")
    lines = [head]
    for (suite, model, target, tvm), group in groups.items():
        untuned, ort = group.get(UNTUNED), ort_items.get((suite, model, target))
        for budget, tuned in (group[TUNED] or {"-": None}).items():
            members = [m for m in (untuned, tuned, ort) if m is not None]
            speed = tuned.info.get("speedup_median") if tuned is not None else None
            vs_ort = tuned.info.get("tuned_vs_ort_median") if tuned is not None else None
            paired = tuned.info.get("tuned_vs_ort_side_by_side") if tuned is not None else None
            gflops = " / ".join(work(m) for m in (untuned, tuned, ort))
            library = f"{kib(untuned, library_bytes)} / {kib(tuned, library_bytes)}"
            planned = f"{kib(untuned, planned_bytes)} / {kib(tuned, planned_bytes)}"
            peaks = " / ".join(peak(m) for m in (untuned, tuned, ort))
            ok = "FAIL" if any(m.failures for m in members) else "ok"
            lines.append(f"{model:<16} {target:<14} {tvm:<13} {budget:<8} {ms(untuned):>11} {ms(tuned):>10} "
                         f"{ms(ort):>9} "
                         f"{f'{speed:.2f}x' if speed else '-':>8} {f'{vs_ort:.2f}x' if vs_ort else '-':>9} "
                         f"{f'{paired:.2f}x' if paired else '-':>12}  "
                         f"{gflops:<44} {library:>13} {planned:>13} {peaks:>16} "
                         f"{vs_baseline(untuned) + ' / ' + vs_baseline(tuned):>15} "
                         f"{vs_baseline(untuned, 'vs_tvm') + ' / ' + vs_baseline(tuned, 'vs_tvm'):>15}  {ok}")
    return lines

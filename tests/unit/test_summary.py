"""The end-of-session table: untuned / tuned / ort medians, speedups, GFLOP/s and % of peak."""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

from bench.plugin.summary import summary_lines


def result(variant: str, median: float, budget: str = "b64", failures: list[str] | None = None,
           tvm: str | None = None, **info: object):
    info.setdefault("tvm_label", "0.27.0")
    case = NS(suite=NS(name="smoke"), model=NS(name="mobilenet_v2"), target=NS(name="native"),
              variant=variant, budget=NS(id=budget), tvm=NS(name=tvm or str(info["tvm_label"])))
    return NS(case=case, stats={"median": median}, info=info, failures=failures or [])


def test_one_row_per_budget_with_all_three_runtimes() -> None:
    """Each tuned budget gets a row with the shared untuned and ort medians beside it."""
    rows = summary_lines([
        result("untuned", 0.200, gflops_per_s=3.0, pct_of_peak=2.8),
        result("ort", 0.005, gflops_per_s=120.0, pct_of_peak=111.0),
        result("tuned", 0.020, speedup_median=10.0, tuned_vs_ort_median=4.0, tuned_vs_ort_side_by_side=3.5,
               gflops_per_s=30.0, pct_of_peak=27.8),
        result("tuned", 0.015, budget="b500", speedup_median=13.3, tuned_vs_ort_median=3.0, gflops_per_s=40.0,
               pct_of_peak=37.0, failures=["top-5 differs"]),
    ])
    assert len(rows) == 3
    b64, b500 = rows[1].split(), rows[2].split()
    assert b64[:10] == ["mobilenet_v2", "native", "0.27.0", "b64", "200.000", "20.000", "5.000", "10.00x", "4.00x",
                        "3.50x"]
    assert b500[8:10] == ["3.00x", "-"]  # not timed side by side: a dash, not the items' ratio
    assert "3.0 (3%) / 30.0 (28%) / 120.0 (111%)" in rows[1] and rows[1].endswith("ok")
    assert b500[3:6] == ["b500", "200.000", "15.000"] and rows[2].endswith("FAIL")


def test_each_row_shows_the_builds_library_sizes_and_the_items_peak_memory() -> None:
    """Library KiB of the untuned and tuned builds and their planned memory (exact), and each item's highest
    stage peak (sampled)."""
    def memory(*peaks: float) -> dict[str, Any]:
        return {"stages": {f"s{i}": {"start_mib": 100.0, "peak_mib": p} for i, p in enumerate(peaks)}}

    rows = summary_lines([
        result("untuned", 0.200, library={"bytes": 216_480}, memory=memory(285.9, 425.4),
               planned_memory={"planned_bytes": 8_644_512}),
        result("ort", 0.005, memory=memory(345.6)),
        result("tuned", 0.020, library={"bytes": 195_928}, memory=memory(376.3, 1152.5, 377.0),
               planned_memory={"planned_bytes": 8_644_512}),
    ])
    assert "211 / 191" in rows[1] and "8442 / 8442" in rows[1] and "425 / 1152 / 346" in rows[1]
    assert rows[0].index("library KiB") < rows[0].index("planned KiB") < rows[0].index("peak MiB")
    assert summary_lines([result("untuned", 0.002)])[1].count("- / -") >= 2


def test_untuned_only_case() -> None:
    """Budget 0: one row with dashes where nothing was measured."""
    rows = summary_lines([result("untuned", 0.002, gflops_per_s=4.0)])
    assert rows[1].split()[:7] == ["mobilenet_v2", "native", "0.27.0", "-", "2.000", "-", "-"]


def test_each_row_shows_untuned_and_tuned_against_their_baseline_builds() -> None:
    """"same" for a byte-identical build, the paired change otherwise, "!" where it is slower beyond the
    threshold, "-" without a baseline."""
    rows = summary_lines([
        result("untuned", 0.200, vs_baseline={"identical": True, "ratio": 1.0}),
        result("tuned", 0.020, vs_baseline={"identical": False, "ratio": 1.062, "decision": "slower"}),
        result("tuned", 0.015, budget="b500"),
    ])
    assert rows[1].split()[-7:] == ["same", "/", "+6.2%!", "-", "/", "-", "ok"]
    assert rows[2].split()[-7:] == ["same", "/", "-", "-", "/", "-", "ok"]


def test_several_tvms_get_a_row_each_beside_the_one_onnx_runtime_item() -> None:
    """Two TVMs measured side by side: a row per TVM, each with its own untuned and tuned medians and the one
    ONNX Runtime median."""
    rows = summary_lines([
        result("untuned", 0.200, tvm_label="0.26.0"),
        result("ort", 0.005),
        result("tuned", 0.020, tvm_label="0.26.0"),
        result("untuned", 0.180, tvm_label="0.27.0"),
        result("tuned", 0.025, tvm_label="0.27.0"),
    ])
    assert [r.split()[2:7] for r in rows[1:]] == [["0.26.0", "b64", "200.000", "20.000", "5.000"],
                                                  ["0.27.0", "b64", "180.000", "25.000", "5.000"]]


def test_a_later_tvm_row_shows_its_builds_against_the_first_tvms() -> None:
    rows = summary_lines([
        result("untuned", 0.200, tvm_label="0.26.0"),
        result("tuned", 0.020, tvm_label="0.26.0"),
        result("untuned", 0.180, tvm_label="0.27.0", vs_tvm={"against": "0.26.0", "ratio": 0.904}),
        result("tuned", 0.025, tvm_label="0.27.0", vs_tvm={"against": "0.26.0", "ratio": 1.25, "decision": "slower"}),
    ])
    assert rows[0].split()[-4:-1] == ["vs", "1st", "TVM"]
    assert rows[1].split()[-4:] == ["-", "/", "-", "ok"]
    assert rows[2].split()[-4:] == ["-9.6%", "/", "+25.0%!", "ok"]


def test_two_names_for_one_release_get_a_row_each() -> None:
    """An A/A comparison (``--bench-tvm a=0.27.0 --bench-tvm b=0.27.0``) shows the names; a build shows its
    ``name@commit``."""
    rows = summary_lines([result("untuned", 0.200, tvm="a"), result("untuned", 0.210, tvm="b"),
                          result("untuned", 0.190, tvm="main", tvm_label="main@1a2b3c4d5")])
    assert [r.split()[2:5] for r in rows[1:]] == [["a", "-", "200.000"], ["b", "-", "210.000"],
                                                  ["main@1a2b3c4d5", "-", "190.000"]]

"""History ingestion: good, truncated, foreign, mixed-machine and storage-folder inputs."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from bench.history.load import load_history, machine_description, machine_fingerprint
from bench.testing.results import CPU_A, CPU_B, bench_entry, run_file, synthetic_history

WHEN = datetime(2026, 11, 1, 3, 0)


def test_good_files_become_one_row_per_run_and_case(tmp_path: Path) -> None:
    """Each run contributes one row per measured item, with stats and extra_info as columns."""
    synthetic_history(tmp_path, runs=3, cases=2)
    h = load_history([tmp_path])
    assert h.problems == []
    assert len(h.runs) == 3 and len(h.results) == 3 * 4
    row = h.results.iloc[1]
    assert row["variant"] == "tuned" and row["model"] == "model0" and row["rounds"] == 10
    assert row["speedup_median"] > 1 and len(row["samples_s"]) == 10
    assert list(h.results["run_time"]) == sorted(h.results["run_time"])


def test_truncated_and_foreign_files_are_reported_and_skipped(tmp_path: Path) -> None:
    """A truncated file and a foreign pytest-benchmark file are problems; the good one loads."""
    good = run_file(tmp_path / "good.json", WHEN, [bench_entry("m-native-untuned", "m", "untuned", [1.0, 1.1])])
    text = good.read_text()
    (tmp_path / "truncated.json").write_text(text[: len(text) // 2])
    foreign = json.loads(text)
    foreign["benchmarks"][0]["extra_info"] = {}
    (tmp_path / "foreign.json").write_text(json.dumps(foreign))
    (tmp_path / "other.json").write_text('{"hello": 1}')
    h = load_history([tmp_path])
    assert len(h.results) == 1 and h.results.iloc[0]["file"].endswith("good.json")
    problems = "\n".join(h.problems)
    assert "foreign.json: a pytest-benchmark file without tvm-bench extra_info" in problems
    assert "truncated.json: not valid JSON (truncated?)" in problems
    assert "other.json: not a pytest-benchmark results file" in problems
    # Damaged files are moved to the folder's quarantine; foreign ones stay where they are.
    assert not (tmp_path / "truncated.json").exists() and (tmp_path / "foreign.json").exists()
    assert [p.name.endswith("truncated.json") for p in (tmp_path / "quarantine").glob("*.json")] == [True]


def test_missing_fields_are_set_aside_with_the_field_named(tmp_path: Path) -> None:
    """A results file whose benchmark lacks stats.median is reported by field and moved, not deleted."""
    entry = bench_entry("m-native-untuned", "m", "untuned", [1.0, 1.1])
    del entry["stats"]["median"]
    bad = run_file(tmp_path / "runs" / "bad.json", WHEN, [entry])
    run_file(tmp_path / "runs" / "good.json", WHEN, [bench_entry("m-native-untuned", "m", "untuned", [1.0])])
    h = load_history([tmp_path / "runs"])
    assert len(h.results) == 1
    assert h.problems[0].startswith(f"{bad}: benchmark 'test_case[m-native-untuned]' lacks 'stats.median'")
    moved = list((tmp_path / "runs" / "quarantine").glob("*bad.json"))
    assert len(moved) == 1 and f"moved to {moved[0]}" in h.problems[0]
    assert "lacks 'stats.median'" in moved[0].with_name(moved[0].name + ".why.txt").read_text()
    # Quarantined files are not read again.
    assert load_history([tmp_path / "runs"]).problems == []


def test_explicitly_named_damaged_file_is_reported_not_moved(tmp_path: Path) -> None:
    """Only files found by searching a folder are moved; a file named on the command line stays."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"benchmarks": [')
    h = load_history([bad])
    assert "not valid JSON" in h.problems[0] and bad.exists()


def test_machines_are_told_apart_but_host_names_are_not(tmp_path: Path) -> None:
    """Different CPUs give different fingerprints; a renamed CI host with the same CPU does not."""
    a = {"node": "ci-1", "machine": "x86_64", "system": "Linux", "cpu": CPU_A}
    assert machine_fingerprint(a) == machine_fingerprint({**a, "node": "ci-2"})
    assert machine_fingerprint(a) != machine_fingerprint({**a, "cpu": CPU_B})
    # One brand string, two CPU generations (a Zen 4 and a Zen 5 cloud VM): two machines.
    zen4 = {**a, "cpu": {"brand_raw": "AMD EPYC", "count": 2, "family": 25, "model": 17, "stepping": 0}}
    zen5 = {**a, "cpu": {"brand_raw": "AMD EPYC", "count": 2, "family": 26, "model": 2, "stepping": 1}}
    assert machine_fingerprint(zen4) != machine_fingerprint(zen5)
    assert machine_description(zen5) == "AMD EPYC (family 26 model 2 stepping 1) x2"
    # A file without the CPU's family keeps the fingerprint it always had.
    assert machine_fingerprint(a) == "40096a80b81f"
    run_file(tmp_path / "a.json", WHEN, [bench_entry("m-native-untuned", "m", "untuned", [1.0])], cpu=CPU_A)
    run_file(tmp_path / "b.json", WHEN, [bench_entry("m-native-untuned", "m", "untuned", [1.0])], cpu=CPU_B)
    h = load_history([tmp_path])
    assert h.results["machine"].nunique() == 2


def test_storage_folders_and_outcomes(tmp_path: Path) -> None:
    """pytest-benchmark autosave folders load recursively, with the harness's outcome block."""
    storage = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    outcomes = [{"case": "m-native-b64-tuned", "outcome": "failed", "message": "tuning failed"}]
    run_file(storage / "0001_abc_20261101_030000.json", WHEN,
             [bench_entry("m-native-untuned", "m", "untuned", [1.0, 1.2])], outcomes=outcomes)
    h = load_history([tmp_path / ".benchmarks"])
    assert len(h.results) == 1
    assert h.outcomes.iloc[0]["outcome"] == "failed" and h.outcomes.iloc[0]["message"] == "tuning failed"


def test_missing_paths_are_problems(tmp_path: Path) -> None:
    """A path that does not exist is reported, not fatal."""
    h = load_history([tmp_path / "nope"])
    assert h.results.empty and h.problems == [f"{tmp_path / 'nope'}: no such file or folder"]


def test_thread_count_is_part_of_where_an_item_ran(tmp_path: Path) -> None:
    """TVM items without tvm_threads (before the harness set it) and with 2 threads are separate machines;
    the ONNX Runtime peer, whose threads never changed, stays one trend line."""
    before = [bench_entry("m-native-untuned", "m", "untuned", [2.0]),
              bench_entry("m-native-ort", "m", "ort", [1.0], threads=2)]
    after = [bench_entry("m-native-untuned", "m", "untuned", [1.0], threads=2),
             bench_entry("m-native-ort", "m", "ort", [1.0], threads=2)]
    run_file(tmp_path / "a.json", WHEN, before)
    run_file(tmp_path / "b.json", WHEN.replace(day=2), after)
    h = load_history([tmp_path])
    machine = {(r["run_id"][-1], r["variant"]): (r["machine"], r["machine_desc"]) for _, r in h.results.iterrows()}
    assert machine[("a", "untuned")][0] != machine[("b", "untuned")][0]
    assert machine[("a", "ort")] == machine[("b", "ort")] == machine[("b", "untuned")]
    assert machine[("a", "untuned")][1].endswith("TVM threads not recorded")
    assert machine[("b", "untuned")][1].endswith(", 2 threads")
    assert h.results["host_machine"].nunique() == 1


def test_shards_of_one_run_are_one_run(tmp_path: Path) -> None:
    """Files stamped with the same run id are merged into one run, a shard file seen twice counts once,
    and the run notes how many shards reported."""
    import json as _json

    def shard(name: str, index: int, case: str, when: datetime) -> None:
        path = run_file(tmp_path / name, when, [bench_entry(case, "m", "untuned", [1.0, 1.1], threads=2)])
        data = _json.loads(path.read_text())
        data["tvm_bench"] = {"schema": 1, "outcomes": [], "run": {"id": "night-7", "shard": [index, 3]}}
        path.write_text(_json.dumps(data))

    shard("a.json", 1, "a-native-untuned", WHEN)
    shard("b.json", 2, "b-native-untuned", WHEN.replace(hour=4))
    shard("b-again.json", 2, "b-native-untuned", WHEN.replace(hour=5))
    h = load_history([tmp_path])
    assert list(h.runs["run_id"]) == ["20261101T030000-night-7"] and list(h.runs["shards"]) == ["2 of 3"]
    assert sorted(h.results["case"]) == ["a-native-untuned", "b-native-untuned"]
    assert set(h.results["file"].map(lambda f: Path(f).name)) == {"a.json"}


def test_a_record_schema_this_version_does_not_know_is_refused(tmp_path: Path) -> None:
    """A file written by a newer tvm-bench is refused with its name, not misread; it is not quarantined."""
    from bench.errors import HistoryError
    from bench.history.load import read_run

    entry = bench_entry("m-native-untuned", "m", "untuned", [1e-3, 1.1e-3, 1.2e-3])
    entry["extra_info"]["bench_schema"] = 2
    path = run_file(tmp_path / "h" / "new.json", datetime(2026, 11, 1), [entry])
    with pytest.raises(HistoryError) as info:
        read_run(path)
    assert str(info.value).startswith(f"{path}: benchmark 'test_case[m-native-untuned]' has bench_schema 2; "
                                      "this tvm-bench reads 1")
    assert not info.value.corrupt
    history = load_history([tmp_path / "h"])
    assert history.results.empty and len(history.problems) == 1 and path.is_file()


def test_record_columns_are_declared_record_keys() -> None:
    """The columns readers take are keys of the one record definition (a typo would be a silent NaN column)."""
    from bench.stages.record import COLUMNS, Record

    assert set(COLUMNS) <= set(Record.__annotations__)

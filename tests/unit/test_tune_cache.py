"""The tuning cache's own safety: interrupted databases are repaired, damaged entries set aside."""

from __future__ import annotations

import json
from pathlib import Path

from bench.stages.tuning_db import (
    RECORDS,
    TUNING_SCHEMA,
    WARM_FROM,
    WORKLOADS,
    digest,
    read_meta,
    read_warm_from,
    resume_partial,
    scan,
    warm_source,
    warm_start,
)

WORKLOAD = '["0x1234", "AAAA"]'


def record(workload: int, secs: float) -> str:
    return json.dumps([workload, [["trace"], [], [secs], "target", []]])


def write_db(work: Path, workloads: list[str], records: list[str], tail: str = "") -> None:
    work.mkdir(parents=True, exist_ok=True)
    (work / WORKLOADS).write_text("".join(w + "\n" for w in workloads))
    (work / RECORDS).write_text("".join(r + "\n" for r in records) + tail)


def test_scan_counts_good_lines_and_names_bad_ones(tmp_path: Path) -> None:
    """Valid records are kept; a half-written line and a record of an unknown workload are named."""
    write_db(tmp_path, [WORKLOAD], [record(0, 1e-3), record(3, 1e-3), record(0, 2e-3)], tail='[0, [["tra')
    workloads, records, problem = scan(tmp_path)
    assert len(workloads) == 1 and len(records) == 2
    assert problem == (f"{RECORDS} line 2: not a record of a known workload; "
                       f"{RECORDS} line 4: not valid JSON (half-written?)")


def test_interrupted_database_keeps_its_records(tmp_path: Path) -> None:
    """Resuming drops only the half-written last line, keeps the original in quarantine, counts the rest."""
    partial = tmp_path / "tuning" / "e" / "work.partial"
    write_db(partial, [WORKLOAD], [record(0, 1e-3)] * 5, tail='[0, [["tra')
    messages: list[str] = []
    assert resume_partial(partial, tmp_path, messages.append, "tiny-b16") == 5
    assert (partial / RECORDS).read_text().count("\n") == 5 and scan(partial)[2] is None
    kept = list((tmp_path / "quarantine").glob(f"*{RECORDS}"))
    assert len(kept) == 1 and kept[0].read_text().endswith('[0, [["tra')
    assert "kept the 5 good records" in messages[0]
    # A clean interrupted database is left exactly as it is.
    before = (partial / RECORDS).read_bytes()
    assert resume_partial(partial, tmp_path, messages.append, "tiny-b16") == 5
    assert (partial / RECORDS).read_bytes() == before and len(messages) == 1


def finished_entry(root: Path, key: str = "k") -> Path:
    entry = root / "tuning" / "tiny-cpu-b16-abc"
    write_db(entry / "work", [WORKLOAD], [record(0, 1e-3)] * 3)
    meta = {"schema": TUNING_SCHEMA, "key": key, "trials": 3, "tasks": 1, "tuning_s": 1.0,
            "database_sha256": digest(entry / "work")}
    (entry / "meta.json").write_text(json.dumps(meta))
    return entry


def test_intact_finished_entry_is_reused(tmp_path: Path) -> None:
    """An entry whose files match the sha256 in meta.json is read as is."""
    entry = finished_entry(tmp_path)
    meta = read_meta(entry, "k", tmp_path, print)
    assert meta is not None and meta["trials"] == 3


def test_edited_or_truncated_finished_entry_is_set_aside(tmp_path: Path) -> None:
    """Editing a finished database (even into valid JSON) is caught by its hash; the entry is moved."""
    entry = finished_entry(tmp_path)
    records = entry / "work" / RECORDS
    records.write_text(records.read_text().replace("0.001", "0.0001"))
    messages: list[str] = []
    assert read_meta(entry, "k", tmp_path, messages.append) is None
    assert not entry.exists()
    moved = list((tmp_path / "quarantine").glob("*tiny-cpu-b16-abc"))
    assert len(moved) == 1 and (moved[0] / "work" / RECORDS).is_file()
    assert "no longer match the sha256 in meta.json" in messages[0] and str(moved[0]) in messages[0]

    entry = finished_entry(tmp_path)
    (entry / "meta.json").write_text('{"schema": 1, "key": "k", "tri')
    assert read_meta(entry, "k", tmp_path, messages.append) is None
    assert "meta.json is unreadable" in messages[1]


def test_entry_without_meta_is_not_touched(tmp_path: Path) -> None:
    """No meta.json means no finished entry yet (maybe an interrupted one): nothing is moved."""
    entry = tmp_path / "tuning" / "e"
    write_db(entry / "work.partial", [WORKLOAD], [record(0, 1e-3)])
    assert read_meta(entry, "k", tmp_path, print) is None
    assert (entry / "work.partial" / RECORDS).is_file()


def test_tuning_ops_select_tasks_by_name() -> None:
    """tuning.ops keeps the tasks whose name contains one of the ops; no ops keeps all."""
    from types import SimpleNamespace

    from bench.stages.tune import select_tasks

    tasks = [SimpleNamespace(task_name=n) for n in ("fused_conv2d_add_relu", "fused_matmul_add", "mean", "softmax")]
    assert [t.task_name for t in select_tasks(tasks, ["conv2d", "matmul"])] == ["fused_conv2d_add_relu",
                                                                                 "fused_matmul_add"]
    assert select_tasks(tasks, None) == tasks
    assert select_tasks(tasks, ["dense"]) == []


def family_entry(root: Path, name: str, trials: int, family: str = "fam", tuning_s: float = 10.0) -> Path:
    entry = root / "tuning" / name
    write_db(entry / "work", [WORKLOAD], [record(0, 1e-3 / (i + 1)) for i in range(trials)])
    meta = {"schema": TUNING_SCHEMA, "key": name, "family": family, "trials": trials, "tuning_s": tuning_s,
            "budget": {"name": name.split("-")[-1]}, "database_sha256": digest(entry / "work")}
    (entry / "meta.json").write_text(json.dumps(meta))
    return entry


def test_warm_start_takes_the_largest_smaller_database_of_its_family(tmp_path: Path) -> None:
    """Only a finished, intact entry of the same family with fewer trials than the budget is a source."""
    family_entry(tmp_path, "tiny-b8", 8)
    b16 = family_entry(tmp_path, "tiny-b16", 16, tuning_s=4.5)
    family_entry(tmp_path, "tiny-b32", 32)  # not smaller than the budget below
    family_entry(tmp_path, "tiny-b24", 24, family="other")  # other settings or target
    damaged = family_entry(tmp_path, "tiny-b20", 20)
    (damaged / "work" / RECORDS).write_text((damaged / "work" / RECORDS).read_text()[:-30])
    (tmp_path / "tuning" / "tiny-b28").mkdir()
    (tmp_path / "tuning" / "tiny-b28" / "meta.json").write_text('{"schema": 2, "fam')  # unreadable meta
    found = warm_source(tmp_path, "fam", 32)
    assert found is not None and found[0] == b16
    assert warm_source(tmp_path, "fam", 8) is None and warm_source(tmp_path, "nope", 64) is None

    partial = tmp_path / "tuning" / "tiny-b32-new" / "work.partial"
    taken = warm_start(partial, *found)
    assert taken == {"entry": "tiny-b16", "budget": "b16", "trials": 16, "tuning_s": 4.5}
    assert (partial / RECORDS).read_bytes() == (b16 / "work" / RECORDS).read_bytes()
    assert read_warm_from(partial) == taken and (partial / WARM_FROM).is_file()
    # An interrupted warm-started run still knows which of its records came from the source.
    assert resume_partial(partial, tmp_path, print, "tiny-b32") == 16

"""History stage: every benchmark JSON ever written, as tidy pandas frames.

Accepts any mix of ``--benchmark-json`` files, folders of them, and
pytest-benchmark storage (``.benchmarks/<machine>/NNNN_*.json``). A file that
is not JSON, is truncated, or is a foreign pytest-benchmark file (no
tvm-bench ``extra_info``) is reported in ``problems`` and skipped; the rest
still loads. Runs are keyed by a machine fingerprint so trend lines never mix
machines.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import HistoryError
from bench.stages.record import COLUMNS, KNOWN_SCHEMAS

if TYPE_CHECKING:
    import pandas as pd

#: Stats copied from pytest-benchmark's per-item ``stats`` block.
STAT_FIELDS = ("min", "max", "mean", "median", "stddev", "iqr", "rounds", "ops")
#: CPU identity fields (py-cpuinfo's) beyond the brand string: cloud VMs report brands like "AMD EPYC" for
#: both Zen 4 (family 25) and Zen 5 (family 26), whose GEMM peaks differ by half.
CPU_ID_FIELDS = ("family", "model", "stepping")


def machine_fingerprint(machine_info: dict[str, Any]) -> str:
    """Same CPU (brand, family, model, stepping), core count, architecture and OS -> same fingerprint.

    The host name is left out on purpose: CI runners get new names every run
    but are the same machine for the purposes of a trend line. Files that do
    not record the CPU's family keep the fingerprint they always had.
    """
    cpu = machine_info.get("cpu") or {}
    parts = [cpu.get("brand_raw") or machine_info.get("processor"), cpu.get("count"),
             machine_info.get("machine"), machine_info.get("system")]
    ids = [cpu.get(k) for k in CPU_ID_FIELDS]
    if any(v is not None for v in ids):
        parts.append(ids)
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]


def machine_description(machine_info: dict[str, Any]) -> str:
    cpu = machine_info.get("cpu") or {}
    ids = [cpu.get(k) for k in CPU_ID_FIELDS]
    family = (f" (family {ids[0]} model {ids[1]} stepping {ids[2]})"
              if any(v is not None for v in ids) else "")
    return f"{cpu.get('brand_raw') or machine_info.get('processor') or '?'}{family} x{cpu.get('count', '?')}"


def row_machine(run_machine: str, run_desc: str, info: dict[str, Any]) -> tuple[str, str]:
    """Where one item really ran, as a trend-line identity: fingerprint and description.

    A remote item's machine is its device pool and device (``device_id``),
    never the host that built it.

    The thread count the timed runtime used (``tvm_threads``, or
    ``ort_threads`` for the ONNX Runtime peer) belongs to it like the CPU
    does: TVM items recorded before the harness set TVM's threads ran on one
    of two cores, and must not be the baseline of runs that use both.
    """
    threads = info.get("ort_threads") if info.get("runtime") == "onnxruntime" else info.get("tvm_threads")
    if is_missing(threads):
        threads = None
    device = info.get("device") if isinstance(info.get("device"), dict) else None
    if device is not None and info.get("device_id"):
        # A remote item ran on a device of an RPC pool: that device is its machine, whatever host built it.
        key = hashlib.sha256(json.dumps(["rpc", info["device_id"], threads]).encode()).hexdigest()[:12]
        name = device.get("device_name") or device.get("device_type")
        return key, f"rpc key {device.get('rpc_key')} ({name}), {threads} threads"
    key = hashlib.sha256(json.dumps([run_machine, threads], default=str).encode()).hexdigest()[:12]
    desc = f"{run_desc}, {threads} threads" if threads is not None else f"{run_desc}, TVM threads not recorded"
    return key, desc


#: Sub-folder of a history folder that damaged results files are moved to (never read again).
QUARANTINE = "quarantine"


def discover(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """Expand folders into their ``*.json`` files (recursively), in a stable order."""
    files: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.json")
                                if p.is_file() and QUARANTINE not in p.relative_to(path).parts))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, problems


@dataclass
class Run:
    path: Path
    run_id: str
    time: datetime
    commit: str | None
    dirty: bool | None
    branch: str | None
    machine: str
    machine_desc: str
    node: str | None
    benchmarks: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    #: Run id this run re-measured for the gate (``gate --confirm``): evidence, not history.
    confirms: str | None = None
    #: ``--bench-run-id`` and this file's shard (index, count): shards of one id are one run.
    group: str | None = None
    shard: tuple[int, int] | None = None
    #: After merging: the shard indexes that reported.
    shards_seen: tuple[int, ...] = ()


def read_run(path: Path) -> Run:
    """Parse one benchmark JSON; raise HistoryError with the reason if unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise HistoryError(f"{path}: not a text file") from None
    except json.JSONDecodeError as err:
        raise HistoryError(f"{path}: not valid JSON (truncated?) at line {err.lineno}: {err.msg}") from None
    except OSError as err:
        raise HistoryError(f"{path}: cannot read: {err.strerror}") from None
    if not isinstance(data, dict) or "benchmarks" not in data or "machine_info" not in data:
        raise HistoryError(f"{path}: not a pytest-benchmark results file (no 'benchmarks'/'machine_info')",
                           corrupt=False)
    benches = [b for b in data["benchmarks"] if isinstance(b, dict)
               and isinstance(b.get("extra_info"), dict) and "bench_schema" in b["extra_info"]]
    block = data["tvm_bench"] if isinstance(data.get("tvm_bench"), dict) else {}
    outcomes = [o for o in block.get("outcomes", []) if isinstance(o, dict)]
    if not benches and not outcomes:
        raise HistoryError(f"{path}: a pytest-benchmark file without tvm-bench extra_info (foreign); skipped",
                           corrupt=False)
    for bench in benches:
        schema = bench["extra_info"]["bench_schema"]
        if schema not in KNOWN_SCHEMAS:
            raise HistoryError(f"{path}: benchmark {bench.get('name', '?')!r} has bench_schema {schema!r}; this "
                               f"tvm-bench reads {', '.join(map(str, KNOWN_SCHEMAS))}: read it with the version that "
                               "wrote it, or upgrade tvm-bench", corrupt=False)
        missing = _missing_fields(bench)
        if missing:
            raise HistoryError(f"{path}: benchmark {bench.get('name', '?')!r} lacks {missing}; the file is damaged")
    try:
        when = datetime.fromisoformat(str(data["datetime"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        raise HistoryError(f"{path}: missing or bad 'datetime'") from None
    if when.tzinfo is not None:
        when = when.replace(tzinfo=None)
    commit = data.get("commit_info") or {}
    machine = data["machine_info"] if isinstance(data["machine_info"], dict) else {}
    group, shard = _run_group(block, path)
    fingerprint, desc = machine_fingerprint(machine), machine_description(machine)
    for bench in benches:  # shards of one run may come from different hosts
        bench["_host"] = (fingerprint, desc)
    return Run(path=path, run_id=f"{when:%Y%m%dT%H%M%S}-{path.stem}", time=when, commit=commit.get("id"),
               dirty=commit.get("dirty"), branch=commit.get("branch"), machine=fingerprint, machine_desc=desc,
               node=machine.get("node"), benchmarks=benches, outcomes=outcomes,
               confirms=block.get("confirms") if isinstance(block.get("confirms"), str) else None,
               group=group, shard=shard)


def _run_group(block: dict[str, Any], path: Path) -> tuple[str | None, tuple[int, int] | None]:
    run = block.get("run")
    if not isinstance(run, dict):
        return None, None
    shard = run.get("shard")
    if not (isinstance(run.get("id"), str) and isinstance(shard, list) and len(shard) == 2
            and all(isinstance(x, int) for x in shard) and 1 <= shard[0] <= shard[1]):
        raise HistoryError(f"{path}: 'tvm_bench.run' must hold an 'id' and a 'shard' [i, n]; the file is damaged")
    return run["id"], (shard[0], shard[1])


def merge_shards(runs: list[Run]) -> list[Run]:
    """The shards of one ``--bench-run-id`` become one run, timed by its first shard.

    A shard file seen twice (a retried CI job) counts once: the later file wins.
    """
    out: list[Run] = []
    groups: dict[str, dict[int, Run]] = {}
    for run in runs:
        if run.group is None or run.shard is None:
            out.append(run)
            continue
        parts = groups.setdefault(run.group, {})
        if run.shard[0] not in parts or parts[run.shard[0]].time <= run.time:
            parts[run.shard[0]] = run
    for group, parts in groups.items():
        ordered = sorted(parts.values(), key=lambda r: r.time)
        first = ordered[0]
        out.append(Run(path=first.path, run_id=f"{first.time:%Y%m%dT%H%M%S}-{group}", time=first.time,
                       commit=first.commit, dirty=first.dirty, branch=first.branch, machine=first.machine,
                       machine_desc=first.machine_desc, node=first.node,
                       benchmarks=[b for r in ordered for b in r.benchmarks],
                       outcomes=[o for r in ordered for o in r.outcomes], confirms=first.confirms, group=group,
                       shard=(0, first.shard[1] if first.shard else 1), shards_seen=tuple(sorted(parts))))
    return out


def _missing_fields(bench: dict[str, Any]) -> str | None:
    """The first field the gate and report need that this benchmark entry lacks."""
    stats = bench.get("stats")
    if not isinstance(stats, dict):
        return "'stats'"
    for key in ("median", "mean", "rounds"):
        if not isinstance(stats.get(key), (int, float)):
            return f"'stats.{key}'"
    for key in ("case", "variant"):
        if not isinstance(bench["extra_info"].get(key), str):
            return f"'extra_info.{key}'"
    return None


@dataclass
class History:
    """Tidy frames: ``results`` one row per (run, case); ``outcomes`` per (run, item); ``runs`` per run."""

    results: pd.DataFrame
    outcomes: pd.DataFrame
    runs: pd.DataFrame
    problems: list[str]


def _run_columns(run: Run) -> dict[str, Any]:
    return {"run_id": run.run_id, "run_time": run.time, "commit": run.commit, "dirty": run.dirty,
            "branch": run.branch, "machine": run.machine, "machine_desc": run.machine_desc, "node": run.node,
            "file": str(run.path),
            "shards": f"{len(run.shards_seen)} of {run.shard[1]}" if run.shards_seen and run.shard else None}


def load_history(paths: Iterable[str | Path], *, confirmations: bool = False) -> History:
    """Load every usable run under ``paths``; unusable files go to ``problems``.

    Re-measurements taken by ``gate --confirm`` cover only the cases they
    confirm, so they are left out unless ``confirmations`` is set.

    A damaged file found by searching a folder is moved to that folder's
    ``quarantine/`` (with a note why), so it is reported once and the history
    stays clean; files named one by one are only reported.
    """
    import pandas as pd

    from bench.cache import set_aside

    paths = list(paths)
    folders = [Path(p).resolve() for p in paths if Path(p).is_dir()]
    files, problems = discover(paths)
    runs: list[Run] = []
    for path in files:
        try:
            run = read_run(path)
            if run.confirms is None or confirmations:
                runs.append(run)
        except HistoryError as err:
            home = next((f for f in folders if path.resolve().is_relative_to(f)), None)
            if err.corrupt and home is not None:
                try:
                    dest = set_aside(path, home, str(err))
                    problems.append(f"{err}; moved to {dest}")
                    continue
                except OSError as move_err:
                    problems.append(f"{err}; could not move it aside: {move_err.strerror}")
                    continue
            problems.append(str(err))
    runs = merge_shards(runs)
    result_rows: list[dict[str, Any]] = []
    outcome_rows: list[dict[str, Any]] = []
    for run in runs:
        base = _run_columns(run)
        for bench in run.benchmarks:
            host, host_desc = bench.get("_host") or (run.machine, run.machine_desc)
            row = result_row(bench["extra_info"], bench.get("stats") or {}, host, host_desc)
            result_rows.append({**base, **row, "name": bench.get("name"), "fullname": bench.get("fullname")})
        for outcome in run.outcomes:
            outcome_rows.append({**base, **{k: outcome.get(k) for k in (
                "case", "suite", "model", "target_name", "variant", "budget", "outcome", "message", "nodeid")}})
    # The row's machine (where the item ran) replaces the run's (the host that wrote the file).
    columns = list(dict.fromkeys([*_run_columns_names(), "name", "fullname", *RESULT_COLUMNS]))
    results = pd.DataFrame(result_rows, columns=columns)
    outcomes = pd.DataFrame(outcome_rows, columns=[*_run_columns_names(), "case", "suite", "model", "target_name",
                                                   "variant", "budget", "outcome", "message", "nodeid"])
    run_frame = pd.DataFrame([_run_columns(r) for r in runs], columns=_run_columns_names())
    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sort_values(["run_time", "run_id"], kind="stable").reset_index(drop=True)

    return History(ordered(results), ordered(outcomes), ordered(run_frame), problems)


#: The columns ``result_row`` fills, after the run's own.
RESULT_COLUMNS = ("machine", "machine_desc", "host_machine", *STAT_FIELDS, *COLUMNS, "check_failed")


def result_row(info: dict[str, Any], stats: dict[str, Any], host: str, host_desc: str) -> dict[str, Any]:
    """One measured item as a results row: where it ran, its statistics and its record's columns.

    The one conversion, used for the history files and for the session the
    ``--bench-gate`` option judges, so both look the same to the gate.
    """
    machine, desc = row_machine(host, host_desc, info)
    row: dict[str, Any] = {"machine": machine, "machine_desc": desc, "host_machine": host}
    row.update({k: stats.get(k) for k in STAT_FIELDS})
    row.update({k: info.get(k) for k in COLUMNS})
    if row.get("tvm_label") is None:  # recorded before TVM became an axis: the harness's own TVM
        row["tvm_label"] = info.get("tvm_version")
    row["check_failed"] = [k for k, v in (info.get("check") or {}).items() if v != "pass"]
    return row


def tvm_of(row: Any) -> str:
    """The TVM a results row ran on, as tables and charts name it (``?`` where nothing was recorded)."""
    for key in ("tvm_label", "tvm_version"):
        value = row.get(key)
        if not is_missing(value):
            return str(value)
    return "?"


def is_missing(value: Any) -> bool:
    """None or NaN: how pandas shows a field a record did not have."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _run_columns_names() -> list[str]:
    return ["run_id", "run_time", "commit", "dirty", "branch", "machine", "machine_desc", "node", "file", "shards"]

"""The tuning cache: keys, entries, the databases' digests, warm starts and interrupted runs resumed.

A database lives in ``<cache>/tuning/<model>-<target>-<budget>-<key>/work``,
where the key covers the model's content, the resolved target and its
threads, the budget, the search settings and the TVM version: records are
not checked against the target by TVM, so a key that ignored the target would
silently apply a database tuned for another CPU. ``work.partial`` holds a run
in progress; ``meta.json`` the finished entry's sha256, checked on reuse.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cache import atomic_write, key_of, set_aside
from bench.stages.build import NO_PREPACK
from bench.suite.target import last_level_cache_bytes

if TYPE_CHECKING:
    from bench.stages.model import LoadedModel
    from bench.suite.case import Case

#: Stamped into meta.json; a mismatch means the entry is retuned, not misread.
#: 2: the key covers the runner's thread count (schema 1 databases were measured on one thread).
TUNING_SCHEMA = 2

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Tuned:
    """A finished tuning database and what it cost."""

    work_dir: Path
    trials: int
    tasks: int
    tuning_s: float
    cached: bool
    key: str
    #: Records an interrupted run had measured before this one resumed it.
    resumed: int = 0
    #: TVM runtime threads each of the runner's measuring processes reported (read back, not assumed).
    runner_threads: tuple[int, ...] = ()
    #: The smaller budget's database this one started from (``tuning.warm_start``): its budget name,
    #: trials and tuning seconds, which are counted in ``trials`` and ``tuning_s``.
    warm_from: dict[str, Any] | None = None

    @property
    def seconds_per_trial(self) -> float | None:
        """Over the trials measured by this run and a warm start's source (``tuning_s`` covers both, but not
        an interrupted run's time)."""
        measured = self.trials - self.resumed
        return self.tuning_s / measured if measured > 0 else None


def cache_flush(case: Case, model: LoadedModel) -> tuple[bool, str]:
    """Whether the runner flushes candidates' weights from the CPU caches before timing them, and why."""
    setting = case.tuning.cache_flush
    if case.target.kind != "llvm":
        return False, "not a CPU target"
    if setting != "auto":
        return setting, f"tuning.cache_flush: {str(setting).lower()}"
    if case.target.rpc is not None:
        return False, "auto: a remote device's caches are not known here (set tuning.cache_flush)"
    cache = last_level_cache_bytes()
    if cache is None:
        return False, "auto: this host's cache size is unknown (set tuning.cache_flush)"
    weights = model.weight_bytes
    return weights > cache, (f"auto: {weights / 2**20:.0f} MiB of weights, {cache / 2**20:.0f} MiB "
                             "last-level cache")


def key_settings(case: Case, model: LoadedModel) -> dict[str, Any]:
    settings = case.tuning.key_settings()
    if case.conv_layout is not None:
        settings["layout"] = case.conv_layout
    if cache_flush(case, model)[0]:
        settings["cache_flush"] = True
    if case.weight_prepack and "ConvTranspose" in model.op_types:  # its kernels tune without prepacking
        settings["no_prepack"] = list(NO_PREPACK)
    return settings


def tuning_key(case: Case, model: LoadedModel) -> str:
    from bench.stages.tvm_api import current

    return key_of(TUNING_SCHEMA, model.sha256, case.target.identity, case.target.threads, case.budget.trials,
                  case.budget.max_trials_per_task, key_settings(case, model), current().build_id)


def tuning_family(case: Case, model: LoadedModel) -> str:
    """The tuning key without the budget: databases of one family differ only in how many trials they hold."""
    from bench.stages.tvm_api import current

    return key_of(TUNING_SCHEMA, model.sha256, case.target.identity, case.target.threads,
                  key_settings(case, model), current().build_id)


def entry_dir(case: Case, model: LoadedModel, cache_dir: Path) -> tuple[Path, str]:
    key = tuning_key(case, model)
    return cache_dir / "tuning" / f"{case.model.name}-{case.target.name}-{case.budget.id}-{key[:12]}", key


WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


def scan(work: Path) -> tuple[list[str], list[str], str | None]:
    """The database's valid workload and record lines, and what was wrong with the rest (if anything).

    A line is valid when it parses as JSON of the shape MetaSchedule writes;
    a record must point at an existing workload.
    """
    problems = []
    workloads: list[str] = []
    records: list[str] = []
    for name, out in ((WORKLOADS, workloads), (RECORDS, records)):
        try:
            text = (work / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"{name}: unreadable ({err})")
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                problems.append(f"{name} line {n}: not valid JSON (half-written?)")
                continue
            if name == RECORDS and not (isinstance(value, list) and value and isinstance(value[0], int)
                                        and 0 <= value[0] < len(workloads)):
                problems.append(f"{name} line {n}: not a record of a known workload")
                continue
            if name == WORKLOADS and not isinstance(value, list):
                problems.append(f"{name} line {n}: not a workload entry")
                continue
            out.append(line)
    return workloads, records, "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else "") or None


def digest(work: Path) -> str:
    h = hashlib.sha256()
    for name in (WORKLOADS, RECORDS):
        path = work / name
        h.update(path.read_bytes() if path.is_file() else b"")
    return h.hexdigest()


def read_meta(entry: Path, key: str, cache_dir: Path, progress: Progress) -> dict[str, Any] | None:
    """A finished entry's meta, or None; a finished entry that fails its checks is set aside."""
    work = entry / "work"
    try:
        meta = json.loads((entry / "meta.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        meta = None
    if not isinstance(meta, dict) or meta.get("schema") != TUNING_SCHEMA or meta.get("key") != key:
        reason = "meta.json is unreadable or belongs to another key"
    elif not (work / RECORDS).is_file():
        reason = f"{RECORDS} is missing"
    elif meta.get("database_sha256") is not None and meta["database_sha256"] != digest(work):
        reason = "the database files no longer match the sha256 in meta.json (truncated or edited)"
    else:
        _, records, problem = scan(work)
        if problem is None and records:
            return dict(meta)
        reason = f"the database is damaged: {problem or 'no records'}"
    dest = set_aside(entry, cache_dir, reason)
    progress(f"[cache] tuning entry {entry}: {reason}; moved to {dest} and tuning again")
    return None


WARM_FROM = "warm-from.json"


def warm_source(cache_dir: Path, family: str, trials: int) -> tuple[Path, dict[str, Any]] | None:
    """The finished entry of this family with the most trials below ``trials`` whose files still check out."""
    found = []
    for meta_path in (cache_dir / "tuning").glob("*/meta.json"):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if (isinstance(meta, dict) and meta.get("schema") == TUNING_SCHEMA and meta.get("family") == family
                and isinstance(meta.get("trials"), int) and 0 < meta["trials"] < trials):
            found.append((meta["trials"], meta_path.parent, meta))
    for _, entry, meta in sorted(found, key=lambda f: -f[0]):
        work = entry / "work"
        if (work / RECORDS).is_file() and meta.get("database_sha256") == digest(work):
            return entry, meta
    return None


def warm_start(partial: Path, source: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Copy a smaller budget's database into ``partial``; return what was taken (also kept beside it)."""
    partial.mkdir(parents=True, exist_ok=True)
    for name in (WORKLOADS, RECORDS):
        shutil.copyfile(source / "work" / name, partial / name)
    _, records, _ = scan(partial)
    taken = {"entry": source.name, "budget": meta.get("budget", {}).get("name"), "trials": len(records),
             "tuning_s": float(meta.get("tuning_s") or 0.0)}
    atomic_write(partial / WARM_FROM, json.dumps(taken))
    return taken


def read_warm_from(partial: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((partial / WARM_FROM).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and isinstance(value.get("trials"), int) else None


def resume_partial(partial: Path, cache_dir: Path, progress: Progress, label: str) -> int:
    """Make an interrupted run's database safe to continue; return its record count."""
    workloads, records, problem = scan(partial)
    if problem is not None:
        kept = cache_dir / "quarantine"
        for name in (WORKLOADS, RECORDS):
            if (partial / name).is_file():
                kept = set_aside(partial / name, cache_dir, f"interrupted tuning: {problem}").parent
        atomic_write(partial / WORKLOADS, "".join(line + "\n" for line in workloads))
        atomic_write(partial / RECORDS, "".join(line + "\n" for line in records))
        progress(f"[tune] {label}: interrupted database had bad lines ({problem}); kept the "
                 f"{len(records)} good records, originals in {kept}")
    return len(records)




@dataclass(frozen=True)
class Partial:
    """Where a tuning run writes (``work.partial``) and what it starts from."""

    path: Path
    family: str
    #: Records already in the database: a warm start's and an interrupted run's.
    done: int
    #: The warm start's source (``tuning.warm_start``), and how many of ``done`` and how many seconds it gave.
    warm_from: dict[str, Any] | None
    warm: int
    warm_s: float


def open_partial(case: Case, model: LoadedModel, cache_dir: Path, entry: Path, *, retune: bool,
                 progress: Progress) -> Partial:
    """The run's ``work.partial``: fresh, warm-started from a smaller budget, or an interrupted run resumed."""
    partial = entry / "work.partial"
    if partial.exists() and retune:
        shutil.rmtree(partial)
    family = tuning_family(case, model)
    if case.tuning.warm_start and not partial.exists():
        found = warm_source(cache_dir, family, case.budget.trials)
        if found is not None:
            taken = warm_start(partial, *found)
            progress(f"[tune] {case.id}: warm start from {found[0]}: {taken['trials']} trials "
                     f"({taken['tuning_s']:.0f} s) of budget {taken['budget']} count towards this budget")
    warm_from = read_warm_from(partial) if partial.exists() else None
    done = resume_partial(partial, cache_dir, progress, case.id) if partial.exists() else 0
    partial.mkdir(parents=True, exist_ok=True)
    warm = min(warm_from["trials"], done) if warm_from else 0
    if done > warm:
        progress(f"[tune] {case.id}: resuming an interrupted tuning: {done - warm} records already measured "
                 f"in {partial}, {max(case.budget.trials - done, 0)} trials to go")
    return Partial(partial, family, done, warm_from, warm, float(warm_from["tuning_s"]) if warm_from else 0.0)


def finish_entry(entry: Path, part: Partial, meta: dict[str, Any]) -> Path:
    """``work.partial`` becomes ``work``, and ``meta.json`` records it with its sha256: a finished entry."""
    work = entry / "work"
    if work.exists():
        shutil.rmtree(work)
    (part.path / WARM_FROM).unlink(missing_ok=True)
    part.path.rename(work)
    atomic_write(entry / "meta.json", json.dumps({**meta, "database_sha256": digest(work)}, indent=1))
    return work

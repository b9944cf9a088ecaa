"""Baseline builds: the library a case built in an accepted run, kept to time later builds against.

Every local TVM item keeps the library it built (``<cache>/builds/<case>/``,
the newest few per case) and names it in its record (``library``).
Accepting a run (``python -m bench baseline accept RUN.json``) copies each
passing item's library, with what made it, into the baseline folder::

    <baseline dir>/<case id>/<target key>/library.so
    <baseline dir>/<case id>/<target key>/baseline.json

The target key is the resolved target's digest: a ``native`` library built
on another CPU model is another baseline. Losing the folder costs precision,
never a wrong verdict: a case without a baseline is gated on its history.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cache import atomic_write, file_sha256, key_of
from bench.errors import BaselineError

if TYPE_CHECKING:
    from bench.stages.build import Compiled
    from bench.suite.case import Case

BASELINE_SCHEMA = 1
#: Libraries kept per case in the cache's builds/ folder; older ones go (a ResNet-50 library is ~100 MB).
KEEP_BUILDS = 3
LIBRARY = "library.so"
META = "baseline.json"


@dataclass(frozen=True)
class Baseline:
    """One case's accepted build: its library and the identity of what made it."""

    library: Path
    sha256: str
    meta: dict[str, Any]

    def identity(self) -> dict[str, Any]:
        """What the record says of the baseline it was timed against."""
        keys = ("run_id", "commit", "accepted", "tvm_version", "tvm_label", "tuning_key", "model_sha256",
                "library_sha256")
        return {k: self.meta.get(k) for k in keys}


def default_dir(cache_dir: Path) -> Path:
    """Where baselines live unless ``--bench-baseline-dir`` (or the CLI's ``--baseline-dir``) says."""
    return cache_dir / "baselines"


def target_key(target: dict[str, Any] | str) -> str:
    """The resolved target's digest: baselines of one case on different CPUs stay apart."""
    return key_of(json.loads(target) if isinstance(target, str) else target)[:12]


def case_folder(root: Path, case_id: str, target: dict[str, Any] | str) -> Path:
    return root / case_id / target_key(target)


def keep_library(compiled: Compiled, case: Case, cache_dir: Path) -> tuple[Path, str]:
    """Export the build's library into the cache (named by its sha256), pruning older ones of the case."""
    from bench.stages.build import export_library

    folder = cache_dir / "builds" / case.id
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".export-{datetime.now().timestamp():.6f}.so"
    export_library(compiled, case.target, partial, case.suite.where, case.target.key_path)
    sha = file_sha256(partial)
    path = folder / f"{sha[:16]}.so"
    partial.replace(path)
    path.touch()  # newest first when pruning, also when the same bytes were kept before
    for old in sorted(folder.glob("*.so"), key=lambda p: p.stat().st_mtime, reverse=True)[KEEP_BUILDS:]:
        old.unlink(missing_ok=True)
    return path, sha


def find(root: Path, case_id: str, target: dict[str, Any] | str,
         warn: Any = None) -> Baseline | None:
    """The case's baseline on this target, or None (a damaged one is reported through ``warn`` and ignored)."""
    folder = case_folder(root, case_id, target)
    meta_path, library = folder / META, folder / LIBRARY
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("schema") != BASELINE_SCHEMA:
            raise ValueError(f"schema {meta.get('schema')!r}, this tvm-bench reads {BASELINE_SCHEMA}")
        sha = file_sha256(library)
        if sha != meta["library_sha256"]:
            raise ValueError("the library's sha256 does not match baseline.json")
    except (OSError, ValueError, KeyError) as err:
        if warn is not None:
            warn(f"[baseline] {case_id}: the baseline in {folder} is unusable ({err}); accept a run again. "
                 "Gated on history meanwhile")
        return None
    return Baseline(library, sha, meta)


def accept(run_path: Path, root: Path) -> list[str]:
    """Make each passing TVM item of the run its case's baseline; one line per case says what happened."""
    from bench.errors import HistoryError
    from bench.history.load import read_run

    try:
        run = read_run(run_path)
    except HistoryError as err:
        raise BaselineError(str(err)) from None
    lines: list[str] = []
    accepted = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for bench in run.benchmarks:
        info = bench["extra_info"]
        case, library = info.get("case"), info.get("library")
        if info.get("runtime") != "tvm":
            continue
        if not isinstance(library, dict):
            lines.append(f"skipped {case}: no library recorded (remote items and runs before baselines have none)")
            continue
        if info.get("check_ok") is False:
            lines.append(f"skipped {case}: its check failed; a wrong build is no baseline")
            continue
        source = Path(library["path"])
        try:
            sha = file_sha256(source)
        except OSError:
            lines.append(f"skipped {case}: its library {source} is gone (the cache was cleaned?); rerun, then accept")
            continue
        if sha != library["sha256"]:
            lines.append(f"skipped {case}: {source} changed since the run (sha256 differs)")
            continue
        folder = case_folder(root, case, info["target"])
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / f".{LIBRARY}.partial"
            shutil.copyfile(source, partial)
            partial.replace(folder / LIBRARY)
            meta = {"schema": BASELINE_SCHEMA, "case": case, "library_sha256": sha,
                    "library_bytes": source.stat().st_size, "target": info["target"],
                    "model_sha256": info.get("model_sha256"),
                    "tvm_version": info.get("tvm_version"), "tvm_label": info.get("tvm_label"),
                    "tvm_build_id": (info.get("tvm") or {}).get("build_id"), "tuning_key": info.get("tuning_key"),
                    "run_id": run.run_id, "run_file": str(run_path), "commit": run.commit,
                    "machine": run.machine_desc, "accepted": accepted}
            atomic_write(folder / META, json.dumps(meta, indent=1).encode())
        except OSError as err:
            raise BaselineError(f"cannot write the baseline of {case} in {folder}: {err.strerror}") from None
        lines.append(f"accepted {case}: {sha[:12]} from run {run.run_id}")
    if not lines:
        raise BaselineError(f"{run_path}: no TVM items in this run; nothing to accept")
    return lines

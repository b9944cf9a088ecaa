"""The TVM under test as the harness sees it: the versions it supports, the apache-tvm-ffi each needs, what
identifies a build, and every difference between the supported versions' APIs (this module is their one place).

Measured by running the smoke suite on each release (docs/guide.md#the-tvm-under-test), the differences are:

* a Relax constant is a ``tvm.relax.Constant`` holding ``.data`` in 0.25 and 0.26, a ``tvm.ir.GenericConst``
  holding ``.value`` in 0.27 (``is_constant``, ``constant_array``);
* each release loads only with the apache-tvm-ffi of its own line (``FFI``);
* the wheels carry their commit in ``tvm._version`` and no LLVM version in their build info (``current``).

Every other call the harness makes (ONNX import, Relax build, MetaSchedule, the VM) is the same in all three.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: The minor lines the harness runs on, oldest first.
SUPPORTED = ("0.25", "0.26", "0.27")
#: The apache-tvm-ffi each line is installed with. 0.25 fails to load with 0.1.14.post1 (undefined symbol
#: ``tvm::ffi::json::Stringify``); 0.27 segfaults in MetaSchedule with 0.1.15 (pyproject.toml).
FFI = {"0.25": "0.1.12", "0.26": "0.1.14.post1", "0.27": "0.1.14.post1"}
#: Set by the parent for each worker: the worker's TVM under test, as JSON (bench.run.tvm_env).
ENV = "TVM_BENCH_TVM"


def minor(version: str) -> str:
    """``0.26.0`` -> ``0.26``; ``0.27.dev0+g1234`` -> ``0.27``."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return f"{match[1]}.{match[2]}" if match else version


def supported_range() -> str:
    return f"{SUPPORTED[0]}-{SUPPORTED[-1]}"


def unsupported(version: str) -> str | None:
    """Why this TVM cannot be measured, in one line; None when its line is supported."""
    if minor(version) in SUPPORTED:
        return None
    return (f"TVM {version} is outside the range this harness supports ({supported_range()}): choose a "
            f"version in it, or a build of one (docs/guide.md#the-tvm-under-test)")


def ffi_for(version: str) -> str:
    return FFI[minor(version)]


def is_constant(expr: Any) -> bool:
    """Whether a Relax expression is a constant (its class moved from ``tvm.relax`` to ``tvm.ir`` in 0.27)."""
    import tvm

    constant = getattr(tvm.ir, "GenericConst", None) or tvm.relax.Constant
    return isinstance(expr, constant)


def constant_array(expr: Any) -> Any:
    """A Relax constant's value as a NumPy array."""
    value = expr.value if hasattr(expr, "value") else expr.data
    return value.numpy()


@dataclass(frozen=True)
class TvmBuild:
    """Which TVM an item ran on: recorded with every item (``tvm``) and followed by the history."""

    #: The name under test (``installed``: the harness's own).
    name: str
    #: ``installed`` (the harness's environment), ``version`` (a release in the cache), ``path`` (a build).
    source: str
    version: str
    #: The git commit TVM was built from, where its build says (``tvm._version.commit_id``) or its checkout.
    commit: str | None
    #: LLVM's major version TVM's code generator was built with.
    llvm: int | None
    #: The build's folder, for ``path`` builds.
    path: str | None
    #: What tells two builds apart in tuning cache keys: the version for a release (its files never change);
    #: for a build, version and commit, plus its libraries' sizes and times when the checkout has changes
    #: that are not committed.
    build_id: str

    @property
    def label(self) -> str:
        """How tables and charts name it: ``0.26.0``, or ``main@1a2b3c4d`` for a build."""
        if self.source == "path":
            return f"{self.name}@{self.commit[:9]}" if self.commit else self.name
        return self.version

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


def _git(folder: Path, *args: str) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
def current() -> TvmBuild:
    """The TVM this process imports (the worker's, set up by bench.run.tvm_env), identified."""
    import tvm

    under_test = json.loads(os.environ.get(ENV, "{}") or "{}")
    source = under_test.get("source", "installed")
    path = under_test.get("path")
    commit = None
    try:
        from tvm import _version

        commit = (getattr(_version, "commit_id", None) or "").removeprefix("g") or None
    except ImportError:
        pass
    dirty = False
    if source == "path" and path is not None:
        commit = _git(Path(path), "rev-parse", "HEAD") or commit
        dirty = bool(_git(Path(path), "status", "--porcelain", "--untracked-files=no"))
    try:
        llvm: int | None = int(tvm.get_global_func("target.llvm_version_major")())
    except Exception:  # a build without LLVM
        llvm = None
    build_id = tvm.__version__
    if source == "path":
        build_id = f"{tvm.__version__}+{commit}"
        if dirty or commit is None:
            folders = [Path(tvm.__file__).parent, *([Path(under_test["library_path"])]
                                                     if under_test.get("library_path") else [])]
            stamps = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime))
                            for folder in folders for p in folder.rglob("libtvm*.so"))
            build_id += f"+{json.dumps(stamps)}"
    return TvmBuild(name=under_test.get("name", "installed"), source=source, version=tvm.__version__,
                    commit=commit, llvm=llvm, path=path, build_id=build_id)

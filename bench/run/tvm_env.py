"""The TVM under test, put in place for a worker: a release installed once into the cache, or a build found on
disk, reached through the worker's ``PYTHONPATH`` so the harness's own environment is never touched.

A release goes into ``<cache>/tvm/apache-tvm-<version>/`` with ``pip install --no-deps --target``, together
with the apache-tvm-ffi its line needs (bench.stages.tvm_api.FFI); everything else (NumPy, XGBoost, ONNX) is
the harness's. ``TVM_BENCH_PIP_ARGS`` adds pip options, e.g. ``--no-index --find-links WHEELS`` on a machine
without the package index.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.cache import atomic_write, locked
from bench.errors import TvmError
from bench.stages.tvm_api import ENV, ffi_for, unsupported
from bench.suite.case import TvmUnderTest

#: Extra options for the pip that installs a release (a wheelhouse, an index mirror).
PIP_ARGS_ENV = "TVM_BENCH_PIP_ARGS"
#: Written last into an overlay: a folder without it is an interrupted install and is made again.
MARKER = "bench-tvm.json"


def environment(tvm: TvmUnderTest, cache_dir: Path, progress: Callable[[str], None],
                where: str | None = None) -> dict[str, str]:
    """The variables a worker needs to import this TVM (installing a release first, once)."""
    under_test: dict[str, str | None] = {"name": tvm.name, "source": tvm.source, "version": tvm.version,
                                         "path": str(tvm.path) if tvm.path else None}
    env: dict[str, str] = {}
    paths: list[Path] = []
    if tvm.source == "version":
        assert tvm.version is not None
        problem = unsupported(tvm.version)
        if problem:
            raise TvmError(problem, where, tvm.key)
        paths.append(install(tvm.version, cache_dir, progress, where, tvm.key))
    elif tvm.source == "path":
        assert tvm.path is not None
        python, library, ffi = locate_build(tvm.path, where, tvm.key)
        paths += [python, *([ffi] if ffi else [])]
        if library is not None:
            env["TVM_LIBRARY_PATH"] = str(library)
            under_test["library_path"] = str(library)
    if paths:
        env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *filter(None, [os.environ.get("PYTHONPATH")])])
    env[ENV] = json.dumps(under_test)
    return env


def locate_build(folder: Path, where: str | None, key: str) -> tuple[Path, Path | None, Path | None]:
    """A build's ``tvm`` package folder, the folder of its libtvm (if not inside the package), and its own
    compiled tvm_ffi package (installed into ``build/python-deps``, or built in ``3rdparty/tvm-ffi/python``);
    without one the worker imports the harness's apache-tvm-ffi."""
    if (folder / "python" / "tvm" / "__init__.py").is_file():
        python = folder / "python"
    elif (folder / "tvm" / "__init__.py").is_file():
        python = folder
    else:
        raise TvmError(f"{folder} holds no TVM: expected a source checkout (python/tvm/) or a folder with "
                       "the tvm package", where, key)
    library = next((d for d in (folder / "build" / "lib", folder / "build", folder / "lib")
                    if any(d.glob("libtvm*.so"))), None)
    if library is None and not any((python / "tvm").rglob("libtvm*.so")):
        raise TvmError(f"{folder} has no libtvm*.so in build/, lib/ or the tvm package: build TVM first "
                       "(cmake --build build)", where, key)
    for ffi in (folder / "build" / "python-deps", folder / "3rdparty" / "tvm-ffi" / "python"):
        if (ffi / "tvm_ffi").is_dir() and any((ffi / "tvm_ffi").glob("core*.so")):
            return python, library, ffi
    return python, library, None


def install(version: str, cache_dir: Path, progress: Callable[[str], None], where: str | None = None,
            key: str = "tvm") -> Path:
    """The overlay folder holding TVM ``version`` and its apache-tvm-ffi, installed on first use."""
    folder = cache_dir / "tvm" / f"apache-tvm-{version}"
    if (folder / MARKER).is_file():
        return folder
    with locked(folder.with_name(folder.name + ".lock"), f"installing TVM {version}", progress):
        if (folder / MARKER).is_file():
            return folder
        ffi = ffi_for(version)
        partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)  # an interrupted install (no marker)
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--disable-pip-version-check",
               "--target", str(partial), f"apache-tvm=={version}", f"apache-tvm-ffi=={ffi}",
               *shlex.split(os.environ.get(PIP_ARGS_ENV, ""))]
        progress(f"[bench] installing TVM {version} with apache-tvm-ffi {ffi} into {folder} (once; later runs "
                 "reuse it)")
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as err:
            shutil.rmtree(partial, ignore_errors=True)
            raise TvmError(f"could not run pip to install TVM {version}: {err}", where, key) from None
        if done.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()
                     and not ln.startswith("WARNING")]
            why = lines[-1].strip() if lines else f"exit status {done.returncode}"
            raise TvmError(f"pip could not install apache-tvm=={version} (with apache-tvm-ffi=={ffi}): {why}",
                           where, key)
        atomic_write(partial / MARKER, json.dumps({"version": version, "ffi": ffi, "pip": cmd[3:]}))
        partial.rename(folder)
    return folder

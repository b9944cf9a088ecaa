"""Targets as users type them, resolved into TVM 0.27's JSON form.

TVM 0.27 rejects ``"llvm -mcpu=core-avx2"``; users still think in that form,
so we accept it (and ``native``) and convert, keeping the exact JSON that TVM
resolved as the identity of the target in caches and records.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_NUMBER = re.compile(r"^-?\d+$")
#: Options that TVM takes as lists; a comma-separated string becomes a list.
_LIST_OPTIONS = {"mattr", "keys", "libs"}
#: Device kinds whose absence makes a case a skip rather than an error.
GPU_KINDS = {"cuda", "rocm", "vulkan", "metal", "opencl", "webgpu", "nvptx"}


def _value(key: str, raw: str) -> Any:
    if key in _LIST_OPTIONS:
        return [v for v in raw.split(",") if v]
    if _NUMBER.match(raw):
        return int(raw)
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return raw


def parse_target_string(text: str) -> dict[str, Any]:
    """Convert ``"llvm -mcpu=core-avx2 -num-cores=2"`` into a JSON target dict.

    Raises ValueError with the offending token; the caller adds file and key.
    """
    tokens = text.split()
    if not tokens:
        raise ValueError("empty target string")
    kind, *opts = tokens
    if kind.startswith("-"):
        raise ValueError(f"target string must start with a kind such as 'llvm' (got {text!r})")
    out: dict[str, Any] = {"kind": kind}
    for tok in opts:
        if not tok.startswith("-"):
            raise ValueError(f"expected '-key=value', got {tok!r} in {text!r}")
        key, sep, raw = tok.lstrip("-").partition("=")
        out[key] = _value(key, raw) if sep else True
    return out


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or 1


def last_level_cache_bytes() -> int | None:
    """The size of this host's largest CPU cache (Linux sysfs), or None where it cannot be read."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (entry / "size").read_text().strip().upper()
            sizes.append(int(text.rstrip("KMG")) * {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1))
        except (OSError, ValueError):
            continue
    return max(sizes, default=None)


def native_target(num_cores: int | None = None) -> dict[str, Any]:
    """The host CPU as LLVM sees it, with one thread per physical core."""
    from tvm.target import codegen

    return {"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu(), "num-cores": num_cores or physical_cores()}


#: TVM sizes its runtime thread pool from this variable once per process, at first use (else
#: from OMP_NUM_THREADS, else hardware threads / 2 on x86). So each worker process is started
#: with its targets' thread count, and MetaSchedule's builder and runner processes inherit it.
THREADS_ENV = "TVM_NUM_THREADS"


def tvm_threads() -> int:
    """The size of TVM's runtime thread pool in this process, as TVM reports it."""
    import tvm

    return int(tvm.runtime.num_threads())


def thread_env(threads: int) -> dict[str, str]:
    """The environment that makes a new process's TVM run ``threads`` threads (and its MetaSchedule children)."""
    return {THREADS_ENV: str(threads)}


def serves(target: ResolvedTarget, threads: int | None) -> bool:
    """The thread rule: a process whose TVM runs ``threads`` threads can time ``target``'s items only if that is
    the target's own count. A remote target's threads are its device's, so any process serves it."""
    return target.local_threads is None or target.local_threads == threads


#: Where a target's thread count came from, recorded next to ``tvm_threads``.
THREADS_FROM_TARGET = "target num-cores"
THREADS_FROM_HOST = "host physical cores (the target names no num-cores)"
THREADS_FROM_NATIVE = "host physical cores ('native')"


@dataclass(frozen=True)
class ResolvedTarget:
    """A target TVM accepted: ``spec`` is what to build with, ``json`` its identity.

    ``threads`` is the size of TVM's runtime thread pool for this target. TVM
    would otherwise pick hardware threads / 2 on x86 (it assumes SMT), which
    on a VM with one thread per core is half the cores the target names.
    """

    name: str
    spec: dict[str, Any]
    json: str
    kind: str
    threads: int = 1
    threads_source: str = THREADS_FROM_TARGET
    #: The device pool that runs it (``RpcSpec``); None: this host.
    rpc: Any = None
    #: How its library is linked for the device (``ExportSpec``); None: the host's compiler.
    export: Any = None
    #: Where the suite defines it (``targets[2]``), for error messages.
    key_path: str = ""

    @property
    def is_remote(self) -> bool:
        return self.rpc is not None

    @property
    def local_threads(self) -> int | None:
        """Threads TVM needs in this host's worker: None for a remote target, whose threads are the device's."""
        return None if self.rpc is not None else self.threads

    @property
    def identity(self) -> str:
        """What a build or a tuning database belongs to: the resolved target, and the device pool it runs on."""
        if self.rpc is None:
            return self.json
        return json.dumps({"target": json.loads(self.json), "rpc_key": self.rpc.key}, sort_keys=True)

    @property
    def is_gpu(self) -> bool:
        return self.kind in GPU_KINDS

    def tvm(self) -> Any:
        import tvm

        spec = dict(self.spec)
        host = spec.pop("host", None)
        return tvm.target.Target(spec, host=host) if host else tvm.target.Target(spec)


def resolve(value: str | dict[str, Any], name: str | None = None) -> ResolvedTarget:
    """Turn a suite's target value into a ResolvedTarget, validated by TVM itself.

    Raises ValueError with TVM's reason; SuiteError wrapping happens in suite.py.
    """
    from tvm.target import codegen

    spec: dict[str, Any]
    if isinstance(value, str):
        spec = {"kind": "native"} if value.strip() == "native" else parse_target_string(value)
    else:
        spec = dict(value)
    native_cores = spec.get("kind") == "native" and "num-cores" not in spec
    if spec.get("kind") == "native":
        spec = {**native_target(spec.get("num-cores")), **{k: v for k, v in spec.items() if k != "kind"}}
    host = spec.get("host")
    if isinstance(host, str):
        spec["host"] = parse_target_string(host)
    threads, source = _threads(spec)
    if native_cores:
        source = THREADS_FROM_NATIVE
    try:
        tgt = ResolvedTarget("", spec, "", str(spec.get("kind"))).tvm()
    except (ValueError, TypeError, RuntimeError) as err:  # TVM names the bad option or kind
        raise ValueError(str(err).splitlines()[0]) from None
    mcpu = spec.get("mcpu")
    if tgt.kind.name == "llvm" and mcpu and not codegen.llvm_is_valid_cpu(
        mcpu, spec.get("mtriple") or codegen.llvm_get_system_triple()
    ):
        raise ValueError(f"LLVM does not know the CPU {mcpu!r} (try 'native' or e.g. 'core-avx2')")
    resolved = json.loads(str(tgt))
    canonical = json.dumps(resolved, sort_keys=True)
    return ResolvedTarget(name or default_name(spec), spec, canonical, tgt.kind.name, threads, source)


def _threads(spec: dict[str, Any]) -> tuple[int, str]:
    """The runtime thread count for a target; an LLVM target without one gets the host's cores, in its spec.

    Writing it into the spec makes it part of the target's identity (tuning
    cache key, records), and MetaSchedule's parallel rules read it too.
    """
    cpu = spec if spec.get("kind") == "llvm" else spec.get("host") if isinstance(spec.get("host"), dict) else None
    if cpu is not None and "num-cores" in cpu:
        cores = cpu["num-cores"]
        if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
            raise ValueError(f"num-cores must be a positive whole number (got {cores!r})")
        return cores, THREADS_FROM_TARGET
    cores = physical_cores()
    if spec.get("kind") == "llvm":
        spec["num-cores"] = cores
    return cores, THREADS_FROM_HOST


def default_name(spec: dict[str, Any]) -> str:
    """A short id for a target: ``llvm``, ``llvm_core-avx2``, ``cuda_sm_90``."""
    parts = [str(spec.get("kind", "target"))]
    for key in ("mcpu", "arch", "model"):
        if spec.get(key):
            parts.append(str(spec[key]))
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", "_".join(parts))

"""Targets as users type them, resolved into TVM 0.27's JSON form.

TVM 0.27 rejects ``"llvm -mcpu=core-avx2"``; users still think in that form,
so we accept it (and ``native``) and convert, keeping the exact JSON that TVM
resolved as the identity of the target in caches and records.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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


def native_target(num_cores: int | None = None) -> dict[str, Any]:
    """The host CPU as LLVM sees it, with one thread per physical core."""
    import psutil
    from tvm.target import codegen

    cores = num_cores or psutil.cpu_count(logical=False) or 1
    return {"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu(), "num-cores": cores}


@dataclass(frozen=True)
class ResolvedTarget:
    """A target TVM accepted: ``spec`` is what to build with, ``json`` its identity."""

    name: str
    spec: dict[str, Any]
    json: str
    kind: str

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

    if isinstance(value, str):
        spec = native_target() if value.strip() == "native" else parse_target_string(value)
    else:
        spec = dict(value)
    if spec.get("kind") == "native":
        spec = {**native_target(spec.get("num-cores")), **{k: v for k, v in spec.items() if k != "kind"}}
    host = spec.get("host")
    if isinstance(host, str):
        spec["host"] = parse_target_string(host)
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
    return ResolvedTarget(name or default_name(spec), spec, canonical, tgt.kind.name)


def default_name(spec: dict[str, Any]) -> str:
    """A short id for a target: ``llvm``, ``llvm_core-avx2``, ``cuda_sm_90``."""
    parts = [str(spec.get("kind", "target"))]
    for key in ("mcpu", "arch", "model"):
        if spec.get(key):
            parts.append(str(spec[key]))
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", "_".join(parts))

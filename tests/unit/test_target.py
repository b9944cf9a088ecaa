"""Target strings users type become TVM 0.27 JSON targets, validated by TVM itself."""

from __future__ import annotations

import json

import pytest

from bench.suite.target import default_name, parse_target_string, resolve


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("llvm", {"kind": "llvm"}),
        ("llvm -mcpu=core-avx2 -num-cores=2", {"kind": "llvm", "mcpu": "core-avx2", "num-cores": 2}),
        ("llvm -mattr=+avx2,+fma", {"kind": "llvm", "mattr": ["+avx2", "+fma"]}),
        ("llvm -fast-math", {"kind": "llvm", "fast-math": True}),
        ("cuda -arch=sm_90", {"kind": "cuda", "arch": "sm_90"}),
    ],
)
def test_string_form_converts(text: str, expected: dict) -> None:
    """The legacy CLI string form maps onto the JSON dict TVM 0.27 wants."""
    assert parse_target_string(text) == expected


@pytest.mark.parametrize("text", ["", "-mcpu=x", "llvm mcpu=x"])
def test_malformed_strings_rejected(text: str) -> None:
    """Strings without a kind or with bare words are refused with a reason."""
    with pytest.raises(ValueError, match=r"target|expected"):
        parse_target_string(text)


@pytest.mark.tvm
def test_string_and_dict_resolve_to_the_same_identity() -> None:
    """Both spellings of one target share one cache identity."""
    a = resolve("llvm -mcpu=core-avx2 -num-cores=2")
    b = resolve({"kind": "llvm", "mcpu": "core-avx2", "num-cores": 2})
    assert a.json == b.json
    assert json.loads(a.json)["mcpu"] == "core-avx2"
    assert a.name == "llvm_core-avx2"


@pytest.mark.tvm
def test_native_is_the_host_cpu() -> None:
    """'native' resolves to an LLVM target with the host CPU and a core count."""
    from tvm.target import codegen

    t = resolve("native")
    assert t.spec["mcpu"] == codegen.llvm_get_system_cpu()
    assert t.spec["num-cores"] >= 1 and t.kind == "llvm" and not t.is_gpu


@pytest.mark.tvm
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("llvm -bogus=1", "Unknown config option 'bogus'"),
        ("tpu9", "Target kind \"tpu9\" is not defined"),
        ("llvm -mcpu=notacpu", "LLVM does not know the CPU 'notacpu'"),
    ],
)
def test_unknown_targets_get_tvms_reason(value: str, message: str) -> None:
    """Unknown kinds, options and CPUs are rejected before anything runs."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        resolve(value)


@pytest.mark.tvm
def test_gpu_target_resolves_without_a_gpu() -> None:
    """A CUDA target with an LLVM host is valid here; running it is what gets skipped."""
    t = resolve({"kind": "cuda", "arch": "sm_90", "host": "llvm"})
    assert t.is_gpu and t.name == "cuda_sm_90"


def test_default_name_is_a_safe_id() -> None:
    """Ids contain no characters that break pytest -k expressions."""
    assert default_name({"kind": "llvm", "mcpu": "a b/c"}) == "llvm_a_b_c"


@pytest.mark.tvm
def test_thread_count_comes_from_the_target_or_the_host() -> None:
    """num-cores sets TVM's threads; without it an LLVM target gets the host's physical cores, stated and
    written into its identity; a bad num-cores is refused."""
    import psutil

    from bench.suite.target import THREADS_FROM_HOST, THREADS_FROM_NATIVE, THREADS_FROM_TARGET

    assert (resolve("llvm -num-cores=3").threads, resolve("llvm -num-cores=3").threads_source) == (
        3, THREADS_FROM_TARGET)
    bare = resolve("llvm")
    cores = psutil.cpu_count(logical=False) or 1
    assert (bare.threads, bare.threads_source) == (cores, THREADS_FROM_HOST)
    assert json.loads(bare.json)["num-cores"] == cores
    assert resolve("native").threads_source == THREADS_FROM_NATIVE
    assert resolve({"kind": "native", "num-cores": 1}).threads == 1
    gpu = resolve({"kind": "cuda", "arch": "sm_90", "host": {"kind": "llvm", "num-cores": 2}})
    assert gpu.threads == 2
    with pytest.raises(ValueError, match="num-cores must be a positive whole number"):
        resolve({"kind": "llvm", "num-cores": 0})

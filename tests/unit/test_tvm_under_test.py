"""The TVM under test: suite key and option, ids, workers' environments, installs, identity and the range."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bench.errors import SuiteError, TvmError
from bench.options import tvm_spec
from bench.run import tvm_env
from bench.stages import tvm_api
from bench.suite.case import INSTALLED, TvmUnderTest, expand
from bench.suite.schema import load_suite

SUITE = """
models:
  - {name: tiny, source: {generator: tiny_cnn}}
targets: [{name: cpu, target: {kind: llvm, num-cores: 2}}]
budgets: [0, 16]
"""


def suite(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE + extra)
    return path


def fake_build(folder: Path, version: str, *, library: bool = True) -> Path:
    """A folder laid out like a TVM source checkout: python/tvm and build/lib/libtvm*.so."""
    (folder / "python" / "tvm").mkdir(parents=True)
    (folder / "python" / "tvm" / "__init__.py").write_text(f"__version__ = {version!r}\n")
    if library:
        (folder / "build" / "lib").mkdir(parents=True)
        (folder / "build" / "lib" / "libtvm_runtime.so").write_bytes(b"\x7fELF")
    return folder


@pytest.mark.tvm  # expanding a suite resolves its targets with TVM
def test_one_tvm_keeps_the_ids_several_name_it_and_onnx_runtime_runs_once(tmp_path: Path) -> None:
    path = suite(tmp_path)
    plain = [c.id for c in expand(load_suite(path))]
    assert plain == ["tiny-cpu-untuned", "tiny-cpu-ort", "tiny-cpu-b16-tuned"]
    one = expand(load_suite(path), (tvm_spec("0.26.0"),))
    assert [c.id for c in one] == plain and {c.tvm.version for c in one} == {"0.26.0"}
    build = fake_build(tmp_path / "tvm-main", "0.28.dev0")
    several = expand(load_suite(path), (tvm_spec("0.26.0"), tvm_spec(f"main={build}")))
    assert [c.id for c in several] == ["tiny-cpu-tvm0.26.0-untuned", "tiny-cpu-ort", "tiny-cpu-tvm0.26.0-b16-tuned",
                                       "tiny-cpu-tvmmain-untuned", "tiny-cpu-tvmmain-b16-tuned"]
    assert several[-1].tvm == TvmUnderTest("main", "path", path=build.resolve(), key="--bench-tvm")
    # the untuned and tuned items of one TVM relate; the ort item serves both TVMs
    assert several[0].untuned_key != several[3].untuned_key and several[1].ort_key == several[3].ort_key


@pytest.mark.tvm
def test_the_suite_key_names_releases_and_builds_relative_to_the_suite(tmp_path: Path) -> None:
    fake_build(tmp_path / "builds" / "mine", "0.27.0")
    path = suite(tmp_path, "tvm:\n  - {version: 0.25.0.post1}\n  - {name: mine, path: builds/mine}\n")
    cases = expand(load_suite(path))
    assert [c.tvm for c in cases if c.variant == "untuned"] == [
        TvmUnderTest("0.25.0.post1", "version", version="0.25.0.post1", key="tvm[0]"),
        TvmUnderTest("mine", "path", path=(tmp_path / "builds" / "mine").resolve(), key="tvm[1]")]
    # --bench-tvm overrides the suite's list
    assert {c.tvm for c in expand(load_suite(path), (tvm_spec("0.26.0"),))} == {
        TvmUnderTest("0.26.0", "version", version="0.26.0", key="--bench-tvm")}
    assert {c.tvm for c in expand(load_suite(suite(tmp_path)))} == {INSTALLED}


@pytest.mark.parametrize(("extra", "key", "words"), [
    ("tvm: [{version: 0.26}]", "tvm[0].version", "as on the package index: 0.26.0, 0.25.0.post1 (got 0.26)"),
    ("tvm: [{version: 0.26.0, path: x}]", "tvm[0]", "one of them"),
    ("tvm: [{name: a}]", "tvm[0]", "give a TVM 'version'"),
    ("tvm: [{path: nowhere}]", "tvm[0].path", "TVM build folder not found: nowhere"),
    ("tvm: [{version: 0.26.0}, {version: 0.26.0}]", "tvm[1]", "duplicate name '0.26.0'"),
    ("tvm: [{version: 0.26.0, colour: red}]", "tvm[0].colour", "unknown key"),
])
def test_bad_tvm_entries_fail_with_file_and_key(tmp_path: Path, extra: str, key: str, words: str) -> None:
    with pytest.raises(SuiteError) as err:
        load_suite(suite(tmp_path, extra + "\n"))
    assert err.value.key == key and words in err.value.message and str(err.value.where).endswith("s.yaml")


def test_the_option_reads_versions_builds_and_names(tmp_path: Path) -> None:
    assert tvm_spec("0.26.0").version == "0.26.0" and tvm_spec("0.26.0").id == "0.26.0"
    assert tvm_spec("old=0.25.0.post1").id == "old"
    assert tvm_spec(f"main={tmp_path}").path == str(tmp_path.resolve())
    for bad, words in (("0.26", "no such folder"), ("a b=0.26.0", "letters, digits"), (str(tmp_path / "x"),
                                                                                          "no such folder")):
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            tvm_spec(bad)


def test_the_supported_range_and_the_ffi_each_line_needs() -> None:
    assert [tvm_api.unsupported(v) for v in ("0.25.0.post1", "0.26.0", "0.27.0.post1", "0.27.dev3+g12")] == [None] * 4
    message = tvm_api.unsupported("0.24.0")
    assert message is not None and "TVM 0.24.0 is outside the range this harness supports (0.25-0.27)" in message
    assert "\n" not in message
    assert (tvm_api.ffi_for("0.25.0.post1"), tvm_api.ffi_for("0.26.0")) == ("0.1.12", "0.1.14.post1")


def test_a_build_is_reached_through_the_workers_python_path(tmp_path: Path) -> None:
    build = fake_build(tmp_path / "tvm", "0.27.0")
    env = tvm_env.environment(TvmUnderTest("main", "path", path=build), tmp_path / "cache", print)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(build / "python")
    assert env["TVM_LIBRARY_PATH"] == str(build / "build" / "lib")
    assert json.loads(env[tvm_api.ENV])["source"] == "path"
    assert tvm_env.environment(INSTALLED, tmp_path / "cache", print) == {
        tvm_api.ENV: json.dumps({"name": "installed", "source": "installed", "version": None, "path": None})}
    with pytest.raises(TvmError, match="holds no TVM"):
        tvm_env.environment(TvmUnderTest("x", "path", path=tmp_path / "cache"), tmp_path, print)
    unbuilt = fake_build(tmp_path / "unbuilt", "0.27.0", library=False)
    with pytest.raises(TvmError, match="build TVM first"):
        tvm_env.environment(TvmUnderTest("u", "path", path=unbuilt, key="tvm[0]"), tmp_path, print, "s.yaml")


def test_an_old_release_fails_in_one_line_before_anything_is_installed(tmp_path: Path) -> None:
    with pytest.raises(TvmError) as err:
        tvm_env.environment(TvmUnderTest("0.20.0", "version", version="0.20.0", key="tvm[0]"), tmp_path, print,
                            "s.yaml")
    assert str(err.value).startswith("s.yaml: tvm[0]: TVM 0.20.0 is outside the range")
    assert not (tmp_path / "tvm").exists()


def wheel(folder: Path, dist: str, version: str, package: str, init: str) -> None:
    """A minimal wheel holding one package, so pip can install it from a folder with no index."""
    name = f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    info = f"{dist.replace('-', '_')}-{version}.dist-info"
    with zipfile.ZipFile(folder / name, "w") as z:
        z.writestr(f"{package}/__init__.py", init)
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")


def test_a_release_is_installed_once_with_its_ffi_and_failures_say_why(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel(wheels, "apache-tvm", "0.26.0", "tvm", "__version__ = '0.26.0'\n")
    wheel(wheels, "apache-tvm-ffi", "0.1.14.post1", "tvm_ffi", "__version__ = '0.1.14.post1'\n")
    monkeypatch.setenv(tvm_env.PIP_ARGS_ENV, f"--no-index --find-links {wheels}")
    said: list[str] = []
    tvm = TvmUnderTest("0.26.0", "version", version="0.26.0")
    env = tvm_env.environment(tvm, tmp_path / "cache", said.append)
    folder = tmp_path / "cache" / "tvm" / "apache-tvm-0.26.0"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(folder)
    assert (folder / "tvm" / "__init__.py").is_file() and (folder / "tvm_ffi" / "__init__.py").is_file()
    assert len(said) == 1 and "installing TVM 0.26.0 with apache-tvm-ffi 0.1.14.post1" in said[0]
    tvm_env.environment(tvm, tmp_path / "cache", said.append)
    assert len(said) == 1  # reused, not installed again
    out = subprocess.run([sys.executable, "-c", "import tvm, tvm_ffi; print(tvm.__version__, tvm_ffi.__file__)"],
                         env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "0.26.0" and out[1].startswith(str(folder))
    # a release the index does not have: one line naming pip's reason, and no half-made overlay left
    with pytest.raises(TvmError) as err:
        tvm_env.environment(TvmUnderTest("0.25.0", "version", version="0.25.0", key="tvm[1]"), tmp_path / "cache",
                            said.append, "s.yaml")
    assert str(err.value).startswith("s.yaml: tvm[1]: pip could not install apache-tvm==0.25.0 (with "
                                     "apache-tvm-ffi==0.1.12): ")
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in (tmp_path / "cache" / "tvm").iterdir() if not p.name.endswith(".lock")) == [
        "apache-tvm-0.26.0"]


def worker_problem(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", "from bench.run.worker import _tvm_problem; print(_tvm_problem())"],
                          env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout.strip()


def test_a_worker_refuses_a_build_out_of_range_or_broken_in_one_line(tmp_path: Path) -> None:
    old = fake_build(tmp_path / "old", "0.24.0")
    env = tvm_env.environment(TvmUnderTest("old", "path", path=old), tmp_path, print)
    assert worker_problem(env).startswith("TVM 0.24.0 is outside the range this harness supports (0.25-0.27)")
    broken = fake_build(tmp_path / "broken", "0.27.0")
    (broken / "python" / "tvm" / "__init__.py").write_text("raise OSError('libtvm_runtime.so: undefined symbol x')\n")
    env = tvm_env.environment(TvmUnderTest("broken", "path", path=broken), tmp_path, print)
    assert worker_problem(env) == (f"TVM broken at {broken} does not import: OSError: libtvm_runtime.so: "
                                   "undefined symbol x")

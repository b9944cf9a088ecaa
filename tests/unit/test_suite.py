"""Suite validation: every bad input gets one line naming the file and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import SuiteError
from bench.suite.schema import load_suite

GOOD = """
models:
  - name: tiny
    source: {generator: tiny_cnn}
targets: [llvm]
budgets: [0, {name: small, trials: 8}]
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages show paths relative to the working directory, as users run them."""
    monkeypatch.chdir(tmp_path)


def with_input(spec: str) -> str:
    source = "    source: {generator: tiny_cnn}"
    return GOOD.replace(source, f"{source}\n    inputs: [{spec}]")


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(SuiteError) as info:
        load_suite(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_good_suite_loads_with_defaults(tmp_path: Path) -> None:
    """A minimal suite validates and gets the documented defaults."""
    suite = load_suite(write(tmp_path, GOOD))
    assert suite.name == "s"
    assert suite.spec.timing.rounds == 10 and suite.spec.timing.iterations == 10
    assert suite.spec.check.top_k == 5
    assert [b.trials for b in suite.spec.budgets] == [0, 8]
    assert [b.id for b in suite.spec.budgets] == ["b0", "small"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models: [\n  - name: a\n", "s.yaml: line 2, column 3: invalid YAML: expected the node content"),
        ("- just\n- a list\n", "s.yaml: a suite is a mapping"),
        (GOOD + "colour: blue\n", "s.yaml: colour: unknown key"),
        (GOOD.replace("source:", "sauce: {}\n    source:"), "s.yaml: models[0].sauce: unknown key"),
        (GOOD.replace("{generator: tiny_cnn}", "{generator: vgg99}"),
         "s.yaml: models[0].source: unknown generator 'vgg99'"),
        (GOOD.replace("{generator: tiny_cnn}", "{path: missing.onnx}"),
         "s.yaml: models[0].source.path: model file not found: missing.onnx"),
        (GOOD.replace("{generator: tiny_cnn}", "{url: 'https://example.invalid/m.onnx', sha256: abc}"),
         "s.yaml: models[0].source: sha256: expected 64 lowercase hex characters (got 'abc')"),
        (GOOD.replace("{generator: tiny_cnn}", "{url: 'https://example.invalid/m.onnx'}"),
         "s.yaml: models[0].source: a url source needs 'sha256'"),
        (GOOD.replace("{generator: tiny_cnn}", "{url: 'ftp://x/m.onnx', sha256: '" + "0" * 64 + "'}"),
         "s.yaml: models[0].source: url must be http(s)"),
        (GOOD.replace("{generator: tiny_cnn}", "{generator: tiny_cnn, path: x.onnx}"),
         "s.yaml: models[0].source: give exactly one of"),
        (GOOD.replace("{generator: tiny_cnn}", "{generator: tiny_cnn, options: {depth: 3}}"),
         "s.yaml: models[0].source.options.depth: generator 'tiny_cnn' has no option 'depth'"),
        (GOOD + "timing: {rounds: many}\n", "s.yaml: timing.rounds: Input should be a valid integer"),
        (GOOD + "timing: {rounds: 2, min_rounds: 5}\n",
         "s.yaml: timing: min_rounds (5) exceeds rounds (2)"),
        (GOOD + "check: {mode: fuzzy}\n", "s.yaml: check.mode: Input should be 'topk' or 'allclose'"),
        (GOOD + "tuning: {cache_flush: maybe}\n", "s.yaml: tuning.cache_flush: Input should be 'auto', True or False"),
        (GOOD.replace("budgets: [0,", "budgets: [-1,"),
         "s.yaml: budgets[0].trials: Input should be greater than or equal to 0 (got -1)"),
        (GOOD.replace("name: tiny", "name: 'bad name'"), "s.yaml: models[0].name: String should match pattern"),
        (GOOD.replace("    source: {generator: tiny_cnn}",
                      "    source: {generator: tiny_cnn}\n    inputs: [{name: data, shape: [1, 0, 8]}]"),
         "s.yaml: models[0].inputs[0].shape[1]: Input should be greater than 0"),
        (GOOD.replace("    source: {generator: tiny_cnn}",
                      "    source: {generator: tiny_cnn}\n    check: {top_k: 0}"),
         "s.yaml: models[0].check.top_k: Input should be greater than or equal to 1"),
        ("targets: [llvm]\n", "s.yaml: models: Field required"),
        (with_input("{name: sr, shape: [], dtype: int64, data: {value: 1.5}}"),
         "s.yaml: models[0].inputs[0].data: value 1.5 does not fit int64"),
        (with_input("{name: sr, shape: [], dtype: uint8, data: {value: 300}}"),
         "s.yaml: models[0].inputs[0].data: value 300 does not fit uint8 (whole numbers 0..255)"),
        (with_input("{name: sr, shape: [], dtype: int64, data: {value: sixteen}}"),
         "s.yaml: models[0].inputs[0].data.value: expected a number or true/false (got 'sixteen')"),
        (with_input("{name: sr, shape: [], dtype: bool, data: {value: 1}}"),
         "s.yaml: models[0].inputs[0].data: value 1 is not a bool: give true or false"),
        (with_input("{name: sr, shape: [], dtype: int64, data: {random: {low: 10, high: 0}}}"),
         "s.yaml: models[0].inputs[0].data: random: low (10) must be below high (0), which is excluded"),
        (with_input("{name: sr, shape: [], dtype: int8, data: {random: {low: 0, high: 300}}}"),
         "s.yaml: models[0].inputs[0].data: random: [0, 300) does not fit int8 (-128..127)"),
        (with_input("{name: sr, shape: [], dtype: int64, data: {random: {low: 0, hi: 3}}}"),
         "s.yaml: models[0].inputs[0].data.random.hi: unknown key"),
        (with_input("{name: sr, shape: [], dtype: int64, data: {rand: 3}}"),
         "s.yaml: models[0].inputs[0].data: expected 'random', {value: V}, {random: {low: L, high: H}}, {npy: FILE}"),
        (with_input("{name: sr, shape: [2], dtype: float32, data: {npy: missing.npy}}"),
         "s.yaml: models[0].inputs[0].data.npy: npy file not found"),
        (GOOD.replace("    source: {generator: tiny_cnn}", "    source: {generator: tiny_cnn}\n    output: []"),
         "s.yaml: models[0].output: an empty list checks nothing"),
        (GOOD.replace("    source: {generator: tiny_cnn}", "    source: {generator: tiny_cnn}\n    output: [0, 0]"),
         "s.yaml: models[0].output[1]: output 0 is listed twice"),
    ],
)
def test_bad_input_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    """Each malformed suite is rejected with a one-line message starting with file and key."""
    assert error_of(tmp_path, text).startswith(expected)


def test_duplicate_model_names_rejected(tmp_path: Path) -> None:
    """Two models with one name would give colliding ids and caches."""
    text = GOOD.replace("targets:", "  - name: tiny\n    source: {generator: resnet18}\ntargets:")
    assert error_of(tmp_path, text) == "s.yaml: models[1]: duplicate name 'tiny'; names must be unique"


def test_impossible_image_shape_rejected(tmp_path: Path) -> None:
    """ImageNet preprocessing yields NCHW with 3 channels; another shape cannot be fed."""
    (tmp_path / "cat.png").write_bytes(b"not really a png")
    text = GOOD.replace(
        "    source: {generator: tiny_cnn}",
        "    source: {generator: tiny_cnn}\n    inputs: [{name: data, shape: [1, 64, 64], data: {image: cat.png}}]",
    )
    assert error_of(tmp_path, text).startswith("s.yaml: models[0].inputs[0].shape: imagenet preprocessing")


def test_missing_image_rejected(tmp_path: Path) -> None:
    """An image input must exist relative to the suite file."""
    text = GOOD.replace(
        "    source: {generator: tiny_cnn}",
        "    source: {generator: tiny_cnn}\n    inputs: [{name: data, shape: [1, 3, 8, 8], data: {image: no.png}}]",
    )
    assert error_of(tmp_path, text) == "s.yaml: models[0].inputs[0].data.image: image file not found: no.png"


def test_paths_are_relative_to_the_suite_file(tmp_path: Path) -> None:
    """A model path resolves next to the suite, not the working directory."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.onnx").write_bytes(b"x")
    suite = load_suite(write(tmp_path, GOOD.replace("{generator: tiny_cnn}", "{path: sub/m.onnx}")))
    assert suite.resolve_file("sub/m.onnx") == (tmp_path / "sub" / "m.onnx").resolve()


def test_model_level_overrides_merge_with_suite_settings(tmp_path: Path) -> None:
    """A model's check/timing override only the keys it sets."""
    override = "\n    check: {mode: allclose}\n    timing: {rounds: 3, min_rounds: 2}"
    text = GOOD.replace("    source: {generator: tiny_cnn}", "    source: {generator: tiny_cnn}" + override)
    suite = load_suite(write(tmp_path, text + "check: {top_k: 3}\n"))
    assert suite.model_check(0).mode == "allclose" and suite.model_check(0).top_k == 3
    assert suite.model_timing(0).rounds == 3 and suite.model_timing(0).iterations == 10


def test_shipped_suites_validate() -> None:
    """The suites in suites/ are valid, and they are the ones the guide describes."""
    paths = sorted(Path(__file__).resolve().parents[2].joinpath("suites").glob("*.yaml"))
    assert [p.name for p in paths] == ["audio.yaml", "nightly.yaml", "smoke.yaml", "zoo.yaml"]
    suites = {p.stem: load_suite(p) for p in paths}
    assert suites["smoke"].spec.default
    assert not any(suites[name].spec.default for name in ("nightly", "audio", "zoo"))


def test_npy_input_must_match_shape_and_dtype(tmp_path: Path) -> None:
    """A .npy file is checked against the declared input when the suite loads, from its header."""
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((2, 3), dtype=np.float64))
    (tmp_path / "t.npy").write_text("not an array")
    base = GOOD.replace("    source: {generator: tiny_cnn}",
                        "    source: {generator: tiny_cnn}\n    inputs: [{name: x, shape: [2, 3], data: {npy: FILE}}]")
    assert error_of(tmp_path, base.replace("FILE", "x.npy")) == (
        "s.yaml: models[0].inputs[0].data.npy: x.npy holds float64 [2, 3]; input 'x' is float32 [2, 3]")
    assert error_of(tmp_path, base.replace("FILE", "t.npy")) == (
        "s.yaml: models[0].inputs[0].data.npy: t.npy is not a numpy .npy file (write it with numpy.save)")
    load_suite(write(tmp_path, base.replace("FILE", "x.npy").replace("shape: [2, 3]", "shape: [2, 3], dtype: float64")))


def test_python_tags_are_refused_and_never_run(tmp_path: Path) -> None:
    """A `!!python/...` tag is a one-line error with its position; the command in it never runs."""
    marker = tmp_path / "pwned"
    text = GOOD + f"description: !!python/object/apply:os.system ['touch {marker}']\n"
    message = error_of(tmp_path, text)
    assert message.startswith("s.yaml: line 7, column 14: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'"
                              " is not allowed")
    assert not marker.exists()


def test_oversized_suite_refused_before_parsing(tmp_path: Path) -> None:
    """A suite over 1 MiB is refused by size, without being parsed."""
    message = error_of(tmp_path, GOOD + "description: '" + "x" * (1 << 20) + "'\n")
    assert message.startswith("s.yaml: suite file is 1,048,") and "the limit is 1,048,576" in message


def test_deep_nesting_refused(tmp_path: Path) -> None:
    """Deeply nested documents are refused (recursion in the parser or the caps), in one line."""
    assert "nested deeper than 32 levels" in error_of(tmp_path, GOOD + "description: " + "[" * 40 + "]" * 40 + "\n")
    assert "nested deeper than 32 levels" in error_of(tmp_path, "x: " + "[" * 5000 + "]" * 5000 + "\n")


def test_alias_bomb_refused(tmp_path: Path) -> None:
    """A billion-laughs document is refused from the node graph, before anything expands it."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    message = error_of(tmp_path, GOOD + "\n".join(lines) + "\n")
    assert "expands to more than 100,000 values (YAML aliases nested in aliases?)" in message


@pytest.mark.parametrize(
    ("path", "make"),
    [("../outside.onnx", "file"), ("/etc/hostname", None), ("models/link.onnx", "symlink")],
)
def test_sandbox_keeps_paths_inside_the_suite_folder(tmp_path: Path, path: str, make: str | None) -> None:
    """With sandbox: true, `..`, absolute paths and symlinks pointing out are refused, naming the key."""
    suite_dir = tmp_path / "suites"
    (suite_dir / "models").mkdir(parents=True)
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(b"x")
    if make == "symlink":
        (suite_dir / "models" / "link.onnx").symlink_to(outside)
    text = GOOD.replace("{generator: tiny_cnn}", f"{{path: '{path}'}}")
    with pytest.raises(SuiteError) as info:
        load_suite(write(suite_dir, "sandbox: true\n" + text))
    assert str(info.value).startswith("suites/s.yaml: models[0].source.path: path ")
    assert "outside the suite's folder" in str(info.value)
    if make is not None:  # without the sandbox the same suite is fine
        assert load_suite(write(suite_dir, text)).spec.models[0].source.path == path


def test_limits_validate_and_merge_per_model(tmp_path: Path) -> None:
    """limits: suite defaults, per-model overrides, unknown keys rejected with their path."""
    text = GOOD.replace("    source: {generator: tiny_cnn}",
                        "    source: {generator: tiny_cnn}\n    limits: {measure_s: 5}") + "limits: {tune_s: 60}\n"
    suite = load_suite(write(tmp_path, text))
    limits = suite.model_limits(0)
    assert (limits.build_s, limits.tune_s, limits.measure_s, limits.memory_mb) == (1800, 60, 5, None)
    bad = text.replace("measure_s: 5", "measure_seconds: 5")
    assert error_of(tmp_path, bad).startswith("s.yaml: models[0].limits.measure_seconds: unknown key")


RPC = """
models:
  - name: tiny
    source: {{generator: tiny_cnn}}
targets:
  - name: board
    target: {target}
    rpc: {rpc}
{export}"""


@pytest.mark.tvm
@pytest.mark.parametrize(
    ("target", "rpc", "export", "expected"),
    [
        ("{kind: llvm, num-cores: 4}", "{key: pi4, trackr: 'h:1'}", "",
         "s.yaml: targets[0].rpc.trackr: unknown key"),
        ("{kind: llvm, num-cores: 4}", "{key: pi4, tracker: 'nohost'}", "",
         "s.yaml: targets[0].rpc.tracker: expected HOST:PORT such as 127.0.0.1:9190 (got 'nohost')"),
        ("{kind: llvm, num-cores: 4}", "{key: pi4, queue_timeout: 0}", "", "s.yaml: targets[0].rpc.queue_timeout:"),
        ("{kind: llvm}", "{key: pi4}", "", "s.yaml: targets[0].target: an rpc target must name the device's core "
                                           "count (num-cores)"),
        ("native", "{key: pi4}", "", "s.yaml: targets[0].target: 'native' is this host's CPU"),
        ("{kind: llvm, mtriple: aarch64-linux-gnu, num-cores: 4}", "{key: pi4}", "",
         "s.yaml: targets[0].export.cc: the target's mtriple 'aarch64-linux-gnu' is not this host's"),
        ("{kind: llvm, num-cores: 4}", "{key: pi4}", "    export: {cc: no-such-g++}\n",
         "s.yaml: targets[0].export.cc: compiler 'no-such-g++' not found on PATH"),
    ],
)
def test_rpc_targets_validate(tmp_path: Path, target: str, rpc: str, export: str, expected: str) -> None:
    """A device pool target is checked before anything runs: address, timeouts, cores, cross compiler."""
    from bench.suite.case import expand

    with pytest.raises(SuiteError) as info:
        expand(load_suite(write(tmp_path, RPC.format(target=target, rpc=rpc, export=export))))
    assert str(info.value).startswith(expected)


@pytest.mark.tvm
def test_rpc_target_identity_includes_the_device_key(tmp_path: Path) -> None:
    """Two pools of the same target are different builds and tuning databases; 'export' needs rpc."""
    from bench.suite.case import expand

    text = RPC.format(target="{kind: llvm, num-cores: 2}", rpc="{key: a}", export="") + \
        "  - {name: other, target: {kind: llvm, num-cores: 2}, rpc: {key: b}}\n"
    cases = [c for c in expand(load_suite(write(tmp_path, text))) if c.variant == "untuned"]
    assert cases[0].target.json == cases[1].target.json
    assert cases[0].untuned_key != cases[1].untuned_key and cases[0].target.is_remote
    assert "export' applies to rpc targets" in error_of(
        tmp_path, GOOD.replace("targets: [llvm]", "targets: [{target: llvm, export: {cc: gcc}}]"))

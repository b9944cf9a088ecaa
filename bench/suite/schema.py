"""Suite YAML -> validated, frozen specs. Nothing downstream sees raw dicts.

Validation happens once, here, and every failure is one line naming the file
and the key path: ``suites/x.yaml: models[2].source.sha256: expected 64 hex
characters (got 'abc')``. pydantic does the type checking (``extra=forbid``
catches misspelt keys); this module adds the checks that need the file system
or TVM (files exist, targets resolve, shapes are possible).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictFloat,
    StrictInt,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bench.errors import SuiteError
from bench.generators import GENERATORS

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Name = Annotated[str, Field(pattern=_NAME, max_length=64)]


class Source(_Spec):
    """Exactly one of: a built-in generator, a file next to the suite, a pinned URL."""

    #: A built-in generator (bench/generators.py): ``tiny_cnn``, ``resnet18``, ``resnet50``, ``mobilenet_v2``, ...
    generator: str | None = None
    #: Seeds a generator's weights: the same bytes every time.
    seed: int = 0
    #: A generator's own integer options (e.g. ``classes``).
    options: dict[str, int] = Field(default_factory=dict)
    #: An ONNX file, relative to the suite file.
    path: str | None = None
    #: An ONNX file downloaded once, verified against ``sha256`` and cached.
    url: str | None = None
    #: Required with ``url``: its 64 hex digits.
    sha256: str | None = None
    #: Downloads larger than this are refused.
    max_bytes: int = Field(default=2 * 1024**3, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        given = [k for k in ("generator", "path", "url") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of 'generator', 'path' or 'url' (got {given or 'none'})")
        if self.generator is not None and self.generator not in GENERATORS:
            raise ValueError(f"unknown generator {self.generator!r}; known: {', '.join(sorted(GENERATORS))}")
        if self.url is not None:
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"url must be http(s) (got {self.url!r})")
            if self.sha256 is None:
                raise ValueError("a url source needs 'sha256' so the download can be verified")
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError(f"sha256: expected 64 lowercase hex characters (got {self.sha256!r})")
        if self.options and self.generator is None:
            raise ValueError("'options' only applies to a generator source")
        return self

    @property
    def kind(self) -> str:
        return "generator" if self.generator else "path" if self.path else "url"


class ImageInput(_Spec):
    #: An image file, relative to the suite.
    image: str
    #: ``imagenet``: resize 256, crop 224, normalise, NCHW; ``none``: as is.
    preprocess: Literal["imagenet", "none"] = "imagenet"


class ValueInput(_Spec):
    """Every element equals ``value``: a sample rate, a flag, a zeroed recurrent state."""

    #: Every element this value (a sample rate, a zero state).
    value: Any

    @field_validator("value")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if not isinstance(value, (bool, int, float)):
            raise ValueError(f"expected a number or true/false (got {value!r})")
        return value


class Range(_Spec):
    #: Integers are drawn from [low, high); floats uniformly from [low, high).
    low: StrictInt | StrictFloat
    #: Exclusive upper end.
    high: StrictInt | StrictFloat


class RandomInput(_Spec):
    """Seeded values in a range, e.g. token ids below the vocabulary size."""

    #: Seeded values in [low, high): token ids, audio in [-1, 1].
    random: Range


class NpyInput(_Spec):
    """An array saved with ``numpy.save``; its shape and dtype must be the input's."""

    #: An array saved with numpy.save, relative to the suite (shape and dtype checked).
    npy: str


def _data_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "data:default"
    if isinstance(value, dict):
        kinds = [k for k in ("image", "value", "random", "npy") if k in value]
        return f"data:{kinds[0]}" if len(kinds) == 1 else None
    return None


InputData = Annotated[
    Annotated[Literal["random"], Tag("data:default")] | Annotated[ImageInput, Tag("data:image")]
    | Annotated[ValueInput, Tag("data:value")] | Annotated[RandomInput, Tag("data:random")]
    | Annotated[NpyInput, Tag("data:npy")],
    Discriminator(_data_kind, custom_error_type="input_data",
                  custom_error_message="expected 'random', {value: V}, {random: {low: L, high: H}}, {npy: FILE} "
                                       "or {image: FILE}"),
]


def dtype_bounds(dtype: str) -> tuple[int, int] | None:
    """The representable integer range of an integer dtype, else None."""
    import numpy as np

    if dtype == "bool" or not np.issubdtype(np.dtype(dtype), np.integer):
        return None
    info = np.iinfo(np.dtype(dtype))
    return int(info.min), int(info.max)


class InputSpec(_Spec):
    """One model input: its shape (``[]`` for a scalar), dtype, and where its values come from.

    ``data`` defaults to ``random``: seeded normal floats, integers 0-9,
    random booleans. A stateful model whose state is an input (a streaming
    audio model's ``state``) is timed with the state as given here, on
    every call.
    """

    #: The ONNX graph input's name.
    name: str
    #: Required for symbolic dims; converter exports are frozen to it; ``[]``: a scalar.
    shape: list[Annotated[int, Field(gt=0)]]
    #: The input's element type.
    dtype: Literal[_DTYPES] = "float32"  # type: ignore[valid-type]
    #: ``random`` (seeded: normal floats, integers 0-9, random bools), or one of the mappings below.
    data: InputData = "random"
    #: Seeds ``random`` data.
    seed: int = 0

    @field_validator("data")
    @classmethod
    def _data_fits_dtype(cls, data: Any, info: ValidationInfo) -> Any:
        dtype = info.data.get("dtype")
        if dtype is None:
            return data
        bounds = dtype_bounds(dtype)
        if isinstance(data, ValueInput):
            value = data.value
            if dtype == "bool" and not isinstance(value, bool):
                raise ValueError(f"value {value!r} is not a bool: give true or false")
            if bounds is not None and (not isinstance(value, int) or isinstance(value, bool)
                                       or not bounds[0] <= value <= bounds[1]):
                raise ValueError(f"value {value!r} does not fit {dtype} (whole numbers {bounds[0]}..{bounds[1]})")
            if bounds is None and dtype != "bool" and isinstance(value, bool):
                raise ValueError(f"value {value!r} is not a number; the input is {dtype}")
        elif isinstance(data, RandomInput):
            low, high = data.random.low, data.random.high
            if dtype == "bool":
                raise ValueError("a bool input is random true/false already: give 'random' or a value")
            if not low < high:
                raise ValueError(f"random: low ({low}) must be below high ({high}), which is excluded")
            if bounds is not None:
                if not (isinstance(low, int) and isinstance(high, int)):
                    raise ValueError(f"random: {dtype} needs whole numbers (got {low}, {high})")
                if low < bounds[0] or high - 1 > bounds[1]:
                    raise ValueError(f"random: [{low}, {high}) does not fit {dtype} ({bounds[0]}..{bounds[1]})")
        return data


class PairedSpec(_Spec):
    """Timing a build against its case's baseline build in one process (bench.stages.paired says why).

    Blocks of each build's calls, each block at least ``block_time`` seconds,
    alternate in pairs of random order (AB or BA) from ``min_pairs`` on until
    the ratio's interval decides against the case's gate threshold, or
    ``max_pairs`` pairs or ``max_time`` seconds were spent. ``alpha``: the
    interval's two-sided error rate per run, split across the run's cases as
    the gate splits its own. ``enabled: false`` times no pairs.
    """

    #: ``false``: no pairs are timed (the case is gated on its history).
    enabled: bool = True
    #: Seconds one block of a build's calls lasts at least.
    block_time: float = Field(default=0.1, gt=0, le=10)
    #: Pairs timed before the interval may stop them.
    min_pairs: int = Field(default=12, ge=4, le=1000)
    #: Pairs at most.
    max_pairs: int = Field(default=60, ge=4, le=10000)
    #: Seconds of pairs at most (never below 4 pairs).
    max_time: float = Field(default=60.0, gt=0)
    #: Two-sided error rate per run, split across its cases.
    alpha: float = Field(default=0.01, gt=0, lt=0.5)

    @model_validator(mode="after")
    def _pairs(self) -> PairedSpec:
        if self.min_pairs > self.max_pairs:
            raise ValueError(f"min_pairs ({self.min_pairs}) exceeds max_pairs ({self.max_pairs})")
        return self


class TimingSpec(_Spec):
    """pytest-benchmark pedantic settings, stretched for fast models and capped for slow ones.

    ``max_time`` bounds the timed part of one item; when rounds x iterations
    would exceed it, iterations drop first, then rounds, but never below
    ``min_rounds``. ``min_time`` is the other end: a sub-millisecond model
    would be timed for a few milliseconds in all, inside one burst of
    machine noise, so its iterations per round grow until the rounds span at
    least ``min_time`` seconds and their median can outvote a burst. The
    tutorial's timeit used number=10, repeat=10.

    ``slices``: the rounds are timed in this many groups, ``slice_gap``
    seconds apart. On a shared VM a multi-threaded kernel runs ~40% slower
    through periods of 0.2-2.5 s (one vCPU slowed;
    docs/studies/README.md#where-the-run-to-run-noise-comes-from); rounds timed
    back to back can all fall in one, and then the run's minimum moves. Groups seconds apart rarely do.
    Rounds that already last ``slice_gap`` each are spread enough: no gaps.

    ``side_by_side``: turns in which the tuned item times its build and ONNX
    Runtime in turn, each for one slice of its rounds and at least ``min_time``
    per turn (CPU targets with an ``ort`` peer; 0 turns it off). The ``ort`` item is timed minutes before the tuned
    one, and this VM's speed moves 10-40% over such gaps, so the ratio of the
    two items' medians moves with it; the median of the per-turn ratios does
    far less (docs/studies/README.md#tuned-against-onnx-runtime).

    ``paired``: each TVM item also times its build against its case's
    baseline build, when one was accepted (PairedSpec).
    """

    #: Rounds run and discarded first.
    warmup_rounds: int = Field(default=1, ge=0)
    #: Calls per round (the tutorial's timeit ``number``); stretched or cut to fit the times.
    iterations: int = Field(default=10, ge=1)
    #: Rounds (the tutorial's ``repeat``).
    rounds: int = Field(default=10, ge=1)
    #: Rounds kept however slow the build.
    min_rounds: int = Field(default=3, ge=1)
    #: Seconds the rounds span at least: fast builds get more iterations.
    min_time: float = Field(default=1.0, ge=0)
    #: Seconds the timed part of one item lasts at most: slow builds get fewer iterations, then rounds.
    max_time: float = Field(default=60.0, gt=0)
    #: Groups the rounds are timed in, ``slice_gap`` apart.
    slices: int = Field(default=3, ge=1)
    #: Seconds between slices.
    slice_gap: float = Field(default=2.0, ge=0, le=60)
    #: Turns of tuned build and ONNX Runtime timed in turn within the tuned item (0: off).
    side_by_side: int = Field(default=5, ge=0, le=100)
    #: Timing against the case's baseline build (below).
    paired: PairedSpec = Field(default_factory=PairedSpec)

    @model_validator(mode="after")
    def _rounds(self) -> TimingSpec:
        if self.min_rounds > self.rounds:
            raise ValueError(f"min_rounds ({self.min_rounds}) exceeds rounds ({self.rounds})")
        if self.min_time > self.max_time:
            raise ValueError(f"min_time ({self.min_time:g}) exceeds max_time ({self.max_time:g})")
        return self


class CheckSpec(_Spec):
    """How the tuned output is compared with the untuned build and the reference."""

    #: ``topk``: the classes agree; ``allclose``: dense outputs agree within ``rtol``/``atol``.
    mode: Literal["topk", "allclose"] = "topk"
    #: Classes compared.
    top_k: int = Field(default=5, ge=1)
    #: Probabilities within this of the k-th largest may swap places (near-ties).
    tolerance: float = Field(default=1e-4, ge=0)
    #: Compare probabilities (softmax of the outputs), not raw scores.
    softmax: bool = True
    #: ``allclose``: relative tolerance.
    rtol: float = Field(default=1e-4, ge=0)
    #: ``allclose``: absolute tolerance.
    atol: float = Field(default=1e-4, ge=0)
    #: ``onnxruntime``: both variants are also checked against ONNX Runtime; ``none``: not.
    reference: Literal["onnxruntime", "none"] = "onnxruntime"


class GateSpec(_Spec):
    """Regression gate settings; see bench/history/gate.py for how they are used."""

    #: Slowdowns of the gate's statistic smaller than this never fail the gate.
    threshold: float = Field(default=0.05, gt=0, lt=10)
    #: Each run's location that the gate compares: the rounds' ``min`` (robust to bursts of
    #: interference on a shared machine, which only ever slow a round down) or their ``median``.
    statistic: Literal["min", "median"] = "min"
    #: Growth of an exact memory figure (weights, the build's planned memory, constants and kernel workspace, its
    #: library) over the latest baseline run's that fails the gate; exact figures do not move between runs, so
    #: any real growth shows.
    memory_threshold: float = Field(default=0.01, ge=0, lt=10)
    #: Growth of a stage's sampled peak resident memory over the median of the baseline runs' that fails the
    #: gate; sized from the peaks' run-to-run spread (docs/studies/README.md#memory-figures).
    peak_memory_threshold: float = Field(default=0.10, ge=0, lt=10)
    #: If set, a tuned case must be at least this much faster than untuned (e.g. 1.0).
    min_speedup: float | None = Field(default=None, gt=0)
    #: The ONNX Runtime peer is a control, not the code under test: by default its slowdowns are
    #: reported (``reference-slower``) but do not fail the gate; ``fail`` gates it like TVM items.
    ort: Literal["report", "fail"] = "report"


class TuningSpec(_Spec):
    """MetaSchedule search settings; the defaults are about 5x cheaper than TVM's."""

    #: Candidates measured per search iteration.
    trials_per_iter: int = Field(default=16, ge=1)
    #: Candidates in the evolutionary search's population.
    population: int = Field(default=64, ge=2)
    #: Evolution rounds per iteration.
    genetic_iters: int = Field(default=1, ge=0)
    #: Fresh random candidates per iteration at least.
    init_min_unmeasured: int = Field(default=16, ge=1)
    #: Seeds the search: the same trials on the same machine.
    seed: int = 0
    #: Seconds one candidate may take to compile.
    builder_timeout: float = Field(default=30.0, gt=0)
    #: Seconds one candidate may take to run.
    runner_timeout: float = Field(default=30.0, gt=0)
    #: Let tuned conv/matmul kernels read their weights in a layout of their own, rewritten once at
    #: build time (TVM's cpu_weight_prepack; CPU targets only). Weights are constants here, so the model's
    #: inputs do not change. On by default: with NHWC, 9% faster on ResNet-50 and 11% on MobileNetV2 at equal
    #: trials side by side, for 0-12% more seconds per trial (docs/studies/README.md#tuning-curve).
    cpu_weight_prepack: bool = True
    #: Data layout of the convolutions TVM builds. ``NHWC`` converts them (weights HWIO) before tuning;
    #: ``model`` keeps the model's own (NCHW for ONNX); ``auto``: NHWC on CPU (llvm) targets, where it tuned
    #: ResNet-50 1.48x faster at equal trials (docs/studies/README.md#tuning-curve), the model's elsewhere
    #: (not measured).
    #: Inputs and outputs keep their layout. The untuned build uses the same layout, so the speedup is
    #: tuning's alone.
    layout: Literal["auto", "model", "NHWC"] = "auto"
    #: Flush each candidate's weights and output from the CPU caches before timing it (MetaSchedule's
    #: enable_cpu_cache_flush; CPU targets only), as the network runs a kernel whose weights do not stay
    #: cached between inferences. ``auto``: on this host, when the model's weights exceed its last-level
    #: cache; off for remote devices, whose caches are not known. ResNet-50 (98 MiB of weights, 32 MiB
    #: cache) tuned 5-7% faster flushed, MobileNetV2 (14 MiB) 8% slower (docs/studies/README.md#measuring-candidates).
    cache_flush: Literal["auto", True, False] = "auto"
    #: Tune only the tasks whose name contains one of these (e.g. [conv2d, matmul]); the rest build untuned.
    ops: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
    #: Start from the largest finished database of the same model, target and settings with a smaller
    #: budget (b1000 from b256) and tune only the rest; its trials and seconds count as this budget's.
    #: Not part of the tuning key: it changes how a budget's trials are spent, not the search settings.
    warm_start: bool = False

    def key_settings(self) -> dict[str, Any]:
        """The settings that make two tuning runs different searches (the tuning cache key's part)."""
        # layout and cache_flush enter the key resolved for the target (bench.stages.tuning_db), and only where
        # they change anything, so keys from before they existed stay valid where nothing changed.
        return self.model_dump(exclude={"warm_start", "layout", "cache_flush"})


class LimitsSpec(_Spec):
    """Per-case limits, enforced from outside the worker process that runs the case.

    A case past a limit is killed and becomes an error item; the session goes
    on. Times are per stage of one item: ``build_s`` covers loading, importing
    and compiling, ``tune_s`` one tuning run (about 0.2-0.5 s per trial on 2
    cores; docs/studies/README.md#tuning-cost), ``measure_s`` the probe, timing (side-by-side
    turns included) and checks.
    """

    #: Seconds for loading, importing and compiling one item.
    build_s: float = Field(default=1800.0, gt=0)
    #: Seconds for one tuning run.
    tune_s: float = Field(default=6 * 3600.0, gt=0)
    #: Seconds for probing, timing and checking one item.
    measure_s: float = Field(default=1800.0, gt=0)
    #: Resident memory of the worker and its children; default 80% of this machine's RAM, so a
    #: runaway case is stopped before the kernel's OOM killer picks a process at random.
    memory_mb: int | None = Field(default=None, gt=0)


class ModelSpec(_Spec):
    #: Part of every test id: ``[A-Za-z0-9_.+-]``.
    name: Name
    #: Where the ONNX model comes from (below).
    source: Source
    #: Optional when every input is static; else declare every input.
    inputs: list[InputSpec] | None = None
    #: The outputs whose classes (or values) are checked: an index or name, a list of them, or ``all``.
    output: int | str | list[int | str] = 0
    #: One label per line in a file next to the suite, or an inline list.
    labels: str | list[str] | None = None
    #: This model's overrides of the suite's ``check``.
    check: dict[str, Any] | None = None
    #: This model's overrides of the suite's ``timing``.
    timing: dict[str, Any] | None = None
    #: This model's overrides of the suite's ``gate``.
    gate: dict[str, Any] | None = None
    #: This model's overrides of the suite's ``limits``.
    limits: dict[str, Any] | None = None
    #: Overrides the suite's ``ort`` for this model.
    ort: bool | None = None


class RpcSpec(_Spec):
    """A device pool behind TVM's RPC tracker: build here, measure there.

    The tracker address can also come from ``--bench-rpc-tracker`` or
    ``TVM_TRACKER_HOST``/``TVM_TRACKER_PORT``, which override it.
    """

    #: ``host:port`` of the tracker; ``--bench-rpc-tracker`` and ``TVM_TRACKER_HOST``/``_PORT`` override it.
    tracker: str | None = None
    #: The device key the servers registered with the tracker.
    key: str = Field(min_length=1, pattern=r"^[^\s:]+$")
    #: The tracker's queue priority for this suite's requests.
    priority: int = 1
    #: Seconds the device may hold one measuring session (the server kills it after).
    session_timeout: float = Field(default=600.0, gt=0)
    #: Seconds to wait for a free device of this key before the item fails.
    queue_timeout: float = Field(default=300.0, gt=0)
    #: Seconds to wait for the tracker to accept a connection.
    connect_timeout: float = Field(default=10.0, gt=0)

    @field_validator("tracker")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_address(value)
        return value


def parse_address(text: str) -> tuple[str, int]:
    """``"host:9190"`` -> ``("host", 9190)``; ValueError says what is wrong."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9190 (got {text!r})")
    return host.strip("[]"), int(port)


class ExportSpec(_Spec):
    """How the library sent to a device is linked: the target's compiler, or the Android NDK's."""

    #: The cross compiler that links the library for the device.
    cc: str | None = None
    #: Extra options passed to the compiler.
    options: list[str] = Field(default_factory=list)
    #: Link with TVM's ndk helper (the compiler in ``TVM_NDK_CC``).
    ndk: bool = False

    @model_validator(mode="after")
    def _one(self) -> ExportSpec:
        if self.ndk and self.cc:
            raise ValueError("give 'cc' or 'ndk: true', not both")
        return self


class TargetSpec(_Spec):
    #: Part of every test id; default: derived from the target.
    name: Name | None = None
    #: A TVM target string as users type it (``native``, ``llvm -num-cores=2``) or its JSON.
    target: str | dict[str, Any]
    #: Run on a device pool behind TVM's RPC tracker (below).
    rpc: RpcSpec | None = None
    #: How the library is linked for a remote device (below).
    export: ExportSpec | None = None

    @model_validator(mode="after")
    def _export_needs_rpc(self) -> TargetSpec:
        if self.export is not None and self.rpc is None:
            raise ValueError("'export' applies to rpc targets; a local target is built for this host")
        return self


def _target_kind(value: Any) -> str:
    """A dict with a ``target`` key is a named entry (so its typos are errors); any other dict is TVM JSON."""
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict) and "target" in value:
        return "TargetSpec"
    return "dict[str,any]"


TargetEntry = Annotated[
    Annotated[str, Tag("str")] | Annotated[TargetSpec, Tag("TargetSpec")]
    | Annotated[dict[str, Any], Tag("dict[str,any]")],
    Discriminator(_target_kind),
]


class BudgetSpec(_Spec):
    #: Part of every test id; default ``b<trials>``.
    name: Name | None = None
    #: Total MetaSchedule trials; 0: untuned only.
    trials: int = Field(ge=0)
    #: Trials any one task gets at most.
    max_trials_per_task: int | None = Field(default=None, gt=0)

    @property
    def id(self) -> str:
        return self.name or f"b{self.trials}"


class MatrixEntry(_Spec):
    #: A model's name (any when absent).
    model: str | None = None
    #: A target's name.
    target: str | None = None
    #: A budget's name.
    budget: str | None = None


class MatrixSpec(_Spec):
    """The cross product of models x targets x budgets, minus ``exclude``, plus ``include``."""

    #: Every model on every target with every budget, before ``exclude`` and ``include``.
    cross: bool = True
    #: Combinations added.
    include: list[MatrixEntry] = Field(default_factory=list)
    #: Combinations removed (absent keys match any).
    exclude: list[MatrixEntry] = Field(default_factory=list)


#: A released TVM's version as the package index spells it: ``0.26.0``, ``0.25.0.post1``.
TVM_VERSION = r"^\d+\.\d+\.\d+(\.post\d+|rc\d+)?$"


class TvmSpec(_Spec):
    """A TVM under test: a release installed beside the harness, or a build of your own.

    A release is installed once into the cache (``tvm/``) with the apache-tvm-ffi it needs, without touching
    the harness's environment; each worker then imports the TVM of its case (docs/guide.md#the-tvm-under-test).
    """

    #: Part of the test ids when several TVMs are under test; default: the version, or the folder's name.
    name: Name | None = None
    #: A release on the package index, e.g. ``0.26.0``.
    version: str | None = None
    #: A TVM source checkout (its ``python/`` and ``build/`` with libtvm) or a folder holding the ``tvm``
    #: package; relative to the suite file.
    path: str | None = Field(default=None, min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _full_version(cls, value: Any) -> Any:
        if value is not None and not re.fullmatch(TVM_VERSION, str(value)):
            raise ValueError(f"a release's full version, as on the package index: 0.26.0, 0.25.0.post1 "
                             f"(got {value!r})")
        return None if value is None else str(value)

    @model_validator(mode="after")
    def _one(self) -> TvmSpec:
        if (self.version is None) == (self.path is None):
            raise ValueError("give a TVM 'version' (e.g. 0.26.0) or a 'path' to a build, one of them")
        return self

    @property
    def id(self) -> str:
        return self.name or self.version or Path(str(self.path)).resolve().name


class SuiteSpec(_Spec):
    #: The schema version.
    version: Literal[1] = 1
    #: Default: the file name.
    name: Name | None = None
    #: What the suite measures and why.
    description: str = ""
    #: ``false``: only run when the file is named on the command line (nightly suites).
    default: bool = True
    #: Time ONNX Runtime as a third variant (``ort``) on CPU targets, next to untuned and tuned.
    ort: bool = True
    #: ``true``: model, label and image paths must stay inside the suite's folder (no ``..``,
    #: no absolute paths, no symlinks pointing out), for suites from untrusted hands.
    sandbox: bool = False
    #: The models (below).
    models: list[ModelSpec] = Field(min_length=1)
    #: Where they run: strings, JSON or named entries (below).
    targets: list[TargetEntry] = Field(min_length=1)
    #: Tuning budgets: numbers of trials or named entries (below).
    budgets: list[BudgetSpec] = Field(default_factory=lambda: [BudgetSpec(trials=0)], min_length=1)
    #: Which combinations run (below).
    matrix: MatrixSpec = Field(default_factory=MatrixSpec)
    #: How items are timed (below).
    timing: TimingSpec = Field(default_factory=TimingSpec)
    #: How answers are checked (below).
    check: CheckSpec = Field(default_factory=CheckSpec)
    #: MetaSchedule settings (below).
    tuning: TuningSpec = Field(default_factory=TuningSpec)
    #: How the regression gate decides (below).
    gate: GateSpec = Field(default_factory=GateSpec)
    #: Per-item limits (below).
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    #: The TVMs under test (below); empty: the TVM installed with the harness. ``--bench-tvm`` overrides it.
    tvm: list[TvmSpec] = Field(default_factory=list)

    @field_validator("budgets", mode="before")
    @classmethod
    def _budget_shorthand(cls, value: Any) -> Any:
        """``budgets: [0, 64]`` is shorthand for ``[{trials: 0}, {trials: 64}]``."""
        if isinstance(value, list):
            return [{"trials": v} if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value


def format_loc(loc: tuple[int | str, ...]) -> str:
    """``('models', 2, 'source', 'sha256')`` -> ``models[2].source.sha256``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("data:"):
            continue
        elif part in ("str", "int", "dict[str,any]", "TargetSpec", "ImageInput", "literal['random']",
                      "list[union[int,str]]"):
            continue  # pydantic's union-branch labels are noise to a user
        else:
            out += f".{part}" if out else str(part)
    return out


def _first_error(err: ValidationError) -> tuple[str, str]:
    """The most useful single error: prefer one not caused by trying another union branch."""
    errors = err.errors(include_url=False)
    best = min(errors, key=lambda e: (e["type"] in ("string_type", "int_type", "dict_type", "model_type"),
                                      len(e["loc"]), e["type"] != "extra_forbidden"))
    msg = best["msg"].removeprefix("Value error, ")
    if best["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling; see docs/guide.md#suite-format)"
    elif best["type"] not in ("value_error", "missing") and "input" in best:
        msg = f"{msg} (got {best['input']!r})"
    more = len({tuple(e["loc"]) for e in errors}) - 1
    if more > 0:
        msg += f" (+{more} more problem{'s' if more > 1 else ''})"
    return format_loc(tuple(best["loc"])), msg


M = TypeVar("M", bound=BaseModel)


def _merge(base: M, override: dict[str, Any] | None, where: str, key: str) -> M:
    if not override:
        return base
    try:
        return type(base).model_validate({**base.model_dump(), **override})
    except ValidationError as err:
        sub, msg = _first_error(err)
        raise SuiteError(msg, where, f"{key}.{sub}" if sub else key) from None


class Suite:
    """A validated suite: the spec, its file, and resolved per-model settings."""

    def __init__(self, path: Path, spec: SuiteSpec) -> None:
        self.path = path
        self.spec = spec
        self.name = spec.name or path.stem

    @property
    def where(self) -> str:
        return _display(self.path)

    def model_timing(self, index: int) -> TimingSpec:
        return _merge(self.spec.timing, self.spec.models[index].timing, self.where, f"models[{index}].timing")

    def model_check(self, index: int) -> CheckSpec:
        return _merge(self.spec.check, self.spec.models[index].check, self.where, f"models[{index}].check")

    def model_gate(self, index: int) -> GateSpec:
        return _merge(self.spec.gate, self.spec.models[index].gate, self.where, f"models[{index}].gate")

    def model_limits(self, index: int) -> LimitsSpec:
        return _merge(self.spec.limits, self.spec.models[index].limits, self.where, f"models[{index}].limits")

    def resolve_file(self, relative: str) -> Path:
        """Paths in a suite are relative to the suite file, not the working directory."""
        return (self.path.parent / relative).resolve() if not Path(relative).is_absolute() else Path(relative)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


#: Suites list models; they never need to be big. Bigger files are refused before parsing.
MAX_SUITE_BYTES = 1 << 20
#: Nesting and node-count caps: a YAML alias bomb expands to billions of values from a few lines.
MAX_DEPTH = 32
MAX_NODES = 100_000


def _check_shape(node: Any, where: str) -> None:
    """Refuse documents too deep or too large once aliases are expanded, before building them."""
    import yaml

    memo: dict[int, int] = {}

    def size(n: Any, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise SuiteError(f"line {n.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels; "
                             "a suite never needs that", where)
        if id(n) in memo:
            return memo[id(n)]
        if isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(c, depth + 1) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k, depth + 1) + size(v, depth + 1) for k, v in n.value)
        else:
            total = 1
        if total > MAX_NODES:
            raise SuiteError(f"line {n.start_mark.line + 1}: expands to more than {MAX_NODES:,} values "
                             "(YAML aliases nested in aliases?); refused", where)
        memo[id(n)] = total
        return total

    size(node, 0)


def load_suite(path: Path) -> Suite:
    """Parse and validate a suite file; raise SuiteError naming file and key.

    Only plain YAML data is accepted: ``yaml.safe_load`` never constructs
    objects from tags such as ``!!python/object``, and size, nesting and
    alias expansion are capped before anything is built.
    """
    import yaml

    where = _display(path)
    try:
        size = path.stat().st_size
        if size > MAX_SUITE_BYTES:
            raise SuiteError(f"suite file is {size:,} bytes; the limit is {MAX_SUITE_BYTES:,} "
                             "(a suite lists models, it does not embed them)", where)
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SuiteError(f"cannot read suite file: {err.strerror}", where) from None
    except UnicodeDecodeError:
        raise SuiteError("not a UTF-8 text file", where) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _check_shape(node, where)
        raw = yaml.safe_load(text)
    except RecursionError:
        raise SuiteError(f"nested deeper than {MAX_DEPTH} levels; a suite never needs that", where) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        pos = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        if isinstance(err, yaml.constructor.ConstructorError) and "tag" in problem:
            tag = problem.split("tag", 1)[1].strip(" '")
            raise SuiteError(f"{pos}YAML tag {tag!r} is not allowed: suites are plain data and nothing in "
                             "them is executed", where) from None
        raise SuiteError(f"{pos}invalid YAML: {problem}", where) from None
    if not isinstance(raw, dict):
        raise SuiteError(f"a suite is a mapping with 'models' and 'targets' (got {type(raw).__name__})", where)
    try:
        spec = SuiteSpec.model_validate(raw)
    except ValidationError as err:
        key, msg = _first_error(err)
        raise SuiteError(msg, where, key or None) from None
    suite = Suite(path, spec)
    _check_references(suite)
    return suite


def _check_sandbox(suite: Suite, model: ModelSpec, key: str) -> None:
    """``sandbox: true``: every file a model names must resolve inside the suite's folder."""
    home = suite.path.parent.resolve()
    files = [(model.source.path, f"{key}.source.path")]
    if isinstance(model.labels, str):
        files.append((model.labels, f"{key}.labels"))
    files += [(inp.data.image, f"{key}.inputs[{j}].data.image") for j, inp in enumerate(model.inputs or [])
              if isinstance(inp.data, ImageInput)]
    files += [(inp.data.npy, f"{key}.inputs[{j}].data.npy") for j, inp in enumerate(model.inputs or [])
              if isinstance(inp.data, NpyInput)]
    for relative, where_key in files:
        if relative is None:
            continue
        resolved = (home / relative).resolve()  # follows symlinks, so a link pointing out is caught too
        if Path(relative).is_absolute() or not resolved.is_relative_to(home):
            raise SuiteError(f"path {relative!r} resolves to {resolved}, outside the suite's folder {home}; "
                             "'sandbox: true' only allows files under it", suite.where, where_key)


def _unique(names: list[str], where: str, key: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise SuiteError(f"duplicate name {name!r}; names must be unique", where, f"{key}[{i}]")
        seen.add(name)


def _check_references(suite: Suite) -> None:
    """Checks that need more than one field: files, names, matrix references, overrides."""
    spec, where = suite.spec, suite.where
    _unique([m.name for m in spec.models], where, "models")
    _unique([b.id for b in spec.budgets], where, "budgets")
    _unique([t.id for t in spec.tvm], where, "tvm")
    for i, tvm in enumerate(spec.tvm):
        if tvm.path is not None and not suite.resolve_file(tvm.path).is_dir():
            raise SuiteError(f"TVM build folder not found: {tvm.path} (paths are relative to the suite file)",
                             where, f"tvm[{i}].path")
    for i, model in enumerate(spec.models):
        key = f"models[{i}]"
        if spec.sandbox:
            _check_sandbox(suite, model, key)
        if model.source.path is not None and not suite.resolve_file(model.source.path).is_file():
            raise SuiteError(f"model file not found: {model.source.path} (paths are relative to the suite file)",
                             where, f"{key}.source.path")
        if isinstance(model.labels, str) and not suite.resolve_file(model.labels).is_file():
            raise SuiteError(f"labels file not found: {model.labels}", where, f"{key}.labels")
        _unique([inp.name for inp in model.inputs or []], where, f"{key}.inputs")
        _check_outputs(model.output, where, f"{key}.output")
        for j, inp in enumerate(model.inputs or []):
            if isinstance(inp.data, NpyInput):
                _check_npy(suite.resolve_file(inp.data.npy), inp, where, f"{key}.inputs[{j}].data.npy")
            if isinstance(inp.data, ImageInput):
                if not suite.resolve_file(inp.data.image).is_file():
                    raise SuiteError(f"image file not found: {inp.data.image}", where,
                                     f"{key}.inputs[{j}].data.image")
                if inp.data.preprocess == "imagenet" and (len(inp.shape) != 4 or inp.shape[1] != 3):
                    raise SuiteError(f"imagenet preprocessing makes NCHW with 3 channels; shape {inp.shape} "
                                     "is impossible", where, f"{key}.inputs[{j}].shape")
        if model.source.generator is not None:
            import inspect

            params = inspect.signature(GENERATORS[model.source.generator]).parameters
            for opt in model.source.options:
                if opt not in params or opt == "seed":
                    allowed = [p for p in params if p != "seed"]
                    raise SuiteError(f"generator {model.source.generator!r} has no option {opt!r} "
                                     f"(options: {', '.join(allowed)})", where, f"{key}.source.options.{opt}")
        suite.model_check(i)
        suite.model_timing(i)
        suite.model_gate(i)
        suite.model_limits(i)


def _check_outputs(output: int | str | list[int | str], where: str, key: str) -> None:
    if isinstance(output, list):
        if not output:
            raise SuiteError("an empty list checks nothing: give an index, a name, a list of them, or 'all'",
                             where, key)
        for i, item in enumerate(output):
            if output.index(item) != i:
                raise SuiteError(f"output {item!r} is listed twice", where, f"{key}[{i}]")


def _check_npy(path: Path, spec: InputSpec, where: str, key: str) -> None:
    """The file must exist and hold an array of the input's shape and dtype (read from its header only)."""
    import numpy as np

    if not path.is_file():
        raise SuiteError(f"npy file not found: {path} (paths are relative to the suite file)", where, key)
    with path.open("rb") as head:
        if head.read(6) != b"\x93NUMPY":
            raise SuiteError(f"{path.name} is not a numpy .npy file (write it with numpy.save)", where, key)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise SuiteError(f"{path.name} is not a numpy .npy array ({str(err).splitlines()[0]})", where, key) from None
    if not isinstance(array, np.ndarray):
        raise SuiteError(f"{path.name} is an archive of arrays; save one array with numpy.save", where, key)
    if list(array.shape) != list(spec.shape) or array.dtype != np.dtype(spec.dtype):
        raise SuiteError(f"{path.name} holds {array.dtype} {list(array.shape)}; input {spec.name!r} is "
                         f"{spec.dtype} {list(spec.shape)}", where, key)

"""Model stage: get the ONNX bytes, freeze input shapes, make the inputs.

Converter exports (torch.onnx with a dynamic batch, paddle2onnx, tf2onnx)
declare symbolic input dims and compute Reshape targets at run time, which
TVM 0.27's importer rejects. We freeze the shapes the suite declares and let
onnxslim fold the shape subgraphs; no hand-written graph surgery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cache import file_sha256, key_of, locked, read_verified, write_verified
from bench.errors import ModelError
from bench.generators import GENERATOR_VERSION, GENERATORS
from bench.stages.fetch import fetch
from bench.suite.schema import ImageInput, InputSpec, NpyInput, RandomInput, ValueInput

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from bench.suite.case import Case

#: ImageNet normalisation used by torchvision and the TVM tutorial.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for TVM and ONNX Runtime: static shapes, inputs in graph order."""

    name: str
    path: Path
    sha256: str
    inputs: dict[str, np.ndarray] = field(compare=False)
    #: The checked outputs as (index in the graph's outputs, name), in the suite's order.
    outputs: tuple[tuple[int, str], ...]
    labels: list[str] | None = field(default=None, compare=False)
    #: Where ``path`` is the harness's frozen copy: the file as shipped, and the values the suite gives its
    #: symbolic dimensions (name -> size), so ONNX Runtime can run it as shipped (bench.stages.reference).
    source: Path | None = None
    free_dims: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def shapes(self) -> dict[str, list[int]]:
        return {k: list(v.shape) for k, v in self.inputs.items()}

    @property
    def output_index(self) -> int:
        """The first checked output: its top-k goes into the record."""
        return self.outputs[0][0]

    @property
    def output_names(self) -> list[str]:
        return [name for _, name in self.outputs]

    @cached_property
    def op_types(self) -> frozenset[str]:
        """The ONNX operators of the main graph."""
        import onnx

        return frozenset(n.op_type for n in onnx.load(str(self.path), load_external_data=False).graph.node)

    @cached_property
    def weight_bytes(self) -> int:
        """Bytes of the model's initializers (its weights); parsing ResNet-50's file takes 0.2 s, so once."""
        import numpy as np
        import onnx

        graph = onnx.load(str(self.path), load_external_data=False).graph
        return sum(int(np.prod(init.dims, dtype=np.int64)) *
                   onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize for init in graph.initializer)


def _source_bytes(case: Case, models_dir: Path, downloads_dir: Path,
                  progress: Callable[[str], None]) -> tuple[bytes, str, Path]:
    """The model file's bytes, a display name of where they came from, and its file."""
    suite, src, key = case.suite, case.model.source, f"models[{case.model_index}].source"
    if src.generator is not None:
        name = key_of(src.generator, src.seed, src.options, GENERATOR_VERSION)[:16]
        path = models_dir / f"gen-{src.generator}-{name}.onnx"
        with locked(models_dir / f"{path.name}.lock", f"generating {path.name}", progress):
            data = read_verified(path, models_dir.parent, progress)
            if data is None:
                data = GENERATORS[src.generator](seed=src.seed, **src.options).SerializeToString()
                write_verified(path, data)
        return data, f"generator {src.generator}", path
    if src.path is not None:
        path = suite.resolve_file(src.path)
        try:
            return path.read_bytes(), src.path, path
        except OSError as err:
            raise ModelError(f"cannot read model file: {err.strerror}", suite.where, f"{key}.path") from None
    assert src.url is not None and src.sha256 is not None  # guaranteed by Source validation
    with locked(downloads_dir / f"{src.sha256}.lock", f"downloading {src.url}", progress):
        path = fetch(src.url, src.sha256, downloads_dir, src.max_bytes, suite.where, f"{key}.url",
                     warn=progress)
    return path.read_bytes(), src.url, path


def _parse(data: bytes, origin: str, where: str, key: str) -> onnx.ModelProto:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as err:
        raise ModelError(f"{origin} is not a valid ONNX file ({type(err).__name__})", where, key) from None
    if not model.graph.node:
        raise ModelError(f"{origin} has an empty graph: is it an ONNX model?", where, key)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise ModelError(f"{origin} fails the ONNX checker: {str(err).splitlines()[0]}", where, key) from None
    return model


def _graph_inputs(model: onnx.ModelProto) -> list[tuple[str, list[int | str], str]]:
    """(name, dims, dtype) of real inputs, skipping initializers listed as inputs."""
    import onnx

    inits = {i.name for i in model.graph.initializer}
    out = []
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        tt = inp.type.tensor_type
        dims: list[int | str] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                                 for d in tt.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        out.append((inp.name, dims, dtype))
    return out


def _input_specs(case: Case, model: onnx.ModelProto) -> list[InputSpec]:
    """The suite's input declarations checked against the graph, or the graph's own static ones."""
    where, key = case.suite.where, f"models[{case.model_index}].inputs"
    graph = _graph_inputs(model)
    if case.model.inputs is None:
        specs = []
        for name, dims, dtype in graph:
            if not all(isinstance(d, int) and d > 0 for d in dims):
                raise ModelError(f"input {name!r} has symbolic shape {dims}: declare 'inputs' with a static shape",
                                 where, key)
            specs.append(InputSpec(name=name, shape=[int(d) for d in dims], dtype=dtype))
        return specs
    declared = {s.name: (i, s) for i, s in enumerate(case.model.inputs)}
    graph_names = [g[0] for g in graph]
    for name, (i, _) in declared.items():
        if name not in graph_names:
            raise ModelError(f"the model has no input {name!r} (inputs: {', '.join(graph_names)})",
                             where, f"{key}[{i}].name")
    specs = []
    for name, dims, _dtype in graph:
        if name not in declared:
            raise ModelError(f"model input {name!r} is not declared (declare all of: {', '.join(graph_names)})",
                             where, key)
        i, spec = declared[name]
        if len(spec.shape) != len(dims) or any(isinstance(d, int) and d > 0 and d != s
                                               for d, s in zip(dims, spec.shape, strict=True)):
            raise ModelError(f"shape {spec.shape} does not match the model's input {name!r} {dims}",
                             where, f"{key}[{i}].shape")
        specs.append(spec)
    return specs


def _free_dims(model: onnx.ModelProto, specs: list[InputSpec]) -> dict[str, int]:
    """Symbolic dimension name -> the size the suite declares for it."""
    graph = {n: d for n, d, _ in _graph_inputs(model)}
    return {d: size for s in specs for d, size in zip(graph[s.name], s.shape, strict=True)
            if isinstance(d, str) and d != "?"}


def _needs_freezing(model: onnx.ModelProto, specs: list[InputSpec]) -> bool:
    graph = {n: d for n, d, _ in _graph_inputs(model)}
    symbolic = any(not isinstance(d, int) or d <= 0 for s in specs for d in graph[s.name])
    return symbolic or any(n.op_type == "Shape" for n in model.graph.node)


def _freeze(model: onnx.ModelProto, specs: list[InputSpec], where: str, key: str) -> onnx.ModelProto:
    """Pin input shapes and fold Shape->...->Reshape chains with onnxslim."""
    import onnxslim

    # A scalar has no dims to pin (onnxslim's syntax cannot even say it): only tensors are listed.
    shapes = [f"{s.name}:{','.join(str(d) for d in s.shape)}" for s in specs if s.shape]
    try:
        frozen: onnx.ModelProto = onnxslim.slim(model, input_shapes=shapes)
        return frozen
    except Exception as err:  # onnxslim raises many types; the user needs the reason, once
        raise ModelError(f"freezing input shapes {shapes} with onnxslim failed: {err}", where, key) from None


def _make_input(case: Case, spec: InputSpec, index: int) -> np.ndarray:
    import numpy as np

    data = spec.data
    if isinstance(data, ImageInput):
        return _image_input(case, spec, data, index)
    if isinstance(data, ValueInput):
        return np.full(spec.shape, data.value, dtype=spec.dtype)
    if isinstance(data, NpyInput):  # shape and dtype were checked when the suite loaded
        return np.ascontiguousarray(np.load(case.suite.resolve_file(data.npy), allow_pickle=False))
    rng = np.random.default_rng(spec.seed)
    integer = np.issubdtype(np.dtype(spec.dtype), np.integer)
    if isinstance(data, RandomInput):
        low, high = data.random.low, data.random.high
        if integer:  # the suite checked that both ends are whole numbers for an integer dtype
            return np.asarray(rng.integers(int(low), int(high), size=spec.shape, dtype=spec.dtype))
        return np.asarray(rng.uniform(low, high, size=spec.shape)).astype(spec.dtype)
    if integer:
        return np.asarray(rng.integers(0, 10, size=spec.shape)).astype(spec.dtype)
    if spec.dtype == "bool":
        return np.asarray(rng.integers(0, 2, size=spec.shape)).astype(bool)
    return np.asarray(rng.standard_normal(spec.shape)).astype(spec.dtype)


def _image_input(case: Case, spec: InputSpec, image: ImageInput, index: int) -> np.ndarray:
    """The tutorial's preprocessing: resize short side, center crop, scale, normalise, NCHW."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    path = case.suite.resolve_file(image.image)
    key = f"models[{case.model_index}].inputs[{index}].data.image"
    try:
        img = Image.open(path).convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise ModelError(f"cannot read image {image.image}: {err}", case.suite.where, key) from None
    n, _, h, w = spec.shape
    arr: np.ndarray
    if image.preprocess == "imagenet":
        scale = 256 / min(img.size) * max(h, w) / 224
        img = img.resize((max(w, round(img.width * scale)), max(h, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
        left, top = (img.width - w) // 2, (img.height - h) // 2
        img = img.crop((left, top, left + w, top + h))
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = (arr - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    else:
        arr = np.asarray(img.resize((w, h)), dtype=np.float32)
    chw = arr.transpose(2, 0, 1)[None]
    return np.ascontiguousarray(np.repeat(chw, n, axis=0).astype(spec.dtype))


def _labels(case: Case) -> list[str] | None:
    labels = case.model.labels
    if labels is None or isinstance(labels, list):
        return labels
    return case.suite.resolve_file(labels).read_text(encoding="utf-8").splitlines()


def _outputs(case: Case, model: onnx.ModelProto) -> tuple[tuple[int, str], ...]:
    """The checked outputs: ``output`` is an index, a name, a list of them, or ``all``."""
    names = [o.name for o in model.graph.output]
    out = case.model.output
    key = f"models[{case.model_index}].output"
    if out == "all" and "all" not in names:
        return tuple(enumerate(names))
    chosen: list[tuple[int, str]] = []
    for i, item in enumerate(out if isinstance(out, list) else [out]):
        where = f"{key}[{i}]" if isinstance(out, list) else key
        if isinstance(item, int):
            if not 0 <= item < len(names):
                raise ModelError(f"output index {item} out of range: the model has {len(names)} outputs ({names})",
                                 case.suite.where, where)
            chosen.append((item, names[item]))
        elif item in names:
            chosen.append((names.index(item), item))
        else:
            raise ModelError(f"the model has no output {item!r} (outputs: {', '.join(names)}; or 'all')",
                             case.suite.where, where)
    return tuple(chosen)


def load_model(case: Case, cache_dir: Path, progress: Callable[[str], None] = print) -> LoadedModel:
    """Resolve, verify, freeze and cache the case's model; make its inputs."""
    import hashlib

    import onnx

    where, key = case.suite.where, f"models[{case.model_index}]"
    data, origin, path = _source_bytes(case, cache_dir / "models", cache_dir / "downloads", progress)
    model = _parse(data, origin, where, f"{key}.source")
    specs = _input_specs(case, model)
    source: Path | None = None
    free_dims: dict[str, int] = {}
    if _needs_freezing(model, specs):
        source, free_dims = path, _free_dims(model, specs)
        digest = hashlib.sha256(data).hexdigest()
        frozen_path = cache_dir / "models" / f"frozen-{key_of(digest, [s.model_dump() for s in specs])[:24]}.onnx"
        with locked(frozen_path.with_name(frozen_path.name + ".lock"), f"freezing {frozen_path.name}", progress):
            frozen = read_verified(frozen_path, cache_dir, progress)
            if frozen is None:
                frozen = _freeze(model, specs, where, f"{key}.inputs").SerializeToString()
                write_verified(frozen_path, frozen)
        path = frozen_path
        model = onnx.load_from_string(frozen)
    outputs = _outputs(case, model)
    inputs = {s.name: _make_input(case, s, i) for i, s in enumerate(specs)}
    return LoadedModel(case.model.name, path, file_sha256(path), inputs, outputs, _labels(case), source, free_dims)


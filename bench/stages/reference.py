"""The reference runtime: ONNX Runtime on the same model and inputs as TVM.

ONNX Runtime gets the harness's frozen model (input shapes pinned, shape
subgraphs folded) where it loads, so both runtimes run one graph. Freezing
is the harness's own rewriting, and it can break what ONNX Runtime accepts
as shipped (an LSTM inside an If branch, seen in a real streaming audio
model): then ONNX Runtime runs the file as shipped, its free dimensions set
to the suite's shapes through its own overrides, and the record says so.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bench.errors import ModelError

if TYPE_CHECKING:
    import numpy as np

    from bench.stages.model import LoadedModel

#: Which file ONNX Runtime runs: the harness's frozen one, or the model as shipped.
OrtModel = Literal["frozen", "as shipped"]


def available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


@dataclass(frozen=True)
class Reference:
    """An ONNX Runtime session ready to run the model's inputs."""

    session: Any
    model: OrtModel
    inputs: dict[str, np.ndarray]

    def run(self) -> list[np.ndarray]:
        return list(self.session.run(None, self.inputs))


def _reason(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _open(path: str, threads: int | None, free_dims: dict[str, int]) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    for name, value in free_dims.items():
        opts.add_free_dimension_override_by_name(name, value)
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def open_reference(model: LoadedModel, threads: int | None = None, where: str | None = None,
                   key: str | None = None, progress: Any = None) -> Reference:
    """A CPU session with all graph optimizations and intra-op threads = the target's cores, run once.

    Raises ModelError naming the model and ONNX Runtime's reason when neither file runs.
    """
    attempts: list[tuple[OrtModel, str, dict[str, int]]] = []
    if model.source is not None:
        attempts.append(("frozen", str(model.path), {}))
        attempts.append(("as shipped", str(model.source), model.free_dims))
    else:
        attempts.append(("as shipped", str(model.path), {}))
    reasons: list[str] = []
    for kind, path, free_dims in attempts:
        try:
            ref = Reference(_open(path, threads, free_dims), kind, model.inputs)
            ref.run()
        except Exception as err:  # ONNX Runtime raises its own types, and RuntimeError from pybind
            reasons.append(f"{kind}: {_reason(err)}")
            continue
        if reasons and progress is not None:
            dims = ", ".join(f"{k}={v}" for k, v in free_dims.items()) or "none"
            progress(f"[ort] model {model.name!r}: ONNX Runtime refused the frozen model ({reasons[0]}); running "
                     f"it as shipped, free dimensions set ({dims})")
        return ref
    raise ModelError(f"model {model.name!r}: ONNX Runtime cannot run it ({'; '.join(reasons)})", where, key)

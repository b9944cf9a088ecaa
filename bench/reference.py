"""The reference runtime: ONNX Runtime on the same frozen model and inputs."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from bench.model import LoadedModel


def available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def session(model: LoadedModel, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session: all graph optimizations, intra-op threads = target cores."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(model.path), opts, providers=["CPUExecutionProvider"])


def run_reference(model: LoadedModel, threads: int | None = None) -> list[np.ndarray]:
    return list(session(model, threads).run(None, model.inputs))

"""The reference runtime: ONNX Runtime on the same frozen model and inputs."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from bench.model import LoadedModel


def available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def run_reference(model: LoadedModel, threads: int | None = None) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(model.path), opts, providers=["CPUExecutionProvider"])
    return list(sess.run(None, model.inputs))

"""tvm-bench: YAML suites of ONNX models, compiled by Apache TVM untuned vs tuned, as pytest-benchmark cases."""

__version__ = "0.1.0"

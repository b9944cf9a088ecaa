"""Nothing to load: the harness's pytest plugin comes from the package's ``pytest11`` entry point
(pyproject.toml), in this repository and in any other once ``tvm-bench`` is installed."""

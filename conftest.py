"""Load the harness plugin for every pytest run in this repository."""

pytest_plugins = ["bench.plugin"]

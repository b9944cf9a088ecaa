"""Accumulated results: loading runs into one table (``load``), the regression gate and its confirmation,
change points, the HTML report, and the baseline builds kept across runs.

Reads result files and kept builds; never runs a model (``confirm`` asks pytest to).
"""

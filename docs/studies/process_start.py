"""What every process that imports TVM or ONNX pays before it does any work, with another ml_dtypes beside it.

Workers, the tuner's builder and runner processes and every pytest run the tests start import TVM (and
through it ml_dtypes); the parent imports ONNX (and through it ml_dtypes too). Each import runs in a fresh
interpreter, the variants interleaved in random order, and the medians are printed:

    .venv/bin/pip install --no-deps --target /tmp/mld ml_dtypes==0.6.0
    .venv/bin/python docs/studies/process_start.py --other /tmp/mld --runs 9

``--other DIR`` puts DIR first on ``PYTHONPATH`` for the "other" variant (a ``pip install --target`` folder).
Write-up: docs/studies/README.md#process-start.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

#: What each probe imports; the last line prints the ml_dtypes it got.
PROBES = {
    "ml_dtypes": "import ml_dtypes",
    "onnx": "import onnx",
    "tvm": "import tvm",
}


def seconds(statement: str, path: Path | None) -> tuple[float, str]:
    """One fresh interpreter's import of ``statement``, timed inside it (the interpreter's own start excluded)."""
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    code = (f"import time; t = time.perf_counter(); {statement}; s = time.perf_counter() - t; "
            "import ml_dtypes; print(s, ml_dtypes.__version__)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    took, version = out.stdout.split()
    return float(took), version


def main() -> None:
    parser = argparse.ArgumentParser(description="import times of TVM, ONNX and ml_dtypes in fresh processes")
    parser.add_argument("--other", type=Path, help="a folder with another ml_dtypes, compared side by side")
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per probe and variant (default 7)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    variants: dict[str, Path | None] = {"installed": None, **({"other": args.other} if args.other else {})}
    order = [(probe, variant) for probe in PROBES for variant in variants for _ in range(args.runs)]
    random.Random(args.seed).shuffle(order)
    times: dict[tuple[str, str], list[float]] = {}
    versions: dict[str, str] = {}
    for probe, variant in order:
        took, versions[variant] = seconds(PROBES[probe], variants[variant])
        times.setdefault((probe, variant), []).append(took)
    print(f"{args.runs} fresh processes per cell, in random order; median (min .. max) seconds")
    print("| import | " + " | ".join(f"{v} (ml_dtypes {versions[v]})" for v in variants) + " |")
    print("|---|" + "---|" * len(variants))
    for probe in PROBES:
        cells = [times[(probe, v)] for v in variants]
        print(f"| {probe} | " + " | ".join(f"{statistics.median(c):.3f} ({min(c):.3f} .. {max(c):.3f})"
                                           for c in cells) + " |")


if __name__ == "__main__":
    main()

"""Compare change-point detectors on histories that carry this machine's measured noise.

Each case of a real A/A history (unchanged runs, e.g. ``gate_power.py --aa``)
gives a noise profile: each run's statistic (min of rounds, the gate's) divided
by the case's median. Synthetic histories of ``--runs`` runs resample that
profile and get a step of each ``--steps`` size at a random run; a detector
finds the step if it reports a change point within +-1 run of it. A/A
histories (step 0) count false change points.

Detectors, each used if it imports (run the script in a venv that has them):
``bench`` (what ``bench.history.changes`` ships: asv's steps kept when a Mann-Whitney
test of the runs either side is significant and the step is 2% or more),
``asv`` (``asv.step_detect`` alone), ``otava`` (Apache Otava's Hunter
algorithm: windowed E-Divisive, t-test merge, p 0.001), ``otava-perm``
(Otava's original E-Divisive with a permutation test, p 0.01) and ``spa``
(MongoDB's signal-processing-algorithms E-Divisive, permutation test, p 0.01).
Otava and spa pin numpy versions TVM's environment does not have: install
them (``--no-deps``) in a scratch venv with numpy, scipy, pandas and pydantic,
and run with ``PYTHONPATH`` set to the checkout.

    python docs/studies/change_points.py --history results/gate-power-threads/aa
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

Detector = Callable[[np.ndarray], list[int]]


def _asv() -> Detector:
    from asv.step_detect import detect_steps

    def detect(y: np.ndarray) -> list[int]:
        return [left for left, *_ in detect_steps(list(map(float, y)))][1:]

    return detect


def _bench() -> Detector:
    from bench.history.changes import detect

    def run(y: np.ndarray) -> list[int]:
        return [shift.index for shift in detect(y)]

    return run


def _otava() -> Detector:
    from otava.analysis import compute_change_points

    def detect(y: np.ndarray) -> list[int]:
        # A list: Otava 0.8.0 offsets the indexes it finds in an array without slicing it to the window.
        points, _ = compute_change_points(np.log(y).tolist(), window_len=30, max_pvalue=0.001)
        return [int(cp.index) for cp in points]

    return detect


def _otava_perm() -> Detector:
    from otava.analysis import compute_change_points_orig

    def detect(y: np.ndarray) -> list[int]:
        points, _ = compute_change_points_orig(np.log(y).tolist(), max_pvalue=0.01, seed=0)
        return [int(cp.index) for cp in points]

    return detect


def _spa() -> Detector:
    from signal_processing_algorithms.energy_statistics.energy_statistics import e_divisive

    def detect(y: np.ndarray) -> list[int]:
        return sorted(e_divisive(y, pvalue=0.01, permutations=100))

    return detect


DETECTORS: dict[str, Callable[[], Detector]] = {"bench": _bench, "asv": _asv, "otava": _otava,
                                                "otava-perm": _otava_perm, "spa": _spa}


def noise_profiles(paths: list[Path], statistic: str) -> dict[str, np.ndarray]:
    from bench.history.load import load_history

    results = load_history(paths).results
    out = {}
    for case, rows in results.groupby("case", sort=True):
        values = rows[statistic].to_numpy(dtype=float)
        out[str(case)] = values / np.median(values)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=Path, nargs="+", required=True, help="A/A runs: the noise to resample")
    parser.add_argument("--statistic", choices=("min", "median"), default="min")
    parser.add_argument("--runs", type=int, default=60, help="runs per synthetic history (default 60)")
    parser.add_argument("--histories", type=int, default=20, help="histories per case and step (default 20)")
    parser.add_argument("--steps", type=float, nargs="+", default=[0.0, 0.03, 0.05, 0.10])
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=list(DETECTORS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")
    args = parser.parse_args(argv)

    detectors = {}
    for name in args.detectors:
        try:
            detectors[name] = DETECTORS[name]()
        except ImportError as err:
            print(f"{name}: not installed here ({err}); skipped", file=sys.stderr)
    profiles = noise_profiles(args.history, args.statistic)
    rows = []
    print(f"{'case':34} {'SD':>6} {'step':>5} " + " ".join(f"{n + ' hit':>9} {n + ' false':>11}" for n in detectors))
    for case, profile in profiles.items():
        sd = float(np.std(np.log(profile), ddof=1))
        for step in args.steps:
            rng = np.random.default_rng([args.seed, int(step * 1000)])
            series, where = [], []
            for _ in range(args.histories):
                y = rng.choice(profile, size=args.runs, replace=True)
                at = int(rng.integers(args.runs // 4, 3 * args.runs // 4))
                if step:
                    y[at:] *= 1 + step
                series.append(y)
                where.append(at)
            cells = []
            for name, detect in detectors.items():
                hits = false = 0
                started = time.perf_counter()
                for y, at in zip(series, where, strict=True):
                    found = detect(y)
                    near = [i for i in found if step and abs(i - at) <= 1]
                    hits += bool(near)
                    false += len(found) - len(near)
                per_series = (time.perf_counter() - started) / len(series)
                cells.append(f"{hits:>9} {false:>11}")
                rows.append({"case": case, "sd": sd, "step": step, "detector": name, "hits": hits,
                             "false": false, "histories": args.histories, "runs": args.runs,
                             "seconds_per_history": per_series})
            print(f"{case:34} {sd:6.1%} {step:5.0%} " + " ".join(cells), flush=True)
    if args.csv is not None:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

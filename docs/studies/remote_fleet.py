"""Measure the RPC path on a loopback fleet: tuning cost with 1 vs 2 devices, remote vs local timing.

Runs the tiny CNN suite three times, each in a fresh cache so every run tunes:
on this host, through a tracker with one rpc_server, and with two. Prints
seconds per trial, tuning seconds, the untuned and tuned medians and each
item's wall time (pytest's duration), and keeps every JSON in --workdir.

On a 2-core machine two loopback "devices" share the cores that also build
the candidates, so the second device buys little: the point is that the
runner fans out, not the speed-up. Run it on an idle machine:

    .venv/bin/python docs/studies/remote_fleet.py --trials 64 --workdir results/remote-fleet
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.testing.fleet import fleet  # noqa: E402  (the loopback fleet the tests use)

SUITE = """
name: fleet
models:
  - name: tiny
    source: {{generator: tiny_cnn}}
targets:
  - {target}
budgets: [{{name: b{trials}, trials: {trials}}}]
timing: {{rounds: 10, iterations: 10, min_rounds: 5, max_time: 10}}
ort: false
"""
LOCAL = '{name: box, target: "llvm -num-cores=2"}'
REMOTE = '{{name: box, target: {{kind: llvm, num-cores: 2}}, rpc: {{tracker: "{tracker}", key: box}}}}'


def run(folder: Path, target: str, trials: int) -> dict[str, dict[str, Any]]:
    folder = folder.resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "suite.yaml").write_text(SUITE.format(target=target, trials=trials))
    cmd = [sys.executable, "-m", "pytest", "-p", "bench.plugin", "-p", "no:cacheprovider", "-c",
           str(REPO / "pyproject.toml"), "--rootdir", str(folder), "suite.yaml", "--benchmark-json", "out.json",
           "--bench-cache-dir", "cache", "-q", "--durations=0"]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=3600)
    (folder / "pytest.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{folder}: pytest failed, see {folder / 'pytest.log'}")
    durations = {}
    for line in proc.stdout.splitlines():  # "1.23s call     suite.yaml::test_case[tiny-box-untuned]"
        parts = line.split()
        if len(parts) == 3 and parts[1] == "call" and "[" in parts[2]:
            durations[parts[2].split("[")[1].rstrip("]")] = float(parts[0].rstrip("s"))
    data = json.loads((folder / "out.json").read_text())
    out = {}
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        out[info["variant"]] = {"median_ms": bench["stats"]["median"] * 1e3, "min_ms": bench["stats"]["min"] * 1e3,
                                "clock": info["clock"], "wall_s": durations.get(info["case"]),
                                "seconds_per_trial": info.get("seconds_per_trial"), "tuning_s": info.get("tuning_s"),
                                "trials": info.get("trials")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=REPO / "results" / "remote-fleet")
    args = parser.parse_args()
    results = {"local": run(args.workdir / "local", LOCAL, args.trials)}
    for servers in (1, 2):
        logs = args.workdir / f"fleet{servers}"
        logs.mkdir(parents=True, exist_ok=True)
        with fleet(logs, servers=servers) as f:
            results[f"rpc x{servers}"] = run(args.workdir / f"rpc{servers}", REMOTE.format(tracker=f.address),
                                             args.trials)
    (args.workdir / "summary.json").write_text(json.dumps(results, indent=1))
    print(f"{'setup':<8} {'s/trial':>8} {'tuning s':>9} {'untuned ms':>11} {'tuned ms':>9} "
          f"{'untuned item s':>15} {'tuned item s':>13}  clock")
    for name, r in results.items():
        u, t = r["untuned"], r["tuned"]
        print(f"{name:<8} {t['seconds_per_trial']:>8.3f} {t['tuning_s']:>9.1f} {u['median_ms']:>11.3f} "
              f"{t['median_ms']:>9.3f} {u['wall_s'] or 0:>15.2f} {t['wall_s'] or 0:>13.2f}  {u['clock']}")


if __name__ == "__main__":
    main()

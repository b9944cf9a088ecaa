"""The nightly workflow keeps its history on a results branch: its git steps, run for real against a local origin.

The steps that check out and commit ``bench-results`` are taken from
.github/workflows/nightly.yml and run by bash with the variables GitHub would
set; between them a results file stands in for the night's run. Three nights:
the first creates the branch and gates without history, the later ones find
the earlier files and must gate with --require-history; a repository whose
branch was deleted starts over with a warning.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO

WORKFLOW = REPO / ".github" / "workflows" / "nightly.yml"


def step(name: str) -> str:
    job: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())["jobs"]["bench"]
    [script] = [s["run"] for s in job["steps"] if s.get("name", "").startswith(name)]
    return str(script)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def night(number: int, origin: Path, tmp: Path) -> tuple[str, str]:
    """One night in a fresh clone: the checkout step, a results file, the commit step. Returns GATE_HISTORY and
    the checkout step's output."""
    work = tmp / f"night{number}"
    git("clone", "-q", str(origin), str(work), cwd=tmp)
    env_file = tmp / f"env{number}"
    env_file.write_text("")
    job: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())["jobs"]["bench"]
    env = {**os.environ, "GITHUB_ENV": str(env_file), "GITHUB_SHA": f"{number:040d}",
           "RESULTS_BRANCH": job["env"]["RESULTS_BRANCH"], "HISTORY": job["env"]["HISTORY"],
           "GIT_CONFIG_GLOBAL": str(tmp / "gitconfig")}
    checkout = subprocess.run(["bash", "-eo", "pipefail", "-c", step("Check out the results history")], cwd=work,
                              env=env, capture_output=True, text=True)
    assert checkout.returncode == 0, checkout.stderr
    history = work / env["HISTORY"]
    assert history.is_dir()
    (history / f"{number}-1.json").write_text("{}")
    commit = step("Commit the night's results").replace("${{ github.run_id }}", str(number))
    commit = commit.replace("${{ github.run_attempt }}", "1")
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", commit], cwd=work, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    gate = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return gate.get("GATE_HISTORY", ""), checkout.stdout + checkout.stderr


def test_history_survives_on_the_results_branch(tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    seed = tmp_path / "seed"
    git("init", "-q", "-b", "main", str(seed), cwd=tmp_path)
    (seed / "README.md").write_text("code\n")
    git("add", ".", cwd=seed)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "code", cwd=seed)
    git("push", "-q", str(origin), "main", cwd=seed)

    first, out = night(1, origin, tmp_path)
    assert first == "" and "starts the history" in out
    assert night(2, origin, tmp_path)[0] == "--require-history"
    assert night(3, origin, tmp_path)[0] == "--require-history"
    files = git("ls-tree", "-r", "--name-only", "bench-results", cwd=origin).split()
    assert files == ["history/1-1.json", "history/2-1.json", "history/3-1.json"]  # results only, no code
    assert "main" in git("branch", cwd=origin) and "README.md" in git("ls-tree", "--name-only", "main", cwd=origin)

    git("branch", "-D", "bench-results", cwd=origin)  # someone deleted it: the next night says so and starts over
    again, out = night(4, origin, tmp_path)
    assert again == "" and "starts the history" in out


def choose(tmp: Path, **inputs: str) -> tuple[int, dict[str, str], str]:
    """The workflow's "Choose the TVM under test" step with these dispatch inputs: its exit status, what it wrote
    to GITHUB_ENV, and its output."""
    env_file = tmp / "choose-env"
    env_file.write_text("")
    env = {**os.environ, "GITHUB_ENV": str(env_file), "TVM_VERSION": inputs.get("tvm_version", ""),
           "TVM_REF": inputs.get("tvm_ref", ""), "TVM_REPO": inputs.get("tvm_repo", "apache/tvm")}
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", step("Choose the TVM under test")], cwd=tmp, env=env,
                          capture_output=True, text=True)
    written = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return done.returncode, written, done.stdout + done.stderr


def test_a_dispatch_chooses_the_tvm_under_test(tmp_path: Path) -> None:
    """A scheduled night measures the harness's own TVM; a dispatch names a release or a git ref of a source
    build, runs it as a trial (not kept in the history nor accepted as baselines), and the pytest options match
    what --bench-tvm reads."""
    from bench.options import tvm_spec

    assert choose(tmp_path)[:2] == (0, {"TVM_ARGS": "", "TVM_TRIAL": ""})
    code, env, _ = choose(tmp_path, tvm_version="0.26.0")
    assert code == 0 and env == {"TVM_ARGS": "--bench-tvm 0.26.0", "TVM_TRIAL": "release 0.26.0"}
    assert tvm_spec(env["TVM_ARGS"].split()[1]).version == "0.26.0"
    code, env, _ = choose(tmp_path, tvm_ref="v0.27/fix")
    assert code == 0 and env["TVM_ARGS"] == f"--bench-tvm v0.27_fix={tmp_path}/tvm-src"
    assert env["TVM_TRIAL"] == "apache/tvm@v0.27/fix, built from source"
    code, _, out = choose(tmp_path, tvm_version="0.26.0", tvm_ref="main")
    assert code == 1 and "give tvm_version or tvm_ref, not both" in out
    job: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())["jobs"]["bench"]
    conditions = {s.get("name", ""): s.get("if", "") for s in job["steps"]}
    assert "env.TVM_TRIAL == ''" in conditions["Commit the night's results to bench-results"]
    assert "env.TVM_TRIAL == ''" in conditions["Accept the night's builds as the baselines (the gate passed)"]
    assert "$TVM_ARGS" in step("Run the nightly suite")

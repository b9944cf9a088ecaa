"""Check stage: do two runtimes agree on the answer?

Top-k with near-ties. Independent builds differ in the last bits (TVM.md:
max abs softmax difference up to 1.7e-5 between TVM and ONNX Runtime), and
adjacent probabilities 6e-5 apart do occur, so an exact-order comparison fails
spuriously. The rule: every class of A's top-k must have, in B, a probability
at least B's k-th largest minus ``tolerance``, and the same with A and B
swapped. Two classes closer than ``tolerance`` may swap; a class that really
leaves the top-k cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.suite.schema import CheckSpec


@dataclass(frozen=True)
class Ranked:
    """One row's top-k: class index, label and probability."""

    classes: list[int]
    probs: list[float]
    labels: list[str] | None = None

    def as_list(self) -> list[dict[str, Any]]:
        return [{"class": c, "prob": round(p, 6), **({"label": self.labels[i]} if self.labels else {})}
                for i, (c, p) in enumerate(zip(self.classes, self.probs, strict=True))]

    def describe(self) -> str:
        names = self.labels or [str(c) for c in self.classes]
        return ", ".join(f"{c}:{n}={p:.5f}" if self.labels else f"{c}={p:.5f}"
                         for c, n, p in zip(self.classes, names, self.probs, strict=True))


@dataclass(frozen=True)
class CheckResult:
    """One comparison of two builds' outputs: whether they agree, and if not, a one-line why."""

    ok: bool
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def softmax(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def as_rows(output: np.ndarray, spec: CheckSpec) -> np.ndarray:
    """(positions, classes) probabilities: the last axis is the class axis."""
    arr = np.asarray(output)
    rows = arr.reshape(-1, arr.shape[-1]) if arr.ndim else arr.reshape(1, 1)
    return softmax(rows) if spec.softmax else rows.astype(np.float64)


def top_k(row: np.ndarray, k: int, labels: list[str] | None = None) -> Ranked:
    k = min(k, row.shape[-1])
    idx = np.argsort(-row, kind="stable")[:k]
    names = [labels[i] if labels and i < len(labels) else str(i) for i in idx] if labels else None
    return Ranked([int(i) for i in idx], [float(row[i]) for i in idx], names)


def _contained(a: np.ndarray, b: np.ndarray, k: int, tol: float) -> bool:
    """Every class of a's top-k scores in b at least b's k-th largest minus tol."""
    k = min(k, a.shape[-1])
    kth_b = np.partition(b, -k)[-k]
    top_a = np.argsort(-a, kind="stable")[:k]
    return bool(np.all(b[top_a] >= kth_b - tol))


def compare_topk(a: np.ndarray, b: np.ndarray, spec: CheckSpec, names: tuple[str, str],
                 labels: list[str] | None = None) -> CheckResult:
    """Compare two outputs row by row (every position of a sequence output)."""
    if a.shape != b.shape:
        return CheckResult(False, f"output shapes differ: {names[0]} {a.shape} vs {names[1]} {b.shape}")
    ra, rb = as_rows(a, spec), as_rows(b, spec)
    for pos in range(ra.shape[0]):
        if not (_contained(ra[pos], rb[pos], spec.top_k, spec.tolerance)
                and _contained(rb[pos], ra[pos], spec.top_k, spec.tolerance)):
            ta, tb = top_k(ra[pos], spec.top_k, labels), top_k(rb[pos], spec.top_k, labels)
            where = f" at position {pos}" if ra.shape[0] > 1 else ""
            return CheckResult(False, f"top-{spec.top_k} of {names[0]} and {names[1]} disagree{where} "
                                  f"(tolerance {spec.tolerance:g}):\n  {names[0]}: {ta.describe()}\n"
                                  f"  {names[1]}: {tb.describe()}",
                           {"position": pos, names[0]: ta.as_list(), names[1]: tb.as_list()})
    return CheckResult(True)


def compare_allclose(a: np.ndarray, b: np.ndarray, spec: CheckSpec, names: tuple[str, str]) -> CheckResult:
    """For dense outputs (segmentation maps, embeddings) where top-k means nothing."""
    if a.shape != b.shape:
        return CheckResult(False, f"output shapes differ: {names[0]} {a.shape} vs {names[1]} {b.shape}")
    if np.allclose(a, b, rtol=spec.rtol, atol=spec.atol):
        return CheckResult(True)
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    bad = int(np.sum(diff > spec.atol + spec.rtol * np.abs(b)))
    return CheckResult(False, f"{names[0]} and {names[1]} differ beyond rtol={spec.rtol:g}, atol={spec.atol:g}: "
                          f"{bad} of {diff.size} values, max abs diff {diff.max():.3g} at {tuple(map(int, worst))} "
                          f"({a[worst]!r} vs {b[worst]!r})",
                   {"mismatched": bad, "max_abs_diff": float(diff.max())})


def compare(a: np.ndarray, b: np.ndarray, spec: CheckSpec, names: tuple[str, str],
            labels: list[str] | None = None) -> CheckResult:
    if spec.mode == "allclose":
        return compare_allclose(a, b, spec, names)
    return compare_topk(a, b, spec, names, labels)


def summary_topk(output: np.ndarray, spec: CheckSpec, labels: list[str] | None) -> list[dict[str, Any]]:
    """The first row's top-k for the record (classes, labels, probabilities)."""
    if spec.mode != "topk":
        return []
    return top_k(as_rows(output, spec)[0], spec.top_k, labels).as_list()


def compare_outputs(a: list[np.ndarray], b: list[np.ndarray], outputs: tuple[tuple[int, str], ...],
                    spec: CheckSpec, names: tuple[str, str], labels: list[str] | None = None) -> CheckResult:
    """Compare each checked output (graph index, name) of two runs; the first disagreement decides."""
    for index, name in outputs:
        verdict = compare(a[index], b[index], spec, names, labels)
        if not verdict.ok:
            if len(outputs) == 1:
                return verdict
            return CheckResult(False, f"output {name!r}: {verdict.message}", {"output": name, **verdict.details})
    return CheckResult(True)

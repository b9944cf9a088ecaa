"""Command-line value types shared by the pytest options and ``python -m bench``: one rule, one message each."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.suite.schema import TvmSpec


def positive_int(value: str) -> int:
    """A whole number, 1 or more (runs, repeats)."""
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more, got {value!r}")
    return int(value)


def non_negative_int(value: str) -> int:
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {value!r}")
    return int(value)


def positive_seconds(value: str) -> float:
    try:
        out = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if not out > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return out


def fraction(value: str) -> float:
    """0.05 or 5%."""
    try:
        out = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.05 or 5%, got {value!r}") from None
    if not 0 <= out < 10:
        raise argparse.ArgumentTypeError(f"fraction out of range (0 to 10): {value!r}")
    return out


def tvm_spec(value: str) -> TvmSpec:
    """``[NAME=]VERSION`` (a release, e.g. ``0.26.0``) or ``[NAME=]PATH`` (a build's folder)."""
    import re
    from pathlib import Path

    from bench.suite.schema import TVM_VERSION, TvmSpec

    name, sep, what = value.partition("=")
    if not sep:
        name, what = "", value
    if name and not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise argparse.ArgumentTypeError(f"a TVM's name uses letters, digits and _.+- only, got {name!r}")
    if re.fullmatch(TVM_VERSION, what):
        return TvmSpec(name=name or None, version=what)
    if not Path(what).is_dir():
        raise argparse.ArgumentTypeError(f"expected a TVM version such as 0.26.0 or a build's folder, got {what!r} "
                                         "(no such folder)")
    return TvmSpec(name=name or None, path=str(Path(what).resolve()))

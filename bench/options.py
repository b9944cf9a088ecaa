"""Command-line value types shared by the pytest options and ``python -m bench``: one rule, one message each."""

from __future__ import annotations

import argparse


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

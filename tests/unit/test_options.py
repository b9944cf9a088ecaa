"""The value types every command-line option of the harness shares."""

from __future__ import annotations

import argparse

import pytest

from bench.options import fraction, non_negative_int, positive_int, positive_seconds


@pytest.mark.parametrize(("parse", "text", "value"), [
    (positive_int, "3", 3), (non_negative_int, "0", 0), (positive_seconds, "0.5", 0.5),
    (fraction, "0.05", 0.05), (fraction, "5%", 0.05)])
def test_accepted(parse: object, text: str, value: float) -> None:
    assert parse(text) == pytest.approx(value)  # type: ignore[operator]


@pytest.mark.parametrize(("parse", "text", "message"), [
    (positive_int, "0", "expected a whole number, 1 or more, got '0'"),
    (positive_int, "2.5", "expected a whole number, 1 or more, got '2.5'"),
    (non_negative_int, "-1", "expected a whole number, 0 or more, got '-1'"),
    (positive_seconds, "0", "expected a positive number of seconds, got '0'"),
    (positive_seconds, "nan", "expected a positive number of seconds, got 'nan'"),
    (fraction, "five", "expected a fraction like 0.05 or 5%, got 'five'"),
    (fraction, "2000%", "fraction out of range (0 to 10): '2000%'")])
def test_refused_with_the_rule(parse: object, text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as err:
        parse(text)  # type: ignore[operator]
    assert str(err.value) == message

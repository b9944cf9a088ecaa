"""Split one nightly run over several machines, and put it back together.

``--bench-shard i/n`` keeps every n-th (suite, model, target) group of
items, counted from i in collection order, so the untuned, ort and tuned
items of one model on one target always land on the same shard (the tuned
item's speedup and check need its untuned peer). Every shard writes its own
JSON stamped with the run's id; history merges the shards of one id into
one run, so a shard that never reported shows up as its cases missing.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
_SPEC = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"2/3"`` -> Shard(2, 3); ValueError with the expected form otherwise."""
    match = _SPEC.match(text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ValueError(f"expected I/N with 1 <= I <= N, such as 1/3 (got {text!r})")
    return Shard(int(match[1]), int(match[2]))


def select(items: Sequence[T], groups: Sequence[Hashable], shard: Shard) -> tuple[list[T], list[T]]:
    """(kept, dropped): items whose group is the ``shard.index``-th of every ``shard.count`` groups."""
    order: dict[Hashable, int] = {}
    for group in groups:
        order.setdefault(group, len(order))
    kept: list[T] = []
    dropped: list[T] = []
    for item, group in zip(items, groups, strict=True):
        (kept if order[group] % shard.count == shard.index - 1 else dropped).append(item)
    return kept, dropped

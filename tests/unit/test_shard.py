"""--bench-shard: deterministic, whole (model, target) groups, every case in exactly one shard."""

from __future__ import annotations

import pytest

from bench.plugin.shard import Shard, parse_shard, select


def test_parse_accepts_i_of_n_and_refuses_the_rest() -> None:
    """I/N with 1 <= I <= N parses; anything else says what is expected."""
    assert parse_shard("2/3") == Shard(2, 3)
    for bad in ("0/3", "4/3", "1-3", "x/2", ""):
        with pytest.raises(ValueError, match="expected I/N"):
            parse_shard(bad)


def test_shards_partition_by_group_round_robin() -> None:
    """Items of one group stay together; groups are dealt round-robin; the union is everything, once."""
    groups = ["m1", "m1", "m1", "m2", "m2", "m3", "m4", "m4"]
    items = list(range(len(groups)))
    kept = [select(items, groups, Shard(i, 3))[0] for i in (1, 2, 3)]
    assert kept == [[0, 1, 2, 6, 7], [3, 4], [5]]
    assert sorted(x for k in kept for x in k) == items
    assert select(items, groups, Shard(1, 1)) == (items, [])

"""restore.rerouted: which differing counts are rows a hash-partitioned tree routed to
another of its leaves (the tree's total as recorded), and which are not."""

from __future__ import annotations

import pytest

from respaldo.operations.restore import rerouted

pytestmark = pytest.mark.unit

LEAVES = {"s.t_0": "s.t", "s.t_1": "s.t", "s.t_2": "s.t", "s.u_0": "s.u", "s.u_1": "s.u"}
RECORDED = {"s.t_0": 40, "s.t_1": 10, "s.t_2": 10, "s.u_0": 5, "s.u_1": 5, "s.other": 7}


def test_rows_moved_between_leaves_of_one_tree_are_the_backup_s() -> None:
    actual = {**RECORDED, "s.t_0": 10, "s.t_1": 40}
    assert rerouted(RECORDED, actual, LEAVES, {"s.t_0", "s.t_1"}) == {"s.t_0", "s.t_1", "s.t_2"}


def test_a_tree_whose_total_differs_is_not() -> None:
    actual = {**RECORDED, "s.t_0": 10, "s.t_1": 39}
    assert rerouted(RECORDED, actual, LEAVES, {"s.t_0", "s.t_1"}) == set()


def test_a_missing_leaf_counts_as_empty_and_a_table_outside_any_tree_never_passes() -> None:
    actual = {k: v for k, v in RECORDED.items() if k != "s.u_1"} | {"s.u_0": 10, "s.other": 8}
    assert rerouted(RECORDED, actual, LEAVES, {"s.u_0", "s.u_1", "s.other"}) == {"s.u_0", "s.u_1"}


def test_a_leaf_the_backup_did_not_count_leaves_its_tree_unchecked() -> None:
    recorded = {k: v for k, v in RECORDED.items() if k != "s.t_2"}
    actual = {**RECORDED, "s.t_0": 10, "s.t_1": 40}
    assert rerouted(recorded, actual, LEAVES, {"s.t_0", "s.t_1"}) == set()

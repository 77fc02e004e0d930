"""The fixed summation tree of gdcore._tree: any placement of the chunks, the same bits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gdcore._tree import Partial, held_nodes, levels, root


def reference_sum(values):
    """The tree's order written out plainly: pairs of neighbours, level after level."""
    level = list(values)
    while len(level) > 1:
        level = [level[i] + level[i + 1] if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


def leaves_of(values):
    return {i: Partial((v, np.array([v, -v]))) for i, v in enumerate(values)}


@pytest.mark.bitwise
@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=70),
       st.data())
def test_any_placement_gives_the_reference_bits(values, data):
    n = len(values)
    owner = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    leaves = leaves_of(values)
    nodes = {}
    for worker in set(owner):
        held = {i: leaves[i] for i in range(n) if owner[i] == worker}
        part = held_nodes(held, n)
        assert not set(part) & set(nodes)  # disjoint parts of the tree
        nodes.update(part)
    total = root(nodes, n)
    expected = reference_sum(values)
    assert total.sums[0] == expected  # same bits, not only close
    assert np.array_equal(total.sums[1], np.array([expected, reference_sum([-v for v in values])]))


def test_the_order_is_not_left_to_right():
    # 1e16 + 1 + 1 + ... : left to right loses every 1; the tree adds them in pairs first.
    values = [1e16, 1.0, 1.0, 1.0]
    assert root(held_nodes(leaves_of(values), 4), 4).sums[0] == reference_sum(values)
    assert reference_sum(values) == 1e16 + 2.0


def test_one_holder_of_everything_returns_the_root_node():
    nodes = held_nodes(leaves_of([1.0, 2.0, 3.0]), 3)
    assert list(nodes) == [(levels(3), 0)]


def test_firsts_come_from_the_lowest_chunk_that_has_one():
    leaves = {0: Partial((1.0,), (None,)), 1: Partial((2.0,), ("b",)),
              2: Partial((3.0,), ("c",))}
    assert root({**held_nodes({0: leaves[0], 2: leaves[2]}, 3),
                 **held_nodes({1: leaves[1]}, 3)}, 3).firsts == ("b",)


def test_a_missing_chunk_is_an_error():
    with pytest.raises(KeyError, match="chunk 1"):
        root(held_nodes({0: Partial((1.0,))}, 2), 2)


@pytest.mark.parametrize("n, expected", [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (64, 6)])
def test_levels(n, expected):
    assert levels(n) == expected

"""The combine tree fixes the order of floating-point sums, whoever holds which partitions."""

import itertools

import numpy as np
import pytest

from sparkgd.core.tree import CombineTree


def _add(a, b):
    return b if a is None else a if b is None else a + b


def floats(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=8) * 10.0 ** rng.integers(-8, 9, size=8) for _ in range(n)]


def by_hand(values, fan_in):
    """The tree's order written out: left folds of contiguous runs of ``fan_in``, level by level."""
    level = list(values)
    while len(level) > 1:
        level = [_fold(level[i:i + fan_in]) for i in range(0, len(level), fan_in)]
    return level[0]


def _fold(xs):
    acc = None
    for x in xs:
        acc = _add(acc, x)
    return acc


@pytest.mark.parametrize("p,depth,fan_in,height", [(1, 2, 2, 0), (2, 2, 2, 1), (9, 2, 3, 2), (10, 2, 4, 2),
                                                     (32, 2, 6, 2), (32, 3, 4, 3), (7, 1, 7, 1)])
def test_shape_follows_tree_aggregate_scale(p, depth, fan_in, height):
    tree = CombineTree(p, depth)
    assert (tree.fan_in, tree.height) == (fan_in, height)
    assert tree.width(tree.height) == 1 and tree.width(0) == p


@pytest.mark.parametrize("p,depth", [(9, 2), (13, 2), (32, 3), (5, 1)])
def test_any_split_of_the_partitions_gives_the_same_bits(p, depth):
    tree = CombineTree(p, depth)
    values = floats(p)
    want = by_hand(values, tree.fan_in)
    rng = np.random.default_rng(p)
    for tasks in (1, 2, 3, p):
        owner = rng.integers(0, tasks, size=p)  # any assignment, contiguous or not
        pieces = {}
        for t in range(tasks):
            pieces.update(tree.pieces({q: values[q] for q in range(p) if owner[q] == t}, _add))
        assert tree.combine(pieces, _add).tobytes() == want.tobytes()


def test_the_order_matters_for_these_floats():
    # so that the test above could fail: a plain left fold gives other bits
    values = floats(9)
    assert _fold(values).tobytes() != by_hand(values, CombineTree(9, 2).fan_in).tobytes()


def test_a_holder_of_whole_subtrees_sends_them_combined():
    tree = CombineTree(9, 2)  # groups [0,1,2] [3,4,5] [6,7,8]
    pieces = tree.pieces({q: float(q) for q in (0, 1, 2, 4, 6, 7, 8)}, _add)
    assert set(pieces) == {(1, 0), (0, 4), (1, 2)}


def test_pieces_must_cover_every_partition_once():
    tree = CombineTree(4, 2)
    with pytest.raises(ValueError, match="exactly once"):
        tree.combine({(0, 0): 1.0, (0, 1): 1.0, (0, 2): 1.0}, _add)
    with pytest.raises(ValueError, match="exactly once"):
        tree.combine({(1, 0): 1.0, (0, 1): 1.0, (1, 1): 1.0}, _add)
    with pytest.raises(ValueError, match="no node"):
        tree.combine({(5, 0): 1.0}, _add)
    assert list(itertools.chain(tree.leaves((1, 0)), tree.leaves((1, 1)))) == [0, 1, 2, 3]

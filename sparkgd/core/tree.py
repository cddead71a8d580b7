"""The fixed combine tree of a ``treeAggregate`` over ``P`` partitions: one order, whatever runs it.

Floating-point addition is not associative, so partial sums give the same bits only when they
are combined in the same order. sparkgd fixes that order by ``P`` and the depth alone: the
partitions are the leaves of a complete ``s``-ary tree over contiguous index ranges, with fan-in

.. math:: s = \\max(2, \\lceil P^{1/\\text{depth}} \\rceil)

(``treeAggregate``'s ``scale``). Node ``i`` of level ``k`` covers partitions
``[i s^k, (i+1) s^k)`` and its value is the left fold of its children in index order; the root
is the level-``L`` node with ``s^L >= P``. A Spark shuffle level, a resident task holding any
set of partitions, or a single process computes the same nodes, so every engine and any
number of tasks give the same result, bit for bit.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

Node = tuple[int, int]  # (level, index)
Comb = Callable[[Any, Any], Any]


class CombineTree:
    """The tree for ``num_partitions`` leaves and ``depth`` (see the module docstring)."""

    def __init__(self, num_partitions: int, depth: int) -> None:
        if num_partitions < 1 or depth < 1:
            raise ValueError(f"need num_partitions >= 1 and depth >= 1, got {num_partitions}, {depth}")
        self.num_partitions = num_partitions
        self.fan_in = max(2, int(math.ceil(num_partitions ** (1.0 / depth))))
        self.height = 0
        while self.fan_in ** self.height < num_partitions:
            self.height += 1

    @property
    def root(self) -> Node:
        return self.height, 0

    def width(self, level: int) -> int:
        """How many nodes level ``level`` has."""
        return -(-self.num_partitions // self.fan_in ** level)

    def leaves(self, node: Node) -> range:
        level, index = node
        span = self.fan_in ** level
        return range(index * span, min((index + 1) * span, self.num_partitions))

    def parent(self, node: Node) -> Node:
        return node[0] + 1, node[1] // self.fan_in

    def children(self, node: Node) -> range:
        level, index = node
        return range(index * self.fan_in, min((index + 1) * self.fan_in, self.width(level - 1)))

    def value(self, node: Node, pieces: Mapping[Node, Any], comb: Comb) -> Any:
        """The node's value from ``pieces``: known node values that, between them, cover its leaves."""
        if node in pieces:
            return pieces[node]
        if node[0] == 0:
            raise KeyError(f"partition {node[1]} is missing from the pieces")
        acc = None
        for c in self.children(node):
            acc = comb(acc, self.value((node[0] - 1, c), pieces, comb))
        return acc

    def pieces(self, leaves: Mapping[int, Any], comb: Comb) -> dict[Node, Any]:
        """The largest whole subtrees of the given leaf values, combined: what a holder of ``leaves`` sends."""
        held = set(leaves)
        out: dict[Node, Any] = {}
        known = {(0, p): v for p, v in leaves.items()}

        def visit(node: Node) -> None:
            span = self.leaves(node)
            if all(p in held for p in span):
                out[node] = self.value(node, known, comb)
            elif node[0] > 0 and any(p in held for p in span):
                for c in self.children(node):
                    visit((node[0] - 1, c))

        visit(self.root)
        return out

    def check_cover(self, nodes: Iterable[Node]) -> None:
        """Raise ``ValueError`` unless the nodes' leaf ranges cover every partition exactly once."""
        seen = [0] * self.num_partitions
        for node in nodes:
            if not (0 <= node[0] <= self.height and 0 <= node[1] < self.width(node[0])):
                raise ValueError(f"no node {node} in a tree of {self.num_partitions} partitions")
            for p in self.leaves(node):
                seen[p] += 1
        if any(c != 1 for c in seen):
            raise ValueError("the pieces do not cover every partition exactly once")

    def combine(self, pieces: Mapping[Node, Any], comb: Comb) -> Any:
        """The root's value from pieces that cover every partition exactly once."""
        self.check_cover(pieces)
        return self.value(self.root, pieces, comb)

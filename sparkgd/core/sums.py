r"""The sums of one pass over some rows, as Spark ML's aggregators name them, and their one encoding.

MLlib's ``treeAggregate`` in ``GradientDescent`` carries ``(gradient sum, loss sum, count)``;
sparkgd adds the rows' weight sum and, with held-out validation, the loss and weight sums of the
held-out rows. :func:`merge` adds two of them field by field (``None`` is the empty value, as
when no row is sampled), in the order the :class:`~sparkgd.core.tree.CombineTree` gives, so
every path computes the same bits. :func:`encode` and :func:`decode` are the one binary form
every path moves them in: the resident channel, the per-iteration Spark job and Spark Connect.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

_HEAD = struct.Struct("<Bqdddd")  # present, rows, loss, weight, held-out loss, held-out weight


class Sums(NamedTuple):
    """Sums over the sampled rows of some blocks (``gradient`` a float64 vector)."""

    gradient: np.ndarray
    loss: float
    rows: int
    weight: float
    held_loss: float = 0.0
    held_weight: float = 0.0


def merge(a: Sums | None, b: Sums | None) -> Sums | None:
    """``a + b`` field by field; ``None`` is the empty value."""
    if a is None:
        return b
    if b is None:
        return a
    return Sums(a.gradient + b.gradient, a.loss + b.loss, a.rows + b.rows, a.weight + b.weight,
                a.held_loss + b.held_loss, a.held_weight + b.held_weight)


def size(num_weights: int) -> int:
    """The bytes of an encoded :class:`Sums` of ``num_weights`` gradient entries (at most)."""
    return _HEAD.size + 8 * num_weights


def encode(s: Sums | None) -> bytes:
    """A fixed header and the gradient's little-endian float64 bytes; ``None`` is the header alone."""
    if s is None:
        return _HEAD.pack(0, 0, 0.0, 0.0, 0.0, 0.0)
    head = _HEAD.pack(1, int(s.rows), float(s.loss), float(s.weight), float(s.held_loss), float(s.held_weight))
    return head + np.ascontiguousarray(s.gradient, dtype="<f8").tobytes()


def decode(buf: bytes | bytearray | memoryview, num_weights: int, offset: int = 0) -> tuple[Sums | None, int]:
    """The :class:`Sums` encoded at ``offset`` in ``buf`` and the offset after it; every size is checked
    against ``num_weights`` (``ValueError``)."""
    if offset + _HEAD.size > len(buf):
        raise ValueError("sums shorter than their header")
    present, rows, loss, weight, held_loss, held_weight = _HEAD.unpack_from(buf, offset)
    offset += _HEAD.size
    if present == 0:
        return None, offset
    if present != 1:
        raise ValueError("sums with a bad flag")
    end = offset + 8 * num_weights
    if end > len(buf):
        raise ValueError("sums shorter than their gradient")
    g = np.frombuffer(buf, dtype="<f8", count=num_weights, offset=offset).astype(np.float64)
    return Sums(g, loss, rows, weight, held_loss, held_weight), end

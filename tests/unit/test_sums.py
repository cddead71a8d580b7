"""The sums of a fold: one merge, one encoding, the same bits on every path."""

import numpy as np
import pytest

from sparkgd.core import sums
from sparkgd.core.sums import Sums, merge


def _some(seed, d=6):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=d) * 10.0 ** rng.integers(-8, 9, size=d)
    g[0] = -0.0
    return Sums(g, float(rng.normal() * 1e8), int(rng.integers(1, 1000)), float(rng.random() * 1e3),
                float(rng.normal()), float(rng.random()))


def _bits(s):
    return None if s is None else (s.gradient.tobytes(), *(np.float64(v).tobytes() for v in s[1:]))


def test_encode_then_decode_gives_the_same_bits_and_reports_its_end():
    s = _some(0)
    data = b"xx" + sums.encode(s) + sums.encode(None)
    back, end = sums.decode(data, 6, offset=2)
    assert _bits(back) == _bits(s) and back.rows == s.rows and isinstance(back.rows, int)
    assert np.signbit(back.gradient[0])  # -0.0 survives
    assert back.gradient.flags.writeable and back.gradient.dtype == np.float64  # a copy, not a view of the frame
    none, after = sums.decode(data, 6, offset=end)
    assert none is None and after == len(data)
    assert len(sums.encode(s)) == sums.size(6)


def test_decode_refuses_what_does_not_fit():
    data = sums.encode(_some(1))
    for bad, num_weights in ((data[:-1], 6), (data[:10], 6), (data, 7), (b"\x02" + data[1:], 6)):
        with pytest.raises(ValueError):
            sums.decode(bad, num_weights)


def test_merge_adds_field_by_field_in_the_order_given():
    a, b, c = _some(2), _some(3), _some(4)
    ab = merge(a, b)
    np.testing.assert_array_equal(ab.gradient, a.gradient + b.gradient)
    assert ab[1:] == (a.loss + b.loss, a.rows + b.rows, a.weight + b.weight, a.held_loss + b.held_loss,
                      a.held_weight + b.held_weight)
    assert merge(None, a) is a and merge(a, None) is a and merge(None, None) is None
    # the grouping shows in the bits (so a tree's order is what the result depends on)
    assert _bits(merge(merge(a, b), c)) != _bits(merge(a, merge(b, c)))

import math

import numpy as np
import pytest

from sparkgd.core import _fdlibm
from sparkgd.core.sampling import (
    java_random_longs,
    murmur3_32,
    next_doubles,
    partition_seed,
    sample_positions,
    xorshift_initial_state,
    xorshift_states,
)


def _scalar_states(state, n):
    out, m = [], (1 << 64) - 1
    for _ in range(n):
        state ^= (state << 21) & m
        state ^= state >> 35
        state ^= (state << 4) & m
        out.append(state)
    return out


def test_java_random_matches_known_values():
    # new java.util.Random(42).nextLong(), twice; new Random(0).nextLong()
    assert java_random_longs(42, 2) == [-5025562857975149833, -5843495416241995736]
    assert java_random_longs(0, 1) == [-4962768465676381896]


def test_murmur3_reference_vectors():
    # Published MurmurHash3_x86_32 test vectors.
    assert murmur3_32(b"", 0) == 0
    assert murmur3_32(b"", 1) == 0x514E28B7
    assert murmur3_32(b"\xff\xff\xff\xff", 0) == 0x76293B50
    assert murmur3_32(b"\x21\x43\x65\x87", 0x5082EDEE) == 0x2362F9DE
    assert murmur3_32(b"\x21\x43\x65", 0) == 0x7E4A8634


@pytest.mark.parametrize("n", [1, 2, 3, 63, 64, 65, 1000, 4097, 50_000])
def test_vectorised_xorshift_equals_the_recurrence(n):
    s = xorshift_initial_state(partition_seed(7, 3))
    assert [int(v) for v in xorshift_states(s, n)] == _scalar_states(s, n)


def test_next_doubles_continue_the_stream():
    s = xorshift_initial_state(123)
    u_all, _ = next_doubles(s, 100)
    u1, s1 = next_doubles(s, 37)
    u2, _ = next_doubles(s1, 63)
    np.testing.assert_array_equal(u_all, np.concatenate([u1, u2]))
    assert ((u_all >= 0) & (u_all < 1)).all()


@pytest.mark.parametrize("fraction", [0.9, 0.5, 0.41, 0.4, 0.1, 0.01, 1e-4])
def test_positions_are_sorted_unique_in_range_and_near_the_fraction(fraction):
    n = 200_000
    pos = sample_positions(n, fraction, 99)
    assert (np.diff(pos) > 0).all() and pos[0] >= 0 and pos[-1] < n
    expected = n * fraction
    assert abs(len(pos) - expected) < 6 * math.sqrt(expected) + 2


def test_edge_fractions_and_empty_partitions():
    assert sample_positions(10, 1.0, 1) == slice(None)
    assert len(sample_positions(10, 0.0, 1)) == 0
    assert len(sample_positions(0, 0.3, 1)) == 0
    assert len(sample_positions(0, 0.7, 1)) == 0


def test_gap_sampling_cost_follows_the_rows_kept_not_skipped():
    # 10^12 rows, fraction 1e-9: about 1000 rows kept. An O(rows) sampler could not return.
    pos = sample_positions(10**12, 1e-9, 5)
    assert 800 < len(pos) < 1200
    assert pos[-1] < 10**12


def test_gap_sampling_draws_one_uniform_per_kept_row():
    # The i-th kept row is reached after the gaps given by the first i draws.
    n, f, seed = 5000, 0.05, 17
    pos = sample_positions(n, f, seed)
    u, _ = next_doubles(xorshift_initial_state(seed), len(pos) + 1)
    gaps = np.floor(np.log(np.maximum(u, 5e-11)) / _fdlibm.log1p(-f)).astype(int)
    expect = np.cumsum(gaps + 1) - 1
    np.testing.assert_array_equal(pos, expect[expect < n])


@pytest.mark.parametrize("x", [-0.4, -0.3, -0.2929, -0.1, -1e-3, -1e-9, -1e-20, 0.0, 1e-5, 0.3, 0.5, 3.0, 1e300])
def test_fdlibm_log1p_is_within_an_ulp_of_libm(x):
    assert _fdlibm.log1p(x) == pytest.approx(math.log1p(x), rel=3e-16, abs=0)


def test_fdlibm_log1p_special_values():
    assert _fdlibm.log1p(-1.0) == -math.inf
    assert math.isnan(_fdlibm.log1p(-2.0))
    assert _fdlibm.log1p(math.inf) == math.inf

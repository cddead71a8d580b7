"""Spark's JVM ``RDD.sample(withReplacement=False, fraction, seed)``, reproduced in numpy.

``sample`` gives partition ``p`` the ``p``-th ``nextLong()`` of ``java.util.Random(seed)``
(``PartitionwiseSampledRDD``); each partition then draws from an ``XORShiftRandom`` seeded
with it (``BernoulliSampler``):

* ``fraction >= 1`` keeps every row, ``fraction <= 0`` none;
* ``0.4 < fraction < 1`` keeps row ``j`` iff its own uniform ``u_j <= fraction``;
* ``fraction <= 0.4`` uses gap sampling: a draw ``u`` skips
  ``k = int(log(max(u, 5e-11)) / log1p(-fraction))`` rows and keeps the next one.

The XORShift recurrence is linear over GF(2), so the stream is generated in parallel lanes
whose starting states come from 64x64 bit-matrix powers; the cost grows with the number of
draws, which for gap sampling is the number of rows kept, not the number skipped.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from sparkgd.core._fdlibm import log1p as java_log1p

_MASK64 = (1 << 64) - 1
_MASK32 = 0xFFFFFFFF
_MAX_GAP_FRACTION = 0.4  # RandomSampler.defaultMaxGapSamplingFraction
_RNG_EPSILON = 5e-11  # RandomSampler.rngEpsilon
_INT_MAX = 2**31 - 1
_DOUBLE_UNIT = 2.0**-53


def java_random_longs(seed: int, count: int) -> list[int]:
    """The first ``count`` values of ``java.util.Random(seed).nextLong()``, as signed ints."""
    state = (seed ^ 0x5DEECE66D) & ((1 << 48) - 1)

    def next32() -> int:
        nonlocal state
        state = (state * 0x5DEECE66D + 0xB) & ((1 << 48) - 1)
        v = state >> 16
        return v - (1 << 32) if v & 0x80000000 else v

    out = []
    for _ in range(count):
        v = ((next32() << 32) + next32()) & _MASK64
        out.append(v - (1 << 64) if v >> 63 else v)
    return out


def partition_seed(seed: int, partition: int) -> int:
    """The seed ``RDD.sample(False, f, seed)`` hands to partition ``partition``."""
    return java_random_longs(seed, partition + 1)[partition]


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK32


def murmur3_32(data: bytes, seed: int) -> int:
    """MurmurHash3 x86_32 (Scala's ``MurmurHash3.bytesHash``), unsigned."""
    h = seed & _MASK32
    n = len(data)
    for i in range(0, n - n % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (_rotl32((k * 0xCC9E2D51) & _MASK32, 15) * 0x1B873593) & _MASK32
        h = (_rotl32(h ^ k, 13) * 5 + 0xE6546B64) & _MASK32
    tail = data[n - n % 4 :]
    if tail:
        k = int.from_bytes(tail, "little")
        h ^= (_rotl32((k * 0xCC9E2D51) & _MASK32, 15) * 0x1B873593) & _MASK32
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK32
    return h ^ (h >> 16)


def xorshift_initial_state(seed: int) -> int:
    """``XORShiftRandom.hashSeed``: the generator's 64-bit state for ``seed``."""
    data = (seed & _MASK64).to_bytes(8, "big")
    low = murmur3_32(data, 0x3C074A61)
    high = murmur3_32(data, low)
    return (high << 32) | low


def _xorshift(s: np.ndarray) -> np.ndarray:
    s = s ^ (s << np.uint64(21))
    s = s ^ (s >> np.uint64(35))
    return s ^ (s << np.uint64(4))


def _tables(columns: np.ndarray) -> np.ndarray:
    """Byte lookup tables (8 x 256) for the GF(2) matrix with these 64 columns."""
    bits = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(bool)
    tabs = np.empty((8, 256), dtype=np.uint64)
    for k in range(8):
        tabs[k] = np.bitwise_xor.reduce(np.where(bits, columns[8 * k : 8 * k + 8], np.uint64(0)), axis=1)
    return tabs


def _apply(tabs: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = np.zeros_like(v)
    for k in range(8):
        out ^= tabs[k][((v >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.intp)]
    return out


@cache
def _jump_tables(log2_steps: int) -> np.ndarray:
    """Tables of the matrix that advances the generator by ``2**log2_steps`` steps."""
    if log2_steps == 0:
        columns = _xorshift(np.uint64(1) << np.arange(64, dtype=np.uint64))
    else:
        half = _jump_tables(log2_steps - 1)
        columns = _apply(half, _apply(half, np.uint64(1) << np.arange(64, dtype=np.uint64)))
    return _tables(columns)


def xorshift_states(state: int, count: int) -> np.ndarray:
    """The ``count`` states following ``state`` (``s_1 .. s_count``), as uint64."""
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    log2_lane = max(0, round(math.log2(max(count, 1)) / 2) - 3)
    lane_len = 1 << log2_lane
    lanes = -(-count // lane_len)
    starts = np.array([state], dtype=np.uint64)
    level = log2_lane
    while len(starts) < lanes:
        starts = np.concatenate([starts, _apply(_jump_tables(level), starts)])
        level += 1
    cur = starts[:lanes]
    out = np.empty((lane_len, lanes), dtype=np.uint64)
    for k in range(lane_len):
        cur = _xorshift(cur)
        out[k] = cur
    return out.T.ravel()[:count]


def next_doubles(state: int, count: int) -> tuple[np.ndarray, int]:
    """``count`` values of ``nextDouble()`` and the generator state after them."""
    if count <= 0:
        return np.empty(0), state
    s = xorshift_states(state, 2 * count)
    hi = s[0::2] & np.uint64((1 << 26) - 1)
    lo = s[1::2] & np.uint64((1 << 27) - 1)
    u = ((hi << np.uint64(27)) + lo).astype(np.float64) * _DOUBLE_UNIT
    return u, int(s[-1])


def sample_positions(num_rows: int, fraction: float, seed: int) -> np.ndarray | slice:
    """Row positions that ``BernoulliSampler(fraction)`` keeps in a partition.

    Parameters
    ----------
    num_rows : int
        Rows in the partition.
    fraction : float
        ``miniBatchFraction``.
    seed : int
        The partition's seed, :func:`partition_seed`.

    Returns
    -------
    numpy.ndarray or slice
        Sorted int64 positions, or ``slice(None)`` when every row is kept.
    """
    if fraction >= 1.0:
        return slice(None)
    if fraction <= 0.0 or num_rows == 0:
        return np.empty(0, dtype=np.int64)
    state = xorshift_initial_state(seed)
    if fraction > _MAX_GAP_FRACTION:
        u, _ = next_doubles(state, num_rows)
        return np.flatnonzero(u <= fraction)
    lnq = java_log1p(-fraction)
    chunks = []
    last = -1
    while True:
        want = int((num_rows - 1 - last) * fraction * 1.2) + 16
        u, state = next_doubles(state, want)
        gaps = np.log(np.maximum(u, _RNG_EPSILON)) / lnq
        gaps = np.minimum(gaps, _INT_MAX).astype(np.int64)
        pos = last + np.cumsum(gaps + 1)
        if pos[-1] >= num_rows:
            chunks.append(pos[pos < num_rows])
            break
        chunks.append(pos)
        last = int(pos[-1])
    return np.concatenate(chunks)

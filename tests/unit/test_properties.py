"""Property-based tests of the readers, parameter validation and the engine's block arithmetic."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkgd.core.block import block_sums, build_block
from sparkgd.core.gradients import LeastSquaresGradient
from sparkgd.core.state import check_params
from sparkgd.job import config
from sparkgd.job.io import _parse_csv, _parse_libsvm
from tests.reference import reference_sgd

finite = st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-1e12, max_value=1e12)


@given(label=finite, entries=st.dictionaries(st.integers(1, 10_000), finite, max_size=20))
def test_libsvm_lines_round_trip(label, entries):
    idx = sorted(entries)
    line = " ".join([repr(label)] + [f"{k}:{entries[k]!r}" for k in idx])
    assert _parse_libsvm(("f", 1, line), 0) == (label, idx, [entries[k] for k in idx])


_pair = st.builds("{}:{}".format, st.integers(-1, 130), st.one_of(st.floats().map(repr), st.text(max_size=3)))
_libsvm_line = st.builds(" ".join, st.lists(st.one_of(_pair, st.text(max_size=4)), max_size=6)).flatmap(
    lambda rest: st.one_of(st.floats(), st.text(max_size=4)).map(lambda lab: f"{lab} {rest}"))


@given(st.one_of(st.text(max_size=60), _libsvm_line))
def test_libsvm_parser_never_raises_and_accepts_only_valid_rows(text):
    out = _parse_libsvm(("f", 7, text), 100)
    if isinstance(out, str):
        assert out.startswith("f:7: ")
    elif out is not None:  # a row: finite label, increasing indices within 1..100, one finite value each
        label, idx, val = out
        assert isinstance(label, float) and math.isfinite(label)
        assert all(isinstance(k, int) for k in idx) and all(1 <= a < b <= 100 for a, b in zip(idx, idx[1:]))
        assert all(1 <= k <= 100 for k in idx) and len(val) == len(idx)
        assert all(isinstance(v, float) and math.isfinite(v) for v in val)
        body = text.split("#", 1)[0].split()
        assert float(body[0]) == label and len(body) == 1 + len(idx)  # every token read, none dropped
    else:
        assert not text.split("#", 1)[0].strip()  # nothing but a comment or blanks


@given(st.lists(st.text(alphabet="0123456789.-eE,nai x", max_size=12), min_size=1, max_size=5))
def test_csv_parser_never_raises_and_names_the_line(cells):
    header = ["c0", "c1", "c2"]
    out = _parse_csv(("d.csv", 5, ",".join(cells)), header, 2, [0, 1])
    if isinstance(out, str):
        assert out.startswith("d.csv:5: ")
    elif out is not None:
        assert all(math.isfinite(v) for v in [out[0], *out[1]])


@given(st.floats(allow_nan=True, allow_infinity=True, width=64))
def test_fraction_is_accepted_iff_in_range(f):
    ok = 0 < f <= 1
    try:
        config.resolve({}, {"mini_batch_fraction": f})
        assert ok
    except config.ConfigError as e:
        assert not ok and "--mini-batch-fraction" in str(e)


@given(it=st.integers(-5, 5), step=st.one_of(st.floats(-1, 2), st.just(float("nan"))), reg=st.floats(-1, 1),
       frac=st.floats(-0.5, 1.5), tol=st.floats(-0.5, 1.5), depth=st.integers(-1, 3))
def test_engine_parameters_are_accepted_iff_in_range(it, step, reg, frac, tol, depth):
    ok = it >= 0 and step > 0 and reg >= 0 and 0 < frac <= 1 and 0 <= tol <= 1 and depth >= 1
    try:
        check_params(it, step, reg, frac, tol, depth)
        assert ok
    except ValueError:
        assert not ok


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), d=st.integers(1, 5), seed=st.integers(0, 2**31), frac=st.sampled_from([1.0, 0.5, 0.1]))
def test_block_sums_equal_the_row_by_row_sum(n, d, seed, frac):
    rng = np.random.default_rng(seed)
    x, y, w = rng.normal(size=(n, d)), rng.normal(size=n), rng.normal(size=d + 1)
    block = build_block(0, list(zip(y, x)))
    got = block_sums(block, w, LeastSquaresGradient(), frac, seed, fit_intercept=True)
    from sparkgd.core.sampling import partition_seed, sample_positions
    pos = sample_positions(n, frac, partition_seed(seed, 0))
    rows = np.arange(n)[pos]
    if len(rows) == 0:
        assert got is None
        return
    g = sum((x[i] @ w[:-1] + w[-1] - y[i]) * np.append(x[i], 1.0) for i in rows)
    loss = sum((x[i] @ w[:-1] + w[-1] - y[i]) ** 2 / 2 for i in rows)
    np.testing.assert_allclose(got[0], g, rtol=1e-9, atol=1e-9)
    assert got[1] == pytest.approx(loss, rel=1e-9) and got[2] == len(rows)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(5, 80), d=st.integers(1, 4), seed=st.integers(0, 2**31), frac=st.sampled_from([1.0, 0.3]))
def test_loop_invariants_below_the_curvature_bound(n, d, seed, frac):
    """One loss per update; with step <= 1/L the weights stay finite (and batch GD descends)."""
    from sparkgd import SimpleUpdater

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=d)
    y = rng.normal(size=n)
    lipschitz = np.linalg.eigvalsh(x.T @ x / n).max()
    w, hist, t = reference_sgd([(x, y)], LeastSquaresGradient(), SimpleUpdater(), step_size=1.0 / lipschitz,
                               num_iterations=15, fraction=frac, tol=0.0, seed=seed)
    assert np.isfinite(w).all() and len(hist) <= t == 15
    if frac == 1.0:
        assert len(hist) == 15 and all(b <= a * (1 + 1e-12) + 1e-12 for a, b in zip(hist, hist[1:]))

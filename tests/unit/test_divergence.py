"""When the loop calls a run diverged: a growing objective, not a mini-batch's noise."""

import numpy as np

from sparkgd.engine.loop import diverging


def _first_alarm(history):
    return next((t for t in range(1, len(history) + 1) if diverging(history[:t])), None)


def test_geometric_growth_is_caught_at_the_third_iteration():
    assert _first_alarm([243.0, 2.44e6, 1.22e10, 6e13, 3e17]) == 3
    assert _first_alarm([1.0, 0.5, 1e7]) is None  # one jump is not a trend: two rises in a row are
    assert _first_alarm([1.0, 0.5, 1e5, 1e7]) == 4


def test_an_objective_thrown_far_above_its_first_value_is_caught():
    """Logistic loss at a huge step: gradients are bounded, so the objective jumps once and stays up there."""
    assert _first_alarm([0.69, 1e11, 5e10, 8e10, 6e10]) == 4
    assert _first_alarm([0.69, 1e11, 5e10, 0.5, 6e10]) is None  # came back: not (yet) divergence


def test_slow_steady_growth_is_caught_after_ten_rises():
    h = [1.0 * 1.5 ** t for t in range(20)]
    assert _first_alarm(h) == 11  # 10 rises, 57x the first value
    assert _first_alarm([1.0 + 0.01 * t for t in range(30)]) is None  # rising, but nowhere near 10x


def test_noisy_decreasing_and_oscillating_objectives_never_alarm():
    rng = np.random.default_rng(0)
    for _ in range(200):
        # single-row mini-batches: losses of chi-square(1) draws around a decreasing mean
        noisy = list((0.5 + 10 / np.arange(1, 101)) * rng.chisquare(1, 100))
        assert _first_alarm(noisy) is None
    swing = [1.0 + 0.9 * np.sin(t / 4.0) for t in range(100)]  # momentum's oscillation: bounded
    assert _first_alarm(swing) is None

"""Schedules against their formulas, L-BFGS/OWL-QN in plain numpy, and the held-out rows of a block."""

import math

import numpy as np
import pytest

from sparkgd.core.block import Block, _fold, block_sums, held_out
from sparkgd.core.gradients import LeastSquaresGradient
from sparkgd.core.lbfgs import LBFGS, pseudo_gradient
from sparkgd.core.optimizers import make_optimizer
from sparkgd.core.schedules import make_schedule
from sparkgd.core.updaters import ElasticNetUpdater, L1Updater, SimpleUpdater, SquaredL2Updater


def test_schedules_follow_their_formulas():
    t = np.arange(1, 60)
    cases = {
        "invsqrt": 0.8 / np.sqrt(t),
        "constant": np.full(len(t), 0.8),
        "invscaling": 0.8 / t ** 0.25,
        "exponential": 0.8 * 0.5 ** (t / 7),
        "step": 0.8 * 0.5 ** (t // 7),
    }
    for name, want in cases.items():
        s = make_schedule(name, 0.8, power_t=0.25, decay_rate=0.5, decay_steps=7)
        np.testing.assert_allclose([s(int(i)) for i in t], want, rtol=1e-15, err_msg=name)
    # scikit-learn's 'optimal': eta = 1 / (alpha (t0 + t - 1)), t0 = 1 / (alpha * alpha^(-1/4)); eta_1 = alpha^(-1/4)
    s = make_schedule("optimal", 123.0, reg_param=0.01)
    assert s(1) == pytest.approx(0.01 ** -0.25) and s(11) == pytest.approx(1 / (0.01 * (1 / 0.01 ** 0.75 + 10)))
    with pytest.raises(ValueError, match="regParam"):
        make_schedule("optimal", 1.0, reg_param=0.0)
    warm = make_schedule("invsqrt", 0.8, warmup_steps=4)
    assert [warm(i) for i in range(1, 7)] == [0.2, 0.4, 0.6000000000000001, 0.8, 0.8, 0.8 / math.sqrt(2)]
    with pytest.raises(ValueError, match="stepSchedule"):
        make_schedule("cosine", 1.0)


def _numpy_problem(seed=0, n=200, d=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) @ np.diag([1, 10, 0.1, 3, 1, 0.5])  # condition number ~1e4
    y = x @ rng.normal(size=d) + 0.1 * rng.normal(size=n)

    class Eval:
        def __init__(self, w):
            r = x @ w - y
            self.loss, self.gradient = float(r @ r / (2 * n)), x.T @ r / n

    return x, y, Eval


def _run(opt, updater, reg, d, evaluate, iterations):
    w, state = np.zeros(d), opt.init(np.zeros(d))
    ev = evaluate(w)
    for _ in range(iterations):
        w2, _, state, ev2, stalled = opt.step(w, ev.loss, ev.gradient, 1.0, evaluate, state, updater, reg)
        if stalled:
            break
        w, ev = w2, ev2
    return w


def test_lbfgs_solves_an_ill_conditioned_least_squares_problem():
    x, y, ev = _numpy_problem()
    w = _run(LBFGS(), SimpleUpdater(), 0.0, 6, ev, 100)
    np.testing.assert_allclose(w, np.linalg.lstsq(x, y, rcond=None)[0], rtol=1e-8, atol=1e-10)
    # ridge: (X'X/n + lambda I) w = X'y/n
    w = _run(LBFGS(), SquaredL2Updater(), 0.3, 6, ev, 100)
    np.testing.assert_allclose(w, np.linalg.solve(x.T @ x / 200 + 0.3 * np.eye(6), x.T @ y / 200), rtol=1e-8)


def test_owlqn_solves_the_lasso_and_the_elastic_net():
    from sklearn.linear_model import ElasticNet, Lasso

    x, y, ev = _numpy_problem(1)
    w = _run(LBFGS(), L1Updater(), 0.2, 6, ev, 300)
    ref = Lasso(alpha=0.2, fit_intercept=False, tol=1e-14, max_iter=10**6).fit(x, y).coef_
    np.testing.assert_allclose(w, ref, atol=1e-8)
    assert (w == 0).sum() == (ref == 0).sum() > 0
    w = _run(LBFGS(), ElasticNetUpdater(0.5), 0.2, 6, ev, 300)
    ref = ElasticNet(alpha=0.2, l1_ratio=0.5, fit_intercept=False, tol=1e-14, max_iter=10**6).fit(x, y).coef_
    np.testing.assert_allclose(w, ref, atol=1e-8)


def test_pseudo_gradient_picks_the_descending_side_at_zero():
    w = np.array([0.0, 0.0, 0.0, 1.0, -1.0])
    g = np.array([-2.0, 2.0, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(pseudo_gradient(w, g, 1.0, np.ones(5, bool)), [-1.0, 1.0, 0.0, 1.5, -0.5])
    # an unpenalized weight keeps its gradient
    np.testing.assert_array_equal(pseudo_gradient(w, g, 1.0, np.array([0, 1, 1, 1, 1], bool))[0], -2.0)


def test_optimizer_state_is_explicit_and_update_does_not_mutate_it():
    for name in ("momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"):
        opt = make_optimizer(name)
        state = opt.init(np.zeros(3))
        before = {k: v.copy() for k, v in state.items()}
        _, _, new = opt.update(np.ones(3), np.array([1.0, -2.0, 3.0]), 0.1, state, SquaredL2Updater(), 0.1)
        assert all(np.array_equal(state[k], before[k]) for k in state), name
        assert any(not np.array_equal(new[k], before[k]) for k in new), name
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("adamax")


def test_held_out_rows_are_fixed_by_seed_and_partition_and_never_sampled():
    rng = np.random.default_rng(3)
    block = Block(1, rng.normal(size=500), rng.normal(size=(500, 3)))
    held = held_out(1, 500, 0.2, 7)
    assert 60 < held.sum() < 140 and np.array_equal(held, held_out(1, 500, 0.2, 7))
    assert not np.array_equal(held, held_out(2, 500, 0.2, 7)) and not np.array_equal(held, held_out(1, 500, 0.2, 8))
    w = np.array([0.5, -1.0, 2.0])
    g, loss, rows, wsum, held_loss, held_weight = block_sums(block, w, LeastSquaresGradient(), 1.0, 99,
                                                             validation=(0.2, 7))
    train = _fold(block, np.flatnonzero(~held), w, LeastSquaresGradient(), False, None)
    val = _fold(block, np.flatnonzero(held), w, LeastSquaresGradient(), False, None)
    np.testing.assert_array_equal(g, train.gradient)
    assert (loss, rows, wsum) == train[1:4] and rows == 500 - held.sum()
    assert (held_loss, held_weight) == (val.loss, val.weight) and held_weight == held.sum()
    # with a fraction, the sample is a subset of the training rows for every iteration seed
    for seed in range(5):
        rows = block_sums(block, w, LeastSquaresGradient(), 0.3, seed, validation=(0.2, 7)).rows
        assert rows <= 500 - held.sum()

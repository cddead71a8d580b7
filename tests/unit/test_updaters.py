import numpy as np
import pytest

from sparkgd.core.schedules import ConstantSchedule, InverseSqrtSchedule, as_schedule
from sparkgd.core.updaters import ElasticNetUpdater, L1Updater, SimpleUpdater, SquaredL2Updater, get_updater

W = np.array([1.0, -2.0, 0.05, 0.0])
G = np.array([0.5, -0.5, 0.1, 0.2])


def test_simple_updater():
    w, r = SimpleUpdater().compute(W, G, 0.1, 5.0)
    np.testing.assert_array_equal(w, W - 0.1 * G)
    np.testing.assert_allclose(w, [0.95, -1.95, 0.04, -0.02], atol=1e-15)
    assert r == 0.0


def test_squared_l2_updater_closed_form():
    step, lam = 0.1, 0.5
    w, r = SquaredL2Updater().compute(W, G, step, lam)
    np.testing.assert_allclose(w, W * (1 - step * lam) - step * G, rtol=0, atol=0)
    assert r == pytest.approx(0.5 * lam * np.sum(w**2))


def test_l1_updater_soft_thresholds():
    step, lam = 0.1, 0.5
    w, r = L1Updater().compute(W, G, step, lam)
    z = W - step * G  # [0.95, -1.95, 0.04, -0.02]
    np.testing.assert_allclose(w, [0.90, -1.90, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(w, np.sign(z) * np.maximum(np.abs(z) - step * lam, 0), atol=0)
    assert r == pytest.approx(lam * 2.8)


def test_elastic_net_reduces_to_l2_and_l1():
    for alpha, other in [(0.0, SquaredL2Updater()), (1.0, L1Updater())]:
        a = ElasticNetUpdater(alpha).compute(W, G, 0.1, 0.3)
        b = other.compute(W, G, 0.1, 0.3)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1] == pytest.approx(b[1])


def test_penalized_mask_leaves_the_intercept_alone():
    mask = np.array([True, True, True, False])
    w, r = SquaredL2Updater().compute(W, G, 0.1, 0.5, mask)
    assert w[3] == W[3] - 0.1 * G[3]
    assert r == pytest.approx(0.25 * np.sum(w[:3] ** 2))
    w1, _ = L1Updater().compute(W, G, 0.1, 100.0, mask)
    assert w1[3] == W[3] - 0.1 * G[3] and np.all(w1[:3] == 0)


def test_regularization_value_is_the_zero_step_value():
    assert SquaredL2Updater().regularization(W, 2.0) == pytest.approx(np.sum(W**2))
    assert L1Updater().regularization(W, 2.0) == pytest.approx(2 * 3.05)
    assert SimpleUpdater().regularization(W, 2.0) == 0.0


def test_schedules():
    assert InverseSqrtSchedule(3.0)(9) == 1.0
    assert ConstantSchedule(0.2)(100) == 0.2
    assert as_schedule(2.0)(4) == 1.0
    assert as_schedule(ConstantSchedule(0.5))(7) == 0.5


def test_get_updater_by_reg_type():
    assert isinstance(get_updater(None), SimpleUpdater)
    assert isinstance(get_updater("none"), SimpleUpdater)
    assert isinstance(get_updater("l1"), L1Updater)
    assert isinstance(get_updater("l2"), SquaredL2Updater)
    with pytest.raises(ValueError, match="regType"):
        get_updater("l3")

"""Property-based checks of the engine itself (on Spark): its loop invariants on random problems."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkgd import LeastSquaresGradient, SimpleUpdater, run_minibatch_sgd


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(3, 60), d=st.integers(1, 4), parts=st.integers(1, 3), seed=st.integers(0, 2**20),
       frac=st.sampled_from([1.0, 0.2, 0.02]))
def test_engine_loop_invariants(sc, n, d, parts, seed, frac):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=d)
    y = rng.normal(size=n)
    lipschitz = np.linalg.eigvalsh(x.T @ x / n).max()
    res = run_minibatch_sgd(sc.parallelize(list(zip(y, x)), parts), LeastSquaresGradient(), SimpleUpdater(),
                            step_size=1.0 / lipschitz, num_iterations=8, mini_batch_fraction=frac,
                            convergence_tol=0.0, seed=seed)
    # one loss per update: never more entries than iterations, exactly one each in batch mode
    assert res.num_iterations == 8 and len(res.loss_history) <= 8
    assert np.isfinite(res.weights).all() and np.isfinite(res.loss_history).all()
    if frac == 1.0:
        h = res.loss_history
        assert len(h) == 8 and all(b <= a * (1 + 1e-12) + 1e-12 for a, b in zip(h, h[1:]))

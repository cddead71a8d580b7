"""The pieces of the loop run in a task under Spark Connect (sparkgd.engine.remote) that need no Spark:
the state a chunk returns, resuming from it, and when a barrier job can run."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from sparkgd.core.lbfgs import LBFGS
from sparkgd.core.optimizers import SGD, Adam, Momentum
from sparkgd.core.schedules import as_schedule
from sparkgd.core.state import SGDState
from sparkgd.core.sums import Sums
from sparkgd.core.updaters import SquaredL2Updater
from sparkgd.engine.loop import Rules, _Centring, iterate
from sparkgd.engine.remote import decode_state, encode_state, resident_off, task_slots

RNG = np.random.default_rng(5)
X = RNG.standard_normal((300, 4)) + 3.0  # not centred: centring matters
Y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * RNG.standard_normal(300)


def _job(weights: np.ndarray, seed: int, fraction: float = 0.5) -> Sums:
    """Least-squares sums of a seeded ``fraction`` of the rows (a mini-batch) at ``weights`` (last entry: intercept)."""
    rows = np.random.default_rng(seed).random(len(Y)) < fraction
    x, y = X[rows], Y[rows]
    r = x @ weights[:-1] + weights[-1] - y
    return Sums(np.append(x.T @ r, r.sum()), float(0.5 * r @ r), int(rows.sum()), float(rows.sum()))


def _rules(optimizer, average_from=0):
    return Rules(optimizer, SquaredL2Updater(), as_schedule(0.05), 0.01, np.arange(5) < 4, 1e-12, 42, False, 5,
                 average_from, _Centring(X.mean(axis=0), None, 1))


@pytest.mark.parametrize("optimizer,average_from", [(SGD(), 0), (Adam(), 3), (Momentum(0.9, nesterov=True), 0),
                                                    (LBFGS(5), 0)])
def test_a_loop_resumed_from_each_returned_state_is_the_uninterrupted_loop_bit_for_bit(optimizer, average_from):
    rules = _rules(optimizer, average_from)
    job = functools.partial(_job, fraction=1.0 if optimizer.full_batch else 0.5)
    w0 = np.zeros(5)
    whole = SGDState(0, w0, 0.0, optimizer_state=optimizer.init(w0))
    seen = []
    iterate(rules, job, whole, 12, lambda s: seen.append(s.weights.copy()))
    chunked = SGDState(0, w0, 0.0, optimizer_state=optimizer.init(w0))
    while chunked.iteration < 12 and not chunked.converged:  # one iteration per chunk, through the bytes
        state = decode_state(encode_state(chunked))
        iterate(rules, job, state, 12, lambda s: None, more=lambda: False)
        chunked = decode_state(encode_state(state))
    assert chunked.iteration == whole.iteration > 3
    assert np.array_equal(chunked.weights, whole.weights) and chunked.loss_history == whole.loss_history
    assert np.array_equal(rules.final(chunked), rules.final(whole))
    assert not np.array_equal(seen[-1], seen[-2])  # it moved


def test_a_state_keeps_every_field_its_shapes_and_dtypes():
    s = SGDState(7, np.arange(3.0), 0.25, [3.0, 2.0], np.ones(3), True, 11,
                 {"m": np.ones(3), "count": np.zeros(())}, np.full(3, 0.5), 4, [1.5], 1.25, 2)
    back = decode_state(encode_state(s))
    for name in s.__dataclass_fields__:
        a, b = getattr(s, name), getattr(back, name)
        if isinstance(a, dict):
            assert a.keys() == b.keys() and all(a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)
        elif isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        else:
            assert a == b, name
    back.weights[0] = 9.0  # writable: the loop may update arrays in place


@pytest.mark.parametrize("conf,cores,slots", [
    ({"spark.master": "local[2]"}, 8, 2),
    ({"spark.master": "local"}, 8, 1),
    ({"spark.master": "local[*]"}, 8, 8),
    ({"spark.master": "local[4, 3]"}, 8, 4),
    ({"spark.master": "local-cluster[2, 3, 1024]", "spark.task.cpus": "2"}, 8, 3),
    ({"spark.master": "spark://h:7077", "spark.cores.max": "6"}, 8, 6),
    ({"spark.master": "yarn", "spark.executor.instances": "3", "spark.executor.cores": "4"}, 8, 12),
    ({"spark.master": "yarn"}, 8, None),
    ({"spark.master": "spark://h:7077", "spark.sparkgd.connect.slots": "5"}, 8, 5),
])
def test_task_slots_from_the_conf(conf, cores, slots):
    assert task_slots(conf.get, cores) == slots


def test_when_the_loop_cannot_run_in_a_task_the_reason_names_the_setting():
    assert resident_off({"spark.master": "local[2]"}.get, 8) == (None, 2)
    assert "dynamicAllocation" in resident_off({"spark.master": "yarn", "spark.dynamicAllocation.enabled": "true",
                                                "spark.sparkgd.connect.slots": "9"}.get, 8)[0]
    assert "spark.sparkgd.connect.slots" in resident_off({"spark.master": "yarn"}.get, 8)[0]
    assert "residentTasks" in resident_off({"spark.master": "local[2]", "spark.sparkgd.residentTasks": "false"}.get,
                                           8)[0]


def test_the_python_memory_a_task_may_hold_from_the_conf():
    from sparkgd.engine.memory import group_bytes, python_budget, spark_bytes

    assert [spark_bytes(t) for t in ("2g", "512m", "1024k", "300", "1.5g", "10b", "lots")] == \
        [2 << 30, 512 << 20, 1 << 20, 300 << 20, 3 << 29, 10, None]
    assert python_budget({"spark.master": "local[2]"}) is None  # nothing caps Python there
    assert python_budget({"spark.executor.pyspark.memory": "2g", "spark.executor.cores": "4"}) == \
        (512 << 20, "spark.executor.pyspark.memory")  # as Spark divides it among the workers
    assert python_budget({"spark.master": "yarn", "spark.executor.memory": "8g", "spark.executor.cores": "2"}) == \
        (int(0.1 * (8 << 30)) // 2, "spark.executor.memoryOverhead")
    assert python_budget({"spark.master": "k8s://h", "spark.executor.memoryOverhead": "3g"}) == \
        (3 << 30, "spark.executor.memoryOverhead")
    assert python_budget({"spark.master": "yarn"}) == (384 << 20, "spark.executor.memoryOverhead")
    assert group_bytes([5, 1, 4, 3, 2], 2) == 5 + 4 + 3 and group_bytes([5, 1], 2) == 5 and group_bytes([], 3) == 0

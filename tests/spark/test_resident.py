"""Resident tasks compute exactly what one job per iteration computes, and hand over when lost."""

import logging

import numpy as np
import pytest

from sparkgd import LogisticGradient, SquaredL2Updater, run_minibatch_sgd
from sparkgd.aggregation import IteratedAggregation
from sparkgd.resident import ENABLED, task_count
from tests.spark.data import labeled_points, make_problem, partitioned


@pytest.fixture
def resident_off(spark):
    spark.conf.set(ENABLED, "false")
    yield
    spark.conf.unset(ENABLED)


def _sum_fold(acc, partition, *, weights, seed):
    return (acc or 0.0) + weights[partition] * seed


def _add(a, b):
    return b if a is None else a + b


def test_task_count_is_capped_by_slots_and_switched_off_by_the_conf(sc, spark):
    assert task_count(sc, 1) == 1 and task_count(sc, 2) == 2 and task_count(sc, 9) == 2  # local[2]: 2 slots
    spark.conf.set(ENABLED, "false")
    try:
        assert task_count(sc, 2) == 0
    finally:
        spark.conf.unset(ENABLED)


def test_training_gives_the_one_job_per_iteration_model_bit_for_bit(sc, spark, caplog):
    x, y = make_problem("classification")
    rdd = partitioned(sc, labeled_points(x, y)).cache()  # 4 uneven partitions, one empty: 2 tasks share them
    kw = dict(step_size=1.0, num_iterations=12, reg_param=0.05, mini_batch_fraction=0.3, convergence_tol=0.0)
    try:
        with caplog.at_level(logging.INFO, logger="sparkgd"):
            resident = run_minibatch_sgd(rdd, LogisticGradient(), SquaredL2Updater(), **kw)
        assert "resident tasks: 2 tasks serve the 4 partitions" in caplog.text
        spark.conf.set(ENABLED, "false")
        try:
            per_job = run_minibatch_sgd(rdd, LogisticGradient(), SquaredL2Updater(), **kw)
        finally:
            spark.conf.unset(ENABLED)
    finally:
        rdd.unpersist()
    assert resident.weights.tobytes() == per_job.weights.tobytes()
    assert resident.loss_history == per_job.loss_history and len(resident.loss_history) == 12


def test_resident_tasks_serve_from_the_second_iteration_and_combine_like_the_tree(sc):
    # 9 partitions at depth 2 combine through one reduceByKey level of 3 (as pyspark's treeAggregate)
    job = IteratedAggregation(sc, 9, _sum_fold, _add, 2, key="sparkgd.test.resident")
    try:
        w = np.arange(1.0, 10.0)
        assert [job(w, s) for s in (3, 5, 7)] == [3 * w.sum(), 5 * w.sum(), 7 * w.sum()]
        assert job.resident_calls == 2
        job.release()  # frees the cores: later calls run one job each
        assert job(w, 11) == 11 * w.sum() and job.resident_calls == 2
    finally:
        job.close()


def test_a_lost_resident_task_hands_the_iteration_over_to_a_job(sc, caplog):
    def fold(acc, partition, *, weights, seed):
        from pyspark import BarrierTaskContext, TaskContext

        if seed == 7 and isinstance(TaskContext.get(), BarrierTaskContext):
            raise RuntimeError("a resident task dies")
        return (acc or 0.0) + weights[partition] * seed

    job = IteratedAggregation(sc, 4, fold, _add, 2, key="sparkgd.test.lost")
    try:
        w = np.arange(1.0, 5.0)
        with caplog.at_level(logging.WARNING, logger="sparkgd"):
            assert [job(w, s) for s in (3, 5, 7, 9)] == [30.0, 50.0, 70.0, 90.0]
        assert job.resident_calls == 1  # seed 5 only; 7 and 9 ran as jobs
        assert "resident tasks lost" in caplog.text
    finally:
        job.close()


def test_resident_off_runs_one_job_per_iteration(sc, resident_off):
    job = IteratedAggregation(sc, 2, _sum_fold, _add, 2, key="sparkgd.test.off")
    try:
        w = np.array([1.0, 2.0])
        assert [job(w, s) for s in (3, 5)] == [9.0, 15.0] and job.resident_calls == 0
    finally:
        job.close()


def test_resident_tasks_missing_their_blocks_hand_over_to_jobs(sc, caplog):
    from sparkgd import LeastSquaresGradient, SimpleUpdater
    from sparkgd.blocks import BlockedData
    from sparkgd.optimize import descend

    x, y = make_problem("regression")
    blocks = BlockedData(sc.parallelize(list(zip(y, x)), 2))
    kw = dict(num_iterations=6, mini_batch_fraction=0.5, convergence_tol=0.0, step_size=0.5)
    try:
        with caplog.at_level(logging.INFO, logger="sparkgd"):
            before = descend(blocks, LeastSquaresGradient(), SimpleUpdater(), np.zeros(5), **kw)
            stored, blocks.store_id = blocks.store_id, "sparkgd-store-test-missing"  # no host has it
            after = descend(blocks, LeastSquaresGradient(), SimpleUpdater(), np.zeros(5), **kw)
            blocks.store_id = stored
    finally:
        blocks.unpersist()
    # both runs start resident tasks; in the second they report every block missing and stop,
    # and every iteration computes its blocks from the cached block RDD instead
    assert caplog.text.count("resident tasks: 2 tasks serve the 2 partitions") == 2
    assert after.weights.tobytes() == before.weights.tobytes() and after.loss_history == before.loss_history


def test_a_driver_address_it_cannot_listen_on_leaves_one_job_per_iteration(sc):
    from sparkgd.resident import Lost, ResidentTasks

    class Conf:
        def get(self, key, default=None):
            return "no-such-host.invalid" if key in ("spark.driver.host", "spark.driver.bindAddress") else default

    class Context:
        def getConf(self):
            return Conf()

    with pytest.raises(Lost, match="cannot listen"):
        ResidentTasks(Context(), None, 1, _sum_fold)


def test_executors_that_cannot_reach_the_driver_turn_resident_tasks_off_for_the_application(sc, caplog):
    from sparkgd import resident

    class Conf:  # tasks are told to connect to 127.0.0.2, where nothing listens
        def __init__(self, conf):
            self.conf = conf

        def get(self, key, default=None):
            return {"spark.driver.host": "127.0.0.2", "spark.driver.bindAddress": "127.0.0.1"}.get(
                key, self.conf.get(key, default))

    class Context:
        def __getattr__(self, name):
            return getattr(sc, name)

        def getConf(self):
            return Conf(sc.getConf())

    try:
        with caplog.at_level(logging.WARNING, logger="sparkgd"), pytest.raises(resident.Lost) as lost:
            resident.ResidentTasks(Context(), sc.parallelize([], 2), 2, _sum_fold)
        assert lost.value.unreachable and "could reach the driver" in caplog.text
        assert resident.task_count(sc, 2) == 0
    finally:
        resident._UNREACHABLE.discard(sc.applicationId)
    assert resident.task_count(sc, 2) == 2

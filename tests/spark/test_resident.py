"""Resident tasks compute the bits one Spark job per iteration computes, and give way to other work."""

import logging
import socket
import threading
import time

import numpy as np
import pytest
from pyspark import InheritableThread

from sparkgd import LeastSquaresGradient, LogisticGradient, SimpleUpdater, SquaredL2Updater, run_minibatch_sgd
from sparkgd.core.block import FoldSpec, fold
from sparkgd.core.sums import merge
from sparkgd.core.tree import CombineTree
from sparkgd.engine import aggregation, resident, timeouts
from sparkgd.engine.aggregation import IterationSums
from sparkgd.engine.blocks import build_blocks
from sparkgd.engine.channel import connect_handshake
from sparkgd.engine.loop import descend
from sparkgd.engine.resident import ENABLED, PORT, Crew, Lost
from tests.spark.data import labeled_points, make_problem, partitioned


@pytest.fixture
def resident_off(spark):
    spark.conf.set(ENABLED, "false")
    yield
    spark.conf.unset(ENABLED)


@pytest.fixture(scope="module")
def wide_floats(sc):
    """9 partitions (a 2-level tree at depth 2) of rows whose sums depend on the order of addition."""
    rng = np.random.default_rng(5)
    d = 300
    rows = [(float(rng.normal()), rng.normal(size=d) * 10.0 ** rng.integers(-6, 7)) for _ in range(90)]
    blocks = build_blocks(sc.parallelize(rows, 9))
    yield blocks, d, rng.normal(size=d)
    blocks.unpersist()


KW = FoldSpec(LeastSquaresGradient(), 0.6)


def same(a, b):
    return a[0].tobytes() == b[0].tobytes() and a[1:] == b[1:]


@pytest.mark.parametrize("tasks", [1, 2])
def test_resident_tasks_give_the_jobs_bits_for_any_number_of_tasks(sc, wide_floats, tasks):
    blocks, d, w = wide_floats
    tree = CombineTree(9, 2)
    want = [aggregation.tree_aggregate(blocks.rdd, tree, w * k, 40 + k, KW) for k in (1, 2, 3)]
    resident = Crew.start(sc, blocks.rdd, tasks, 2, KW, d)
    try:
        got = [resident(w * k, 40 + k) for k in (1, 2, 3)]
    finally:
        resident.stop()
    assert all(same(g, x) for g, x in zip(got, want))
    # the test can fail: the same leaves summed in another order give other bits
    local = {b.partition: fold(b, w, 41, KW) for b in blocks.rdd.collect()}
    backwards = None
    for p in sorted(local, reverse=True):
        backwards = merge(backwards, local[p])
    assert not same(backwards, want[0])


def test_iteration_sums_serve_from_the_first_call_on(sc, wide_floats):
    blocks, d, w = wide_floats
    sums = IterationSums(blocks.rdd, 2, KW, d)
    try:
        got = [sums(w, s) for s in (3, 4, 5, 6)]
        assert sums.resident_calls == 4
    finally:
        sums.close()
    want = [aggregation.tree_aggregate(blocks.rdd, sums.tree, w, s, KW) for s in (3, 4, 5, 6)]
    assert all(same(g, x) for g, x in zip(got, want))


def test_the_start_timeout_is_read_from_the_spark_conf(sc, spark, wide_floats, caplog):
    """spark.sparkgd.resident.startTimeout: too short for any task to connect, the iterations run as Spark
    jobs (same bits); a value that is not a positive number is refused, naming the key."""
    blocks, d, w = wide_floats
    spark.conf.set(timeouts.START_KEY, "0.001")
    try:
        sums = IterationSums(blocks.rdd, 2, KW, d)
        try:
            with caplog.at_level(logging.INFO, logger="sparkgd"):
                got = [sums(w, s) for s in (3, 4)]
            assert sums.resident_calls == 0
            assert any("connected in time" in r.getMessage() for r in caplog.records)
        finally:
            sums.close()
        spark.conf.set(timeouts.START_KEY, "soon")
        with pytest.raises(ValueError, match=r"spark.sparkgd.resident.startTimeout must be a positive number"):
            Crew.start(sc, blocks.rdd, 1, 2, KW, d)
    finally:
        spark.conf.unset(timeouts.START_KEY)
    want = [aggregation.tree_aggregate(blocks.rdd, sums.tree, w, s, KW) for s in (3, 4)]
    assert all(same(g, x) for g, x in zip(got, want))


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


def test_groups_of_blocks_over_the_python_memory_cap_run_one_job_per_iteration(sc, spark, caplog, monkeypatch):
    """4 partitions on 2 slots: each resident task would hold 2 blocks. Under a spark.executor.pyspark.memory
    that holds one block (and the worker) but not two, the call runs jobs, says why once, same bits."""
    from sparkgd.engine import memory

    x, y = make_problem("classification")
    rdd = partitioned(sc, labeled_points(x, y)).cache()
    kw = dict(step_size=1.0, num_iterations=6, reg_param=0.05, mini_batch_fraction=0.3, convergence_tol=0.0)
    conf = dict(sc.getConf().getAll())
    try:
        sizes = [b.nbytes for b in build_blocks(rdd).summaries]
        assert sorted(sizes)[-1] > 0
        cap = memory.WORKER_BASE + sorted(sizes)[-1] + 1  # the largest block fits, no two of the others do
        assert memory.group_bytes(sizes, 2) > cap - memory.WORKER_BASE
        monkeypatch.setattr(resident, "spark_conf", lambda _: conf | {"spark.executor.pyspark.memory": f"{cap}b"})
        with caplog.at_level(logging.INFO, logger="sparkgd"):
            capped = run_minibatch_sgd(rdd, LogisticGradient(), SquaredL2Updater(), **kw)
        told = [r.getMessage() for r in caplog.records if "spark.executor.pyspark.memory" in r.getMessage()]
        assert len(told) == 1 and "2 tasks would hold 2 blocks each" in told[0], told
        assert "tasks serve the" not in caplog.text
        monkeypatch.setattr(resident, "spark_conf", lambda _: conf | {"spark.executor.pyspark.memory": "4g"})
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="sparkgd"):
            served = run_minibatch_sgd(rdd, LogisticGradient(), SquaredL2Updater(), **kw)
        assert "resident tasks: 2 tasks serve the 4 partitions" in caplog.text
    finally:
        rdd.unpersist()
    assert capped.weights.tobytes() == served.weights.tobytes()


def test_a_lost_resident_task_hands_the_iteration_over_to_a_job(sc, caplog):
    from pyspark import TaskContext

    class DiesInResidentTasks(LeastSquaresGradient):
        def loss_and_multiplier(self, margins, labels):
            tags = TaskContext.get().getLocalProperty("spark.job.tags") or ""
            if margins[0] == 7.0 and "sparkgd-resident" in tags:
                raise RuntimeError("a resident task dies")
            return super().loss_and_multiplier(margins, labels)

    blocks = build_blocks(sc.parallelize([(1.0, np.ones(1))] * 8, 2))
    kw = KW._replace(gradient=DiesInResidentTasks(), fraction=1.0)
    sums = IterationSums(blocks.rdd, 2, kw, 1)
    try:
        with caplog.at_level(logging.WARNING, logger="sparkgd"):
            got = [sums(np.array([v]), 1)[1] for v in (1.0, 2.0, 7.0, 3.0)]
        assert got == [0.0, 4.0, 144.0, 16.0]  # 8 rows of (w - 1)^2 / 2
        assert sums.resident_calls == 2  # w = 1 and 2: 7 and 3 ran as jobs
        assert "resident tasks lost" in caplog.text and "a resident task dies" in caplog.text
    finally:
        sums.close()
        blocks.unpersist()


def test_resident_off_runs_one_job_per_iteration(sc, wide_floats, resident_off):
    blocks, d, w = wide_floats
    sums = IterationSums(blocks.rdd, 2, KW, d)
    try:
        assert [sums(w, s) is not None for s in (3, 5, 7)] == [True] * 3 and sums.resident_calls == 0
    finally:
        sums.close()


def _train(blocks, callback=None, iterations=8):
    return descend(blocks, LeastSquaresGradient(), SimpleUpdater(), np.zeros(5), num_iterations=iterations,
                   mini_batch_fraction=0.5, convergence_tol=0.0, step_size=0.5, callback=callback)


@pytest.fixture(scope="module")
def small_blocks(sc):
    x, y = make_problem("regression")
    blocks = build_blocks(partitioned(sc, list(zip(y, x))))
    yield blocks
    blocks.unpersist()


def in_thread(fn, timeout=90):
    out = {}

    def run():
        try:
            out["value"] = fn()
        except Exception as e:  # the test inspects it
            out["error"] = e

    t = InheritableThread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"still running after {timeout} s"
    return out


def test_a_callback_that_runs_a_spark_job_completes(sc, small_blocks, caplog):
    counted = []

    def callback(state):
        if state.iteration == 4:  # resident tasks hold both slots of local[2] by now
            counted.append(sc.parallelize(range(10), 2).count())

    with caplog.at_level(logging.INFO, logger="sparkgd"):
        out = in_thread(lambda: _train(small_blocks, callback))
    assert "error" not in out and counted == [10]
    assert "handing them over" in caplog.text
    plain = _train(small_blocks)
    assert out["value"].weights.tobytes() == plain.weights.tobytes()


def test_cancelling_the_callers_job_group_stops_the_training(sc, small_blocks):
    started = threading.Event()

    def callback(state):
        if state.iteration == 3:
            started.set()
            time.sleep(2.0)

    def train():
        sc.setJobGroup("sparkgd-test-group", "a user's job group")
        return _train(small_blocks, callback, iterations=20)

    def cancel():
        started.wait(60)
        time.sleep(0.5)
        sc.cancelJobGroup("sparkgd-test-group")

    canceller = threading.Thread(target=cancel, daemon=True)
    canceller.start()
    out = in_thread(train)
    canceller.join(10)
    assert "value" not in out and "cancel" in str(out["error"]).lower()


def test_two_fits_from_two_threads_give_their_sequential_models(sc, small_blocks):
    alone = [_train(small_blocks, iterations=k).weights.tobytes() for k in (10, 12)]
    results = {}
    threads = [InheritableThread(target=lambda k=k: results.setdefault(k, _train(small_blocks, iterations=k)))
               for k in (10, 12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert [results[k].weights.tobytes() for k in (10, 12)] == alone


def test_connections_without_the_secret_are_refused_and_training_goes_on(sc, spark, small_blocks, caplog):
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    stop = threading.Event()
    attempts = []

    def rogue():
        while not stop.is_set():
            for p in (port, port + 1):
                try:
                    with socket.create_connection(("127.0.0.1", p), timeout=1) as s:
                        s.settimeout(1)
                        connect_handshake(s, b"guess" * 7, 0)
                except Exception:
                    pass
                attempts.append(p)
            time.sleep(0.01)

    want = _train(small_blocks)
    spark.conf.set(PORT, str(port))
    thread = threading.Thread(target=rogue, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.WARNING, logger="sparkgd"):
            got = _train(small_blocks)
    finally:
        stop.set()
        thread.join(5)
        spark.conf.unset(PORT)
    assert got.weights.tobytes() == want.weights.tobytes()
    assert attempts and "does not know the secret" in caplog.text


def test_a_driver_address_it_cannot_listen_on_leaves_one_job_per_iteration(sc, small_blocks, monkeypatch):
    monkeypatch.setattr(resident, "spark_conf", lambda _: {"spark.driver.host": "no-such-host.invalid",
                                                           "spark.driver.bindAddress": "no-such-host.invalid"})
    with pytest.raises(Lost, match="cannot listen"):
        Crew.start(sc, small_blocks.rdd, 1, 2, KW, 5)


def test_executors_that_cannot_reach_the_driver_leave_one_job_per_iteration(sc, small_blocks, monkeypatch):
    conf = dict(sc.getConf().getAll())  # tasks are told to connect to 127.0.0.2, where nothing listens
    monkeypatch.setattr(resident, "spark_conf", lambda _: conf | {"spark.driver.host": "127.0.0.2",
                                                                  "spark.driver.bindAddress": "127.0.0.1"})
    began = time.monotonic()
    with pytest.raises(Lost, match="ended .*before its tasks connected"):
        Crew.start(sc, small_blocks.rdd, 2, 2, KW, 5)
    assert time.monotonic() - began < 15


def test_a_start_waits_out_the_locality_wait_before_calling_the_slots_busy(spark, monkeypatch):
    """A coalesced group waits spark.locality.wait for a slot on its blocks' host: giving up sooner failed starts
    whenever one host's slots were the busy ones (seen with speculation on two hosts)."""
    from sparkgd.engine.resident import busy_after, spark_seconds

    assert [spark_seconds(t, -1.0) for t in ("3s", "100ms", "250", "2min", "soon")] == [3.0, 0.1, 0.25, 120.0, -1.0]
    sc = spark.sparkContext
    conf = dict(sc.getConf().getAll())
    conf.pop("spark.locality.wait", None)
    for wait, want in (("0", timeouts.BUSY_AFTER), ("10s", 10.0 + timeouts.BUSY_AFTER / 4),
                       (None, 3.0 + timeouts.BUSY_AFTER / 4)):
        given = conf if wait is None else conf | {"spark.locality.wait": wait}
        monkeypatch.setattr(resident, "spark_conf", lambda _, given=given: given)
        assert busy_after(sc) == want  # None: Spark's default, 3 s

"""Resident tasks: tasks that stay up for a training call and compute every iteration's sums.

A Spark job costs tens of milliseconds even when its tasks do one millisecond of work
(scheduling, task launch, the hand-off to a Python worker, and the JVM re-sending the cached
blocks to Python). MLlib pays that once per iteration. Resident tasks pay it once per call:

* **Data.** One job over the cached block RDD, started only when every task has a free slot
  (coalesced without a shuffle when there are fewer free slots than partitions, so Spark's
  locality places each group; barrier mode would refuse the coalesce). If some task does not
  start within two seconds, the job is cancelled. Each task reads
  its blocks once from Spark's block manager and holds them in memory until the call ends;
  nothing is written anywhere. On a call's first blocks the tasks that build them can serve
  instead, and hand their blocks to Spark at the end (:class:`FirstTasks`).
* **Channel.** Every task connects to a socket on the driver (``spark.sparkgd.resident.port``,
  any free port by default) and proves a per-call secret by challenge-response
  (:mod:`sparkgd.engine.channel`); only fixed binary frames follow, never a pickle. One
  connection per task index: a second is refused and logged. When Spark encrypts its RPC, the
  tasks stay off with one log line, since this channel is not encrypted.
* **Traffic.** Task 0 is the root: the others connect to it the same way. Per iteration the
  driver sends the seed and the weights to the root only, which forwards them; each task folds
  its blocks into the largest whole subtrees of the :class:`~sparkgd.core.tree.CombineTree` it
  holds and sends them to the root, which combines the tree and sends the driver ONE vector, as
  ``treeAggregate(finalAggregateOnExecutor = true)`` does. The combine order is the tree's, so
  the result is bit for bit that of one Spark job per iteration, for any number of tasks.
* **Other work.** The job carries a job tag (and keeps the caller's job group, so the caller's
  ``cancelJobGroup`` cancels it and the training call fails, as MLlib's would). While the tasks
  are idle, a watcher hands their slots back (the call goes on with one job per iteration) when
  another job of the application has tasks waiting for a slot; a callback that runs a Spark job
  therefore completes.

Anything unexpected (a task or executor lost, a refused handshake, no slot) ends the resident
job and the caller runs the iteration in flight, and the next ones, as Spark jobs.
"""

from __future__ import annotations

import atexit
import functools
import logging
import secrets
import socket
import threading
import time
import uuid
import weakref
from typing import Any, Callable

import numpy as np
from pyspark import RDD, SparkContext

from sparkgd.core.block import BlockSummary, FoldSpec, summary_from_json
from sparkgd.core.tree import CombineTree
from sparkgd.engine import _spark, timeouts
from sparkgd.engine.channel import (
    ADDRESS,
    ITERATION,
    PIECES,
    PLAN,
    SETUP,
    STOP,
    SUMMARY,
    ChannelError,
    decode_address,
    decode_pieces,
    encode_iteration,
    encode_plan,
    pieces_size,
    recv,
    send,
)
from sparkgd.engine.executor import SERVE, ServeFirst, admit, bind, serve

log = logging.getLogger("sparkgd")
ENABLED = "spark.sparkgd.residentTasks"  # "false" turns resident tasks off (SparkConf or session conf)
PORT = "spark.sparkgd.resident.port"  # first port to try, as spark.driver.port; 0 (default): any free port
_ENCRYPTION = ("spark.network.crypto.enabled", "spark.ssl.rpc.enabled", "spark.ssl.enabled")


class Lost(Exception):
    """The resident tasks cannot go on. ``cancelled`` holds the Spark error when someone else cancelled them;
    ``busy`` says that other work of the application holds or wants the slots (try again when it is done)."""

    def __init__(self, message: str, cancelled: BaseException | None = None, busy: bool = False) -> None:
        super().__init__(message)
        self.cancelled = cancelled
        self.busy = busy


def spark_conf(sc: SparkContext) -> dict[str, str]:
    """The application's SparkConf, read once (``getConf`` copies all of it; it cannot change while it runs)."""
    app = sc.applicationId
    if app not in _SPARK_CONF:
        _SPARK_CONF[app] = dict(sc.getConf().getAll())
    return _SPARK_CONF[app]


_SPARK_CONF: dict[str, dict[str, str]] = {}


def _conf(sc: SparkContext, key: str, default: str) -> str:
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    value = session.conf.get(key, None) if session is not None else None
    return value if value is not None else spark_conf(sc).get(key, default)


def seconds(sc: SparkContext, key: str, default: float) -> float:
    """A duration from the Spark conf (``key``, in seconds), ``default`` when unset; a bad value is refused."""
    text = _conf(sc, key, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{key} must be a positive number of seconds, got {text!r}")
    return value


def off_reason(sc: SparkContext) -> str | None:
    """Why resident tasks cannot run in this application, or ``None`` when they can."""
    if _conf(sc, ENABLED, "true").lower() == "false":
        return f"{ENABLED}=false"
    conf = spark_conf(sc)
    if conf.get("spark.dynamicAllocation.enabled", "false").lower() == "true" and not sc.master.startswith("local"):
        return "dynamic allocation is on (tasks that hold executors would keep them from scaling down)"
    if conf.get("spark.speculation", "false").lower() == "true":
        return "spark.speculation=true (a speculative copy of a resident task would be refused and fail)"
    for key in _ENCRYPTION:
        if conf.get(key, "false").lower() == "true":
            return f"{key}=true: Spark encrypts its traffic and the resident channel is not encrypted"
    return None


class _Job:
    """A Spark job run from its own thread (so it inherits the caller's job group), tagged, with its outcome."""

    def __init__(self, sc: SparkContext, tag: str, action: Callable[[], Any], properties: dict[str, str]) -> None:
        from pyspark import InheritableThread

        self.error: BaseException | None = None
        self.cancelling = False
        self.thread = InheritableThread(target=self._run, args=(sc, tag, action, properties), daemon=True)

    def _run(self, sc: SparkContext, tag: str, action: Callable[[], Any], properties: dict[str, str]) -> None:
        sc.addJobTag(tag)
        for key, value in properties.items():
            sc.setLocalProperty(key, value)
        if self.cancelling:  # given up before the job was submitted
            return
        try:
            action()
        except BaseException as e:  # failed or cancelled: the driver side notices
            self.error = e


_FINISHING: weakref.WeakSet = weakref.WeakSet()  # jobs of builders that were told to stop and still run


def _finishing(job: _Job, sc: SparkContext) -> None:
    """Wait for ``job`` before ``sc`` stops and at interpreter exit: its tasks cache their blocks, and Spark
    stopping under them logs their end as errors (a script's ``spark.stop()`` right after ``fit``)."""
    if not _FINISHING:
        atexit.unregister(_finish)
        atexit.register(_finish)  # after pyspark's gateway hook: runs before it
    _spark.run_before_stop(sc, _finish)  # SparkSession.stop, the context manager: all call sc.stop
    _FINISHING.add(job)


def _finish() -> None:
    for job in list(_FINISHING):
        job.thread.join(timeout=timeouts.FINISH)


def _waiting(sc: SparkContext, tag: str, ours: bool) -> bool:
    """Whether a job of the application other than the one tagged ``tag`` (that one, with ``ours``) has tasks
    that do not run."""
    tagged = _spark.job_ids_for_tag(sc, tag)
    if tagged is None:
        return False
    tracker = sc.statusTracker()
    for job_id in tagged if ours else set(tracker.getActiveJobsIds()) - tagged:
        info = tracker.getJobInfo(job_id)
        for stage_id in info.stageIds if info is not None else ():
            stage = tracker.getStageInfo(stage_id)
            if stage is not None and stage.numTasks > stage.numActiveTasks + stage.numCompletedTasks:
                return True
    return False


class _HandOverClock:
    """Whether another job of the application has had tasks waiting for a slot for
    :data:`~sparkgd.engine.timeouts.HAND_OVER` seconds (or ``spark.sparkgd.resident.handOverAfter``), as a
    watcher polling every :data:`~sparkgd.engine.timeouts.WATCH_POLL` seconds sees it."""

    def __init__(self, sc: SparkContext, tag: str) -> None:
        self._sc, self._tag = sc, tag
        self._after = seconds(sc, timeouts.HAND_OVER_KEY, timeouts.HAND_OVER)
        self._since: float | None = None

    def reset(self) -> None:
        self._since = None

    def due(self) -> bool:
        if not _waiting(self._sc, self._tag, ours=False):
            self._since = None
            return False
        now = time.monotonic()
        if self._since is None:
            self._since = now
        return now - self._since >= self._after


def _driver_address(sc: SparkContext) -> tuple[str, socket.socket]:
    """The driver's host as executors reach it, and a listening socket there (:data:`PORT`)."""
    conf = spark_conf(sc)
    host = conf.get("spark.driver.host", "127.0.0.1")
    server = bind(conf.get("spark.driver.bindAddress", host), int(_conf(sc, PORT, "0")))
    server.settimeout(timeouts.ACCEPT_POLL)
    return host, server


class FirstTasks:
    """The tasks of the job that builds the blocks, kept up to serve the training call's iterations.

    Otherwise the blocks are built by one job and resident tasks start in another, which reads
    every block back from the block manager (0.2-0.5 s per 80 MB block on a laptop). When every
    partition can have a slot at once and no other job runs, each building task instead sends its
    block's summary to the driver over the resident channel and waits: for a plan (what
    :class:`ResidentTasks` would have in its closure), then serves as a resident task; or for STOP.
    Only then does it hand its block to Spark, which caches it. A block rebuilt later (a lost
    block, a retried task, any other job) is cached and nothing more: only the first attempt of a
    task of this job (local property :data:`SERVE`) waits. While they wait, other jobs of the
    application that want slots make them hand the blocks over and end, as resident tasks do.
    """

    def __init__(self, sc: SparkContext, num_partitions: int) -> None:
        self.sc, self.num_partitions = sc, num_partitions
        self.tag = f"sparkgd-build-{uuid.uuid4().hex}"
        host, self._server = _driver_address(sc)
        self.spec = ServeFirst((host, self._server.getsockname()[1]), secrets.token_bytes(32), uuid.uuid4().hex,
                               num_partitions)
        self._conns: dict[int, socket.socket] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.job: _Job | None = None

    @classmethod
    def open(cls, sc: SparkContext, num_partitions: int) -> FirstTasks | None:
        """Ready to build ``num_partitions`` blocks, or ``None`` when resident tasks are off, another job
        runs, or there are fewer free slots than partitions (the blocks are then built by a plain job)."""
        if num_partitions < 1 or off_reason(sc) is not None or sc.statusTracker().getActiveJobsIds():
            return None
        free = _spark.free_slots(sc)
        if free is None or free < num_partitions:
            return None
        try:
            return cls(sc, num_partitions)
        except OSError:
            return None

    def run(self, rdd: RDD) -> list[BlockSummary] | None:
        """Compute ``rdd`` (the blocks, built with :attr:`spec`) and return every block's summary once all its
        tasks wait; ``None`` when some task did not start in time or could not report (its job then runs to
        the end as a plain build, whose errors are raised here)."""
        self.job = _Job(self.sc, self.tag, lambda: _spark.jvm_count(rdd), {SERVE: self.spec.token})
        self.job.thread.start()
        summaries: dict[int, BlockSummary] = {}
        started = time.monotonic()
        try:
            while len(self._conns) < self.num_partitions and self.job.thread.is_alive():
                if time.monotonic() > started + timeouts.BUSY_AFTER and _waiting(self.sc, self.tag, ours=True):
                    log.debug("sparkgd: not every block-building task could start; the blocks are built by a plain job")
                    break
                try:
                    conn, peer = self._server.accept()
                except TimeoutError:
                    continue
                index = admit(conn, peer, self.spec.secret, range(self.num_partitions), self._conns,
                               "sparkgd block builders")
                if index is None:
                    continue
                try:
                    conn.settimeout(timeouts.SUMMARY)
                    _, payload = recv(conn, (SUMMARY,), 1 << 30)
                    summaries[index] = summary_from_json(payload)
                except (ChannelError, OSError, ValueError, TypeError, KeyError) as e:
                    log.warning("sparkgd block builders: task %d sent no summary (%s)", index, e)
                    conn.close()
                    break
                self._conns[index] = conn
        finally:
            self._server.close()
        if len(self._conns) < self.num_partitions:
            self.release()
            return None
        threading.Thread(target=self._watch, daemon=True).start()
        return [summaries[p] for p in range(self.num_partitions)]

    def take(self) -> dict[int, socket.socket] | None:
        """The waiting tasks' connections, for :meth:`ResidentTasks.adopt`; ``None`` if they were released."""
        with self._lock:
            self._stopped.set()
            conns, self._conns = self._conns, {}
            return conns or None

    def _watch(self) -> None:
        clock = _HandOverClock(self.sc, self.tag)
        while not self._stopped.wait(timeouts.WATCH_POLL):
            if clock.due():
                with self._lock:
                    if not self._stopped.is_set():
                        log.info("sparkgd block builders: another job wants their slots; they hand the blocks over")
                        self._stop_tasks()
                return

    def _stop_tasks(self) -> None:
        self._stopped.set()
        for conn in self._conns.values():
            try:
                conn.settimeout(timeouts.STOP_SEND)
                send(conn, STOP)
            except OSError:
                pass
            conn.close()
        self._conns = {}

    def release(self, raise_error: bool = True) -> None:
        """Let the waiting tasks hand their blocks to Spark, and wait for the job's end (its error is raised)."""
        with self._lock:
            self._stop_tasks()
        if self.job is None:
            return
        self.job.thread.join()
        if self.job.error is not None:
            if raise_error:
                raise self.job.error
            log.warning("sparkgd block builders: their job failed: %s", _short(self.job.error))


class ResidentTasks:
    """``num_tasks`` tasks over ``blocks_rdd`` that return each iteration's combined sums.

    Raises :class:`Lost` when they cannot start (no connection in ``timeout`` seconds, the job
    failed, or another job of the application started waiting meanwhile). :meth:`adopt` makes
    them of the :class:`FirstTasks` that built the blocks instead.
    """

    def __init__(self, sc: SparkContext, blocks_rdd: RDD, num_tasks: int, depth: int, spec: FoldSpec,
                 num_weights: int, timeout: float | None = None) -> None:
        self._setup(sc, f"sparkgd-resident-{uuid.uuid4().hex}", CombineTree(blocks_rdd.getNumPartitions(), depth),
                    num_weights)
        port = int(_conf(sc, PORT, "0"))
        try:
            host, self._server = _driver_address(sc)
        except OSError as e:
            raise Lost(f"cannot listen on the driver: {e}") from None
        secret = secrets.token_bytes(32)
        source = blocks_rdd if num_tasks == blocks_rdd.getNumPartitions() else blocks_rdd.coalesce(num_tasks)
        job = source.mapPartitionsWithIndex(functools.partial(
            serve, driver=(host, self._server.getsockname()[1]), secret=secret, spec=spec,
            num_partitions=self._tree.num_partitions, depth=depth, num_weights=num_weights, port=port,
            num_tasks=num_tasks))
        self._job = _Job(sc, self._tag, job.collect, {})
        if self.waiting_elsewhere():
            self._server.close()
            raise Lost("another job of the application is waiting for slots", busy=True)
        self._job.thread.start()
        try:
            start = seconds(sc, timeouts.START_KEY, timeouts.START) if timeout is None else timeout
            self._root = self._connect(num_tasks, secret, time.monotonic() + start)
        except BaseException:
            self.stop(cancel=True)
            raise
        finally:
            self._server.close()
        self._watch_start()
        log.info("resident tasks: %d tasks serve the %d partitions for every iteration of this training call",
                 num_tasks, self._tree.num_partitions)

    @classmethod
    def adopt(cls, first: FirstTasks, depth: int, spec: FoldSpec, num_weights: int) -> ResidentTasks:
        """The tasks that built the blocks (and wait), serving from now on; :class:`Lost` when they cannot
        (they then hand their blocks to Spark and end)."""
        self = cls.__new__(cls)
        self._setup(first.sc, first.tag, CombineTree(first.num_partitions, depth), num_weights)
        plan = encode_plan(spec, depth, num_weights, int(_conf(first.sc, PORT, "0")))
        conns = first.take() if plan is not None else None
        if conns is None:
            first.release(raise_error=False)
            raise Lost("the tasks that built the blocks cannot serve this call" if plan is None else
                       "the tasks that built the blocks handed them over")
        assert first.job is not None
        self._job, self._builders = first.job, True
        try:
            for conn in conns.values():
                send(conn, PLAN, plan)
            self._root = self._link(conns)
        except BaseException:
            self.stop()
            raise
        self._watch_start()
        log.info("resident tasks: the %d tasks that built the blocks serve every iteration of this training call",
                 self._tree.num_partitions)
        return self

    def _setup(self, sc: SparkContext, tag: str, tree: CombineTree, num_weights: int) -> None:
        self._sc, self._tag, self._tree, self._d = sc, tag, tree, num_weights
        self._lock = threading.Lock()
        self._root: socket.socket | None = None
        self._builders = False  # the tasks that built the blocks (adopt)
        self.handed_over = False

    def _watch_start(self) -> None:
        self._stopped = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _alive(self) -> bool:
        return self._job.thread.is_alive()

    def _ended(self, what: str) -> Lost:
        self._job.thread.join(timeout=timeouts.JOB_END)  # a broken channel: the job is ending, wait for its outcome
        error = self._job.error
        outside = error is not None and not self._job.cancelling and "cancel" in str(error).lower()
        return Lost(f"{what}: {_short(error)}" if error else what, cancelled=error if outside else None)

    def waiting_elsewhere(self, ours_too: bool = False) -> bool:
        """Whether a job of the application other than ours (or ours, with ``ours_too``) has tasks that do not run."""
        return _waiting(self._sc, self._tag, ours_too)

    def _connect(self, num_tasks: int, secret: bytes, deadline: float) -> socket.socket:
        conns: dict[int, socket.socket] = {}
        started = time.monotonic()
        try:
            while len(conns) < num_tasks:
                if not self._alive():
                    raise self._ended("the resident job ended before its tasks connected")
                if time.monotonic() > deadline:
                    raise Lost(f"only {len(conns)} of {num_tasks} resident tasks connected in time")
                if time.monotonic() > started + timeouts.BUSY_AFTER and self.waiting_elsewhere(ours_too=True):
                    raise Lost("the slots are busy: not every resident task could start", busy=True)
                try:
                    conn, peer = self._server.accept()
                except TimeoutError:
                    continue
                index = admit(conn, peer, secret, range(num_tasks), conns, "resident tasks")
                if index is not None:
                    conns[index] = conn
        except BaseException as e:
            for conn in conns.values():
                conn.close()
            if isinstance(e, (ChannelError, OSError)):
                raise Lost(f"resident tasks did not set up: {e}") from None
            raise
        return self._link(conns)

    def _link(self, conns: dict[int, socket.socket]) -> socket.socket:
        """Tell tasks 1.. where the root (task 0) listens; the driver keeps its connection to the root only."""
        try:
            _, address = recv(conns[0], (ADDRESS,), 1024)
            decode_address(address)
            for i in range(1, len(conns)):
                send(conns[i], SETUP, address)
                conns.pop(i).close()
            root = conns.pop(0)
            root.settimeout(timeouts.ROOT_POLL)  # wakes up to check that the job still runs
            return root
        except (ChannelError, OSError) as e:
            raise Lost(f"resident tasks did not set up: {e}") from None
        finally:
            for conn in conns.values():
                conn.close()

    def __call__(self, weights: np.ndarray, seed: int) -> Any:
        """The root of the combine tree for these weights and seed (:class:`~sparkgd.core.sums.Sums`)."""
        with self._lock:
            if self._root is None:
                raise Lost("the resident tasks handed their slots over to another job")
            if not self._alive():  # cancelled or failed: Python workers may answer until they are killed
                self._close_root()
                raise self._ended("the resident job ended")
            try:
                send(self._root, ITERATION, encode_iteration(seed, weights))
                _, payload = recv(self._root, (PIECES,), pieces_size(1, self._d), self._alive)
                pieces = decode_pieces(payload, self._d)
            except (ChannelError, OSError) as e:
                self._close_root()
                raise self._ended(f"a resident task failed ({e})") from None
            if set(pieces) != {self._tree.root}:
                self._close_root()
                raise Lost("the resident root sent a partial result")
            return pieces[self._tree.root]

    def _watch(self) -> None:
        clock = _HandOverClock(self._sc, self._tag)
        while not self._stopped.wait(timeouts.WATCH_POLL):
            if not self._lock.acquire(blocking=False):
                clock.reset()  # an iteration is in flight: the tasks are busy, not idle
                continue
            try:
                if self._root is None:
                    return
                if clock.due():
                    log.info("resident tasks: another job of the application is waiting for slots; handing them "
                             "over (later iterations of this call run one Spark job each)")
                    self.handed_over = True
                    self._close_root()
                    return
            finally:
                self._lock.release()

    def _close_root(self) -> None:
        if self._root is not None:
            try:
                self._root.settimeout(timeouts.STOP_SEND)
                send(self._root, STOP)
            except OSError:
                pass
            self._root.close()
            self._root = None

    def stop(self, cancel: bool = False) -> None:
        """Tell the tasks to finish and wait for the job; cancel it (by its tag) if it does not end.

        The cancel is repeated until the job is gone: a job submitted just after a cancel would
        otherwise hold its slots until its tasks time out. Tasks that built the blocks
        (:meth:`adopt`) are not waited for: after STOP they hand their blocks to Spark, which caches
        them while the caller goes on (:meth:`BlockedData.unpersist` waits for that job).
        """
        if hasattr(self, "_stopped"):
            self._stopped.set()
            self._watcher.join(timeout=timeouts.WATCHER_JOIN)  # not left running into interpreter shutdown
        with self._lock:
            self._close_root()
        if not cancel and self._builders:
            _finishing(self._job, self._sc)
            return
        if not cancel:
            self._job.thread.join(timeout=timeouts.JOB_END)
        self._job.cancelling = True
        deadline = time.monotonic() + timeouts.CANCEL
        while self._job.thread.is_alive() and time.monotonic() < deadline:
            self._sc.cancelJobsWithTag(self._tag)
            self._job.thread.join(timeout=timeouts.CANCEL_POLL)
        if self._job.thread.is_alive():
            log.warning("resident tasks: their job did not end within %.0f s of its cancellation", timeouts.CANCEL)


def _short(error: BaseException) -> str:
    """The first lines of a Spark job's error that say what happened (py4j wraps the Python traceback)."""
    text = str(error)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("\tat ", "  File "))]
    return " | ".join(lines[:1] + [ln for ln in lines if "Error" in ln or "Exception" in ln][-2:])[:600]

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
  instead, and hand their blocks to Spark at the end (:meth:`Crew.builders`).
* **Channel.** Every task connects to a socket on the driver (``spark.sparkgd.resident.port``,
  any free port by default) and proves a per-call secret by challenge-response
  (:mod:`sparkgd.engine.channel`); only fixed binary frames follow, never a pickle, each sealed
  with AES-GCM under a key of its connection and direction. One connection per task index: a
  second is refused and logged. With dynamic allocation they use the executors present when
  they start.
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
import enum
import functools
import logging
import re
import secrets
import select
import socket
import threading
import time
import uuid
import weakref
from typing import Any, Callable, Iterator

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
    Link,
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


def spark_seconds(text: str | None, default: float, bare: str = "ms") -> float:
    """A Spark time value (``"3s"``, ``"100ms"``, ``"2min"``) in seconds; a bare number is in ``bare`` (ms for
    ``spark.locality.wait``); ``default`` when unset or unreadable."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|min|h)?\s*", text or "")
    if m is None:
        return default
    scale = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
    return float(m.group(1)) * scale[m.group(2) or bare]


def busy_after(sc: SparkContext) -> float:
    """How long a start waits for its own tasks to get slots: :data:`~timeouts.BUSY_AFTER`, and at least the
    locality wait (a coalesced group waits that long for a slot on its blocks' host before Spark runs it
    elsewhere; giving up sooner made starts fail whenever one host's slots were the busy ones)."""
    locality = spark_seconds(spark_conf(sc).get("spark.locality.wait", "3s"), 3.0)
    return max(timeouts.BUSY_AFTER, locality + timeouts.BUSY_AFTER / 4)


def off_reason(sc: SparkContext) -> str | None:
    """Why resident tasks cannot run in this application, or ``None`` when they can.

    Dynamic allocation, speculation and Spark's encryption leave them on: they use the executors
    present when they start (one removed is a lost task: the call goes on with Spark jobs), and
    every frame of their channel is sealed (:class:`~sparkgd.engine.channel.Link`). A second
    attempt of a resident task (a retry, a speculative copy) never serves: it waits on the driver as
    a copy until the crew stops (:func:`~sparkgd.engine.executor.serve`).
    """
    if _conf(sc, ENABLED, "true").lower() == "false":
        return f"{ENABLED}=false"
    return None


def _speculating(sc: SparkContext) -> bool:
    """With speculation a copy of a block-building task could end first and make Spark kill the builder that
    waits to serve: the blocks are then built by a plain job (copies of it are harmless)."""
    return spark_conf(sc).get("spark.speculation", "false").lower() == "true"


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


def _stages(sc: SparkContext, tag: str, ours: bool) -> Iterator[Any]:
    """The stages of the jobs tagged ``tag`` (with ``ours``) or of the other active jobs of the application."""
    tagged = _spark.job_ids_for_tag(sc, tag)
    if tagged is None:
        return
    tracker = sc.statusTracker()
    for job_id in tagged if ours else set(tracker.getActiveJobsIds()) - tagged:
        info = tracker.getJobInfo(job_id)
        for stage_id in info.stageIds if info is not None else ():
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                yield stage


def _waiting(sc: SparkContext, tag: str, ours: bool) -> bool:
    """Whether a job of the application other than the one tagged ``tag`` (that one, with ``ours``) has tasks
    that do not run."""
    return any(s.numTasks > s.numActiveTasks + s.numCompletedTasks for s in _stages(sc, tag, ours))


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


class State(enum.Enum):
    """Where a :class:`Crew` is: its job's tasks connecting, waiting with their blocks for a plan (builders
    only), serving iterations, handed over to other work of the application, or stopped."""

    STARTING = "starting"
    WAITING = "waiting"
    SERVING = "serving"
    HANDED_OVER = "handed over"
    STOPPED = "stopped"


class Crew:
    """The tasks of one Spark job that serve a training call's iterations over the resident channel.

    Two ways to start, which differ only in how the connections arrive (one accept loop takes
    both): :meth:`start` submits a job over the cached blocks whose tasks have the plan in their
    closure; :meth:`builders` readies the job that builds the blocks, whose tasks connect with
    their block's summary and wait (:attr:`State.WAITING`) until :meth:`serve` sends them the
    plan or :meth:`release` lets them hand their blocks to Spark.

    Building the blocks in one job and starting resident tasks in another reads every block back
    from the block manager (0.2-0.5 s per 80 MB block on a laptop); builders that serve skip
    that. Only the first attempt of a task of the build job (local property :data:`SERVE`) waits:
    a block rebuilt later (a lost block, a retried task, any other job) is just cached. While the
    crew waits or serves, one watcher hands the slots over when another job of the application
    has had tasks waiting for them (:class:`_HandOverClock`); the call then goes on with one
    Spark job per iteration.
    """

    def __init__(self, sc: SparkContext, tag: str, num_tasks: int, builders: bool) -> None:
        self.sc, self.tag, self.num_tasks, self.builders = sc, tag, num_tasks, builders
        self.state = State.STARTING
        self.who = "sparkgd block builders" if builders else "resident tasks"  # in log lines
        host, self._server = _driver_address(sc)
        self.address = (host, self._server.getsockname()[1])
        self.secret = secrets.token_bytes(32)
        self.job: _Job | None = None
        self.serve_first: ServeFirst | None = None  # builders only: what their build tasks need to wait
        self._conns: dict[int, Link] = {}  # every task's connection while WAITING
        self._copies: list[Link] = []  # second attempts of tasks (retries, speculative copies): they wait for STOP
        self._root: Link | None = None  # the root's while SERVING
        self._tree: CombineTree | None = None
        self._d = 0
        self._lock = threading.Lock()  # held by an iteration in flight and by every change of state
        self._wake = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- the two starts --------------------------------------------------------------------------

    @classmethod
    def start(cls, sc: SparkContext, blocks_rdd: RDD, num_tasks: int, depth: int, spec: FoldSpec,
              num_weights: int, timeout: float | None = None) -> Crew:
        """``num_tasks`` tasks over ``blocks_rdd``, serving; :class:`Lost` when they cannot start (no
        connection in ``timeout`` seconds, the job failed, or another job started waiting meanwhile)."""
        try:
            crew = cls(sc, f"sparkgd-resident-{uuid.uuid4().hex}", num_tasks, builders=False)
        except OSError as e:
            raise Lost(f"cannot listen on the driver: {e}") from None
        crew._tree, crew._d = CombineTree(blocks_rdd.getNumPartitions(), depth), num_weights
        source = blocks_rdd if num_tasks == blocks_rdd.getNumPartitions() else blocks_rdd.coalesce(num_tasks)
        job = source.mapPartitionsWithIndex(functools.partial(
            serve, driver=crew.address, secret=crew.secret, spec=spec, num_partitions=crew._tree.num_partitions,
            depth=depth, num_weights=num_weights, port=int(_conf(sc, PORT, "0")), num_tasks=num_tasks))
        if _waiting(sc, crew.tag, ours=False):
            crew._server.close()
            raise Lost("another job of the application is waiting for slots", busy=True)
        crew._submit(job.collect, {})
        try:
            wait = seconds(sc, timeouts.START_KEY, timeouts.START) if timeout is None else timeout
            crew._link(crew._accept(time.monotonic() + wait))
        except BaseException:
            crew.stop(cancel=True)
            raise
        log.info("resident tasks: %d tasks serve the %d partitions for every iteration of this training call",
                 num_tasks, crew._tree.num_partitions)
        return crew

    @classmethod
    def builders(cls, sc: SparkContext, num_partitions: int) -> Crew | None:
        """A crew to build ``num_partitions`` blocks with :attr:`serve_first` and wait, or ``None`` when resident
        tasks are off, another job runs, or there are fewer free slots than partitions (a plain build then)."""
        if (num_partitions < 1 or off_reason(sc) is not None or _speculating(sc)
                or sc.statusTracker().getActiveJobsIds()):
            return None
        free = _spark.free_slots(sc)
        if free is None or free < num_partitions:
            return None
        try:
            crew = cls(sc, f"sparkgd-build-{uuid.uuid4().hex}", num_partitions, builders=True)
        except OSError:
            return None
        crew.serve_first = ServeFirst(crew.address, crew.secret, uuid.uuid4().hex, num_partitions)
        return crew

    def build(self, rdd: RDD) -> list[BlockSummary] | None:
        """Compute ``rdd`` (blocks built with :attr:`serve_first`) and return every block's summary once all its
        tasks wait; ``None`` when some task did not start or report in time (its job then runs to the end as a
        plain build, whose error is raised here)."""
        summaries: dict[int, BlockSummary] = {}

        def summary(index: int, conn: Link) -> None:
            conn.settimeout(timeouts.SUMMARY)
            try:
                summaries[index] = summary_from_json(recv(conn, (SUMMARY,), 1 << 30)[1])
            except (ValueError, TypeError, KeyError) as e:
                raise ChannelError(f"task {index} sent a bad summary ({e})") from None

        assert self.serve_first is not None, "build() is for a crew made by Crew.builders"
        self._submit(lambda: _spark.jvm_count(rdd), {SERVE: self.serve_first.token})
        try:
            conns = self._accept(None, summary)
        except Lost as e:
            (log.debug if e.busy else log.info)("sparkgd block builders: %s; the blocks are built by a plain job", e)
            self.release()
            return None
        with self._lock:
            self._conns, self.state = conns, State.WAITING
        self._watch()
        return [summaries[p] for p in range(self.num_tasks)]

    def serve(self, depth: int, spec: FoldSpec, num_weights: int) -> None:
        """Make the waiting builders serve this call; :class:`Lost` when they cannot (they then hand their
        blocks to Spark and end)."""
        plan = encode_plan(spec, depth, num_weights, int(_conf(self.sc, PORT, "0")))
        with self._lock:
            waiting = self.state is State.WAITING
            conns, self._conns = (self._conns, {}) if waiting and plan is not None else ({}, self._conns)
        if not conns:
            self.release(raise_error=False)
            raise Lost("the tasks that built the blocks handed them over" if plan is not None and not waiting else
                       "the tasks that built the blocks cannot serve this call")
        self._tree, self._d = CombineTree(self.num_tasks, depth), num_weights
        try:
            for conn in conns.values():
                send(conn, PLAN, plan)
            self._link(conns)
        except BaseException:
            self.stop()
            raise
        log.info("resident tasks: the %d tasks that built the blocks serve every iteration of this training call",
                 self.num_tasks)

    def _submit(self, action: Callable[[], Any], properties: dict[str, str]) -> None:
        self.job = _Job(self.sc, self.tag, action, properties)
        self.job.thread.start()

    def _accept(self, deadline: float | None,
                admitted: Callable[[int, Link], None] | None = None) -> dict[int, Link]:
        """Every task's connection, by task index (``admitted`` reads what a task sends first); :class:`Lost` when
        the job ends, ``deadline`` passes, or some task waits for a slot after :func:`busy_after`."""
        conns: dict[int, Link] = {}
        started, patience = time.monotonic(), busy_after(self.sc)
        try:
            while len(conns) < self.num_tasks:
                if not self._healthy():
                    raise self._ended("the job ended (or a task of it failed) before its tasks connected")
                if deadline is not None and time.monotonic() > deadline:
                    raise Lost(f"only {len(conns)} of {self.num_tasks} tasks connected in time")
                if time.monotonic() > started + patience and _waiting(self.sc, self.tag, ours=True):
                    raise Lost("the slots are busy: not every task could start", busy=True)
                try:
                    conn, peer = self._server.accept()
                except TimeoutError:
                    continue
                got = admit(conn, peer, self.secret, range(self.num_tasks), conns, self.who, self._copies)
                if got is None:
                    continue
                index, link = got
                conns[index] = link
                if admitted is not None:
                    admitted(index, link)
        except BaseException as e:
            self._server.close()  # tasks that connect later are refused and end at once
            for conn in conns.values():
                conn.close()
            if isinstance(e, (ChannelError, OSError)):
                raise Lost(f"the tasks did not set up: {e}") from None
            raise
        return conns  # the socket stays open for second attempts of the tasks until the crew stops

    def _link(self, conns: dict[int, Link]) -> None:
        """Tell tasks 1.. where the root (task 0) listens; keep the connection to the root only: SERVING."""
        try:
            _, address = recv(conns[0], (ADDRESS,), 1024)
            decode_address(address)
            for i in range(1, len(conns)):
                send(conns[i], SETUP, address)
                conns.pop(i).close()
            root = conns.pop(0)
            root.settimeout(timeouts.ROOT_POLL)  # wakes up to check that the job still runs
        except (ChannelError, OSError) as e:
            raise Lost(f"resident tasks did not set up: {e}") from None
        finally:
            for conn in conns.values():
                conn.close()
        with self._lock:
            self._root, self.state = root, State.SERVING
        self._watch()

    # -- serving ---------------------------------------------------------------------------------

    def __call__(self, weights: np.ndarray, seed: int) -> Any:
        """The root of the combine tree for these weights and seed (:class:`~sparkgd.core.sums.Sums`)."""
        with self._lock:
            if self.state is not State.SERVING or self._root is None:
                raise Lost(f"the resident tasks are {self.state.value}")
            if not self._alive():  # cancelled or failed: Python workers may answer until they are killed
                self._hang_up()
                raise self._ended("the resident job ended")
            try:
                send(self._root, ITERATION, encode_iteration(seed, weights))
                _, payload = recv(self._root, (PIECES,), pieces_size(1, self._d), self._healthy)
                pieces = decode_pieces(payload, self._d)
            except (ChannelError, OSError) as e:
                self._hang_up()
                raise self._ended(f"a resident task failed ({e})") from None
            assert self._tree is not None
            if set(pieces) != {self._tree.root}:
                self._hang_up()
                raise Lost("the resident root sent a partial result")
            return pieces[self._tree.root]

    @property
    def handed_over(self) -> bool:
        return self.state is State.HANDED_OVER

    def _alive(self) -> bool:
        return self.job is not None and self.job.thread.is_alive()

    def _healthy(self) -> bool:
        """The job runs and none of its tasks failed. A second attempt of a resident task (a retry, a speculative
        copy) waits as a copy instead of serving, so a failed task would leave the crew one short for good."""
        return self._alive() and not any(s.numFailedTasks for s in _stages(self.sc, self.tag, ours=True))

    def _ended(self, what: str) -> Lost:
        assert self.job is not None
        self.job.thread.join(timeout=timeouts.JOB_END)  # a broken channel: the job is ending, wait for its outcome
        error = self.job.error
        outside = error is not None and not self.job.cancelling and _spark.cancelled(error)
        return Lost(f"{what}: {_short(error)}" if error else what, cancelled=error if outside else None)

    def _watch(self) -> None:
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._hand_over_when_due, daemon=True)
            self._watcher.start()

    def _admit_copies(self) -> None:
        """Take the second attempts of tasks that wait to connect (they are told STOP with the crew; any other
        connection is refused)."""
        while True:
            try:
                if not select.select([self._server], [], [], 0)[0]:
                    return
                conn, peer = self._server.accept()
            except (OSError, ValueError):  # closed by stop meanwhile
                return
            copies: list[Link] = []
            if admit(conn, peer, self.secret, range(self.num_tasks), range(self.num_tasks), self.who, copies) is None:
                with self._lock:
                    keep = self.state in (State.WAITING, State.SERVING)
                    if keep:
                        self._copies += copies
                for link in copies if not keep else ():
                    link.close()

    def _hand_over_when_due(self) -> None:
        clock = _HandOverClock(self.sc, self.tag)
        while not self._wake.wait(timeouts.WATCH_POLL):
            self._admit_copies()
            if not self._lock.acquire(blocking=False):
                clock.reset()  # an iteration is in flight: the tasks are busy, not idle
                continue
            try:
                if self.state not in (State.WAITING, State.SERVING):
                    return
                if clock.due():
                    log.info("%s: another job of the application is waiting for slots; handing them over (later "
                             "iterations of this call run one Spark job each)", self.who)
                    self._hang_up()
                    self.state = State.HANDED_OVER
                    return
            finally:
                self._lock.release()

    def _hang_up(self) -> None:
        """Send STOP on every connection held and close it, and stop listening (caller holds the lock)."""
        self._server.close()
        held = list(self._conns.values()) + ([self._root] if self._root is not None else []) + self._copies
        self._conns, self._root, self._copies = {}, None, []
        for conn in held:
            try:
                conn.settimeout(timeouts.STOP_SEND)
                send(conn, STOP)
            except OSError as e:  # the task is gone already: its job's outcome says why
                log.debug("%s: STOP not sent (%s)", self.who, e)
            conn.close()

    # -- the one stop ----------------------------------------------------------------------------

    def stop(self, cancel: bool = False) -> None:
        """Tell the tasks to finish and wait for the job; cancel it (by its tag) if it does not end.

        The cancel is repeated until the job is gone: a job submitted just after a cancel would
        otherwise hold its slots until its tasks time out. Builders are not waited for: after STOP
        they hand their blocks to Spark, which caches them while the caller goes on
        (:meth:`BlockedData.unpersist` waits for that job).
        """
        self._wake.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=timeouts.WATCHER_JOIN)  # not left running into interpreter shutdown
        with self._lock:
            self._hang_up()
            if self.state is not State.HANDED_OVER:
                self.state = State.STOPPED
        job = self.job
        if job is None:
            return
        if not cancel and self.builders:
            _finishing(job, self.sc)
            return
        if not cancel:
            job.thread.join(timeout=timeouts.JOB_END)
        job.cancelling = True
        deadline = time.monotonic() + timeouts.CANCEL
        while job.thread.is_alive() and time.monotonic() < deadline:
            self.sc.cancelJobsWithTag(self.tag)
            job.thread.join(timeout=timeouts.CANCEL_POLL)
        while cancel and any(s.numActiveTasks for s in _stages(self.sc, self.tag, ours=True)) \
                and time.monotonic() < deadline:
            time.sleep(timeouts.CANCEL_POLL)  # killed Python tasks hold their slots for a while: free when we return
        if job.thread.is_alive():
            log.warning("%s: the job did not end within %.0f s of its cancellation", self.who, timeouts.CANCEL)

    def release(self, raise_error: bool = True) -> None:
        """Stop, and wait for the job's end (builders: until they have handed their blocks to Spark); its error
        is raised, or logged without ``raise_error``."""
        self.stop()
        if self.job is None:
            return
        self.job.thread.join()
        if self.job.error is not None:
            if raise_error:
                raise self.job.error
            log.warning("%s: their job failed: %s", self.who, _short(self.job.error))


def _short(error: BaseException) -> str:
    """The first lines of a Spark job's error that say what happened (py4j wraps the Python traceback)."""
    text = str(error)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("\tat ", "  File "))]
    return " | ".join(lines[:1] + [ln for ln in lines if "Error" in ln or "Exception" in ln][-2:])[:600]

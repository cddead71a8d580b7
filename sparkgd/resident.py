"""Resident tasks: one long-running task per partition that computes every iteration's partial sums.

A Spark job costs about 50 ms on this kind of machine even when its tasks do 1 ms of work
(DESIGN.md): scheduling, task launch, the hand-off to a Python worker and back. MLlib pays it
too, once per iteration. Resident tasks pay it once per training call instead. One barrier job
(all its tasks start together, or none) runs one task per partition; each task connects back to
a socket the driver opened, then loops: receive ``(seed, weights)``, fold its partition exactly
as :class:`~sparkgd.aggregation.IteratedAggregation`'s job would, send the partial sums back.
The driver combines them in partition order, as before, and updates the weights itself, so
callbacks, checkpoints and the results are those of the one-job-per-iteration engine.

Tasks authenticate with a random token shipped in their closure before the driver reads
anything else from them; they never unpickle what they receive (raw seed and float64 bytes).

Anything unexpected (a task or executor lost, a task error, no free slots for every partition,
the tasks not connecting in time) ends the resident job; the caller then runs the remaining
iterations one job each, starting with the iteration that was in flight, so nothing is lost and
the results do not change. The tasks hold one core each for the length of the training call;
the driver-side loop must not start other Spark jobs that need those cores in the meantime.
"""

from __future__ import annotations

import functools
import hmac
import logging
import pickle
import secrets
import socket
import struct
import time
import uuid
from typing import Any, Callable, Iterable

import numpy as np
from pyspark import SparkContext

log = logging.getLogger("sparkgd")
ENABLED = "spark.sparkgd.residentTasks"  # "false" turns resident tasks off (SparkConf or session conf)
_LEN = struct.Struct("<Q")
_SEED = struct.Struct("<q")


class Lost(Exception):
    """The resident tasks cannot go on; the caller continues with one job per iteration.

    ``unreachable`` when the tasks ran but could not connect to the driver (e.g. a firewall
    between executors and driver): :func:`task_count` then stays 0 for the rest of the application.
    """

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


_UNREACHABLE: set[str] = set()  # applications whose executors could not reach the driver
_NO_ROUTE = "a sparkgd resident task cannot connect to the driver"


def task_count(sc: SparkContext, num_partitions: int) -> int:
    """How many resident tasks to run: one per free task slot, at most one per partition; 0 when off.

    Off when ``spark.sparkgd.residentTasks`` is ``false`` (in the SparkConf or the session's
    conf), under dynamic allocation (Spark refuses barrier jobs) and with Spark's network
    encryption on (the tasks' sockets are not encrypted).
    """
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    conf = sc.getConf()
    value = session.conf.get(ENABLED, None) if session is not None else None
    if (value or conf.get(ENABLED, "true")).lower() == "false" or sc.applicationId in _UNREACHABLE:
        return 0
    if conf.get("spark.dynamicAllocation.enabled", "false").lower() == "true" and not sc.master.startswith("local"):
        return 0
    if conf.get("spark.network.crypto.enabled", "false").lower() == "true":
        return 0
    try:
        jsc = sc._jsc.sc()
        slots = jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().defaultResourceProfile())
        busy = sum(e.numRunningTasks() for e in jsc.statusTracker().getExecutorInfos())
    except Exception:  # internal Spark APIs: without them, stay with one job per iteration
        return 0
    return max(0, min(num_partitions, slots - busy))


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_LEN.pack(len(payload)) + payload)


def _recv_exact(sock: socket.socket, n: int, alive: Callable[[], bool] | None = None) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        try:
            k = sock.recv_into(view[got:])
        except TimeoutError:
            if alive is None:
                raise Lost("a resident task did not answer in time") from None
            if not alive():
                raise Lost("the resident job ended") from None
            continue
        if k == 0:
            raise Lost("a resident task closed its connection")
        got += k
    return buf


def _recv(sock: socket.socket, alive: Callable[[], bool] | None = None) -> bytearray:
    (n,) = _LEN.unpack(_recv_exact(sock, _LEN.size, alive))
    return _recv_exact(sock, n, alive)


def _serve(task: int, rows: Iterable[Any], *, address: tuple[str, int], token: bytes, fold: Callable[..., Any],
           shares: bool) -> list[Any]:
    """The task: connect to the driver, then fold its partitions for every ``(seed, weights)`` received.

    With ``shares`` the rows are the partitions to fold; otherwise (no rows) its own, ``task``.
    """
    rows = list(rows)  # consumed, so that Spark can reuse this Python worker afterwards
    partitions = rows if shares else [task]
    try:
        sock = socket.create_connection(address, timeout=10)
    except OSError as e:
        raise ConnectionError(f"{_NO_ROUTE} at {address[0]}:{address[1]}: {e}") from None
    with sock:
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _send(sock, token + _SEED.pack(task))
        while True:
            try:
                msg = _recv(sock)
            except Lost:
                break  # the driver is gone
            if not msg:
                break  # the driver's stop
            (seed,) = _SEED.unpack_from(msg)
            weights = np.frombuffer(msg, dtype="<f8", offset=_SEED.size)
            accs = [fold(None, partition, weights=weights, seed=seed) for partition in partitions]
            _send(sock, pickle.dumps(accs, protocol=pickle.HIGHEST_PROTOCOL))
    return []


class ResidentTasks:
    """``num_tasks`` barrier tasks that fold the partitions of ``index`` on request.

    With a task per partition, task ``p`` folds partition ``p`` and runs where Spark places
    ``index``'s tasks (:func:`~sparkgd.aggregation.placed_index`: where its block is stored);
    with fewer, each folds a contiguous, ascending share of the partitions.

    Parameters
    ----------
    sc : SparkContext
        The context the job runs in.
    index : RDD
        One (empty) partition per partition to fold; each is folded on its own: ``fold(None, p, ...)``.
    num_tasks : int
        Tasks (at most the free task slots: a barrier job starts all its tasks at once).
    fold : callable
        ``fold(acc, partition, *, weights, seed) -> acc``, run in the tasks; ``acc`` starts at ``None``.
    timeout : float
        Seconds to wait for every task to connect.

    Raises
    ------
    Lost
        When the tasks do not all connect in time or the job fails first.
    """

    def __init__(self, sc: SparkContext, index: Any, num_tasks: int, fold: Callable[..., Any],
                 timeout: float = 20.0) -> None:
        from pyspark import InheritableThread

        self._sc = sc
        conf = sc.getConf()
        host = conf.get("spark.driver.host", "127.0.0.1")
        try:
            self._server = socket.create_server((conf.get("spark.driver.bindAddress", host), 0))
        except OSError as e:
            raise Lost(f"cannot listen on the driver's address {host!r}: {e}") from None
        self._server.settimeout(0.2)
        token = secrets.token_hex(16).encode("ascii")
        self._group = f"sparkgd-resident-{uuid.uuid4().hex}"
        num_partitions = index.getNumPartitions()
        shares = num_tasks < num_partitions
        if shares:
            index = sc.parallelize(range(num_partitions), num_tasks)  # task j: a contiguous, ascending share
        job = index.barrier().mapPartitionsWithIndex(functools.partial(
            _serve, address=(host, self._server.getsockname()[1]), token=token, fold=fold, shares=shares))
        self._error: BaseException | None = None
        self._thread = InheritableThread(target=self._run, args=(job,), daemon=True)
        self._conns: list[socket.socket] = []
        self._thread.start()
        try:
            self._conns = self._accept(num_tasks, token, time.monotonic() + timeout)
        except BaseException as e:
            self.stop(cancel=True)
            if isinstance(e, Lost) and e.unreachable:
                _UNREACHABLE.add(sc.applicationId)
                log.warning("no resident task could reach the driver at %s: resident tasks stay off for this "
                            "application (set %s=false to skip this attempt)", host, ENABLED)
            raise
        log.info("resident tasks: %d tasks serve the %d partitions for every iteration of this training call",
                 num_tasks, num_partitions)

    def _run(self, job: Any) -> None:
        self._sc.setJobGroup(self._group, "sparkgd resident tasks", interruptOnCancel=True)
        self._sc._jsc.setCallSite("sparkgd resident tasks")  # the job's name in the Spark UI
        try:
            from sparkgd.aggregation import _collect  # imported here: aggregation imports this module

            _collect(job, job._jrdd.rdd())  # not job.collect(), which would name the job after this thread's call site
        except BaseException as e:  # a failed or cancelled job: the driver loop notices and falls back
            self._error = e

    def _alive(self) -> bool:
        return self._thread.is_alive()

    def _accept(self, num: int, token: bytes, deadline: float) -> list[socket.socket]:
        conns: dict[int, socket.socket] = {}
        try:
            while len(conns) < num:
                if not self._alive():
                    raise Lost(f"the resident job ended before its tasks connected: {self._error!r}",
                               unreachable=_NO_ROUTE in str(self._error))
                if time.monotonic() > deadline:  # e.g. another job holds the slots
                    raise Lost(f"only {len(conns)} of {num} resident tasks connected in time")
                try:
                    conn, _ = self._server.accept()
                except TimeoutError:
                    continue
                conn.settimeout(10.0)
                try:
                    hello = bytes(_recv(conn))
                except (Lost, OSError):
                    conn.close()
                    continue
                if len(hello) != len(token) + _SEED.size or not hmac.compare_digest(hello[:len(token)], token):
                    conn.close()  # not one of ours
                    continue
                (partition,) = _SEED.unpack_from(hello, len(token))
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.settimeout(1.0)
                old = conns.pop(partition, None)
                if old is not None:
                    old.close()
                conns[partition] = conn
        except BaseException:
            for conn in conns.values():
                conn.close()
            raise
        return [conns[p] for p in sorted(conns)]

    def __call__(self, weights: np.ndarray, seed: int) -> list[Any]:
        """Every partition's accumulator ``fold(None, p, ...)`` for these weights and seed, in partition order."""
        frame = _SEED.pack(int(seed)) + np.ascontiguousarray(weights, dtype="<f8").tobytes()
        try:
            for conn in self._conns:
                conn.settimeout(60.0)
                _send(conn, frame)
            out = []
            for conn in self._conns:
                conn.settimeout(1.0)  # wakes up to check that the job is still running
                out.extend(pickle.loads(_recv(conn, self._alive)))
            return out
        except OSError as e:
            raise Lost(f"a resident task's connection failed: {e}") from None

    def stop(self, cancel: bool = False) -> None:
        """Tell the tasks to finish, then wait for the job; ``cancel`` (or a job that does not end) cancels it."""
        if cancel:
            self._sc.cancelJobGroup(self._group)
        for conn in self._conns:
            try:
                conn.settimeout(1.0)
                _send(conn, b"")
            except OSError:
                pass
        for conn in self._conns:
            conn.close()
        self._conns = []
        self._server.close()
        self._thread.join(timeout=10.0)
        if self._thread.is_alive():
            self._sc.cancelJobGroup(self._group)
            self._thread.join(timeout=30.0)

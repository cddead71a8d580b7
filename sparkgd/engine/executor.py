"""The executor side of resident tasks: what runs inside a Spark task, and nothing of the driver.

A resident task (:func:`serve`, or a block builder through :class:`ServeFirst`) connects to the
driver, proves the call's secret and then :func:`work` s: task 0 becomes the root, accepts the
other tasks (:func:`accept_children`) and runs :func:`_root_loop` (receive the seed and weights,
forward them, fold its blocks, combine the others' pieces in the tree's order, send one vector
up); every other task connects to the root and folds its blocks for every iteration until STOP.
:mod:`sparkgd.engine.resident` is the driver's side, :mod:`sparkgd.engine.channel` the frames.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import sys
from typing import Any, Iterable

import numpy as np

from sparkgd.core.block import Block, BlockSummary, FoldSpec, fold, summary_to_json
from sparkgd.core.sums import merge
from sparkgd.core.tree import CombineTree
from sparkgd.engine import timeouts
from sparkgd.engine.channel import (
    ADDRESS,
    COPY,
    ITERATION,
    PIECES,
    PLAN,
    SETUP,
    STOP,
    SUMMARY,
    ChannelError,
    Link,
    accept_handshake,
    connect_handshake,
    decode_address,
    decode_iteration,
    decode_pieces,
    decode_plan,
    encode_address,
    encode_pieces,
    iteration_size,
    pieces_size,
    recv,
    send,
)

log = logging.getLogger("sparkgd")
SERVE = "sparkgd.serve"  # local property: the token of the job whose block-building tasks stay up to serve


def bind(host: str, first_port: int, retries: int = 16) -> socket.socket:
    """A listening socket on ``host``: any free port when ``first_port`` is 0, else the first free of the range."""
    ports = [0] if first_port == 0 else range(first_port, first_port + retries + 1)
    error: OSError | None = None
    for port in ports:
        try:
            return socket.create_server((host, port))
        except OSError as e:
            error = e
    raise OSError(f"no free port on {host} from {first_port}: {error}")


def admit(conn: socket.socket, peer: Any, secret: bytes, indices: range, taken: Iterable[int], who: str,
          copies: list[Link] | None = None) -> tuple[int, Link] | None:
    """The task index ``conn`` proves with the secret and the sealed link, or ``None`` (logged, closed) for a
    wrong secret, an index outside ``indices`` or one already ``taken``. A second attempt of a task
    (:data:`COPY`) goes into ``copies`` when given (it waits there for STOP), and ``None`` is returned."""
    conn.settimeout(timeouts.HANDSHAKE)
    try:
        index, extra, link = accept_handshake(conn, secret)
    except (ChannelError, OSError) as e:
        log.warning("%s: refused a connection from %s: %s", who, peer, e)
        conn.close()
        return None
    if extra == COPY and copies is not None and index in indices:
        log.debug("%s: a second attempt of task %d waits for the end of the call", who, index)
        copies.append(link)
        return None
    if index not in indices or index in taken:
        log.warning("%s: refused a second connection for task %d from %s", who, index, peer)
        conn.close()
        return None
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return index, link


def accept_children(server: socket.socket, secret: bytes, count: int) -> list[Link]:
    server.settimeout(timeouts.CHILDREN)
    conns: dict[int, Link] = {}
    while len(conns) < count:
        conn, peer = server.accept()
        admitted = admit(conn, peer, secret, range(1, count + 1), conns, "sparkgd resident root")
        if admitted is not None:
            admitted[1].settimeout(None)
            conns[admitted[0]] = admitted[1]
    return [conns[i] for i in sorted(conns)]


def _fold(blocks: list[Block], tree: CombineTree, weights: np.ndarray, seed: int, spec: FoldSpec) -> dict:
    leaves = {b.partition: fold(b, weights, seed, spec) for b in blocks}
    return tree.pieces(leaves, merge)


def serve(task: int, rows: Any, *, driver: tuple[str, int], secret: bytes, spec: FoldSpec, num_partitions: int,
           depth: int, num_weights: int, port: int, num_tasks: int) -> list:
    """A resident task: hold the blocks, then fold them for every iteration until told to stop.

    A second attempt (a speculative copy, a retry) never serves: it waits on the driver until the crew
    stops (:func:`_wait_as_copy`). Ending at once would make Spark kill a running original for a copy's
    success; sleeping until killed would hold a slot the call may need after a lost task."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is not None and ctx.attemptNumber() > 0:
        print(f"sparkgd: attempt {ctx.attemptNumber()} of resident task {task} waits for the end of the training "
              "call (a speculative copy or a retry)", file=sys.stderr)
        _wait_as_copy(driver, secret, task)
        return []
    blocks = list(rows)  # read once from Spark's block manager; consumed, so the Python worker can be reused
    try:
        sock = socket.create_connection(driver, timeout=timeouts.CONNECT)
    except OSError:
        return []  # the driver gave this start up and closed its socket: the job is being cancelled
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = connect_handshake(sock, secret, task, len(blocks))
    except (OSError, ChannelError):
        sock.close()
        return []  # likewise, while this task waited in the socket's backlog
    with link:
        work(link, task, blocks, secret=secret, spec=spec, tree=CombineTree(num_partitions, depth),
              num_weights=num_weights, port=port, num_tasks=num_tasks)
    return []


def _wait_as_copy(driver: tuple[str, int], secret: bytes, task: int) -> None:
    """Connect as a second attempt of ``task`` and wait until the driver says STOP or the channel breaks (the
    crew has ended, the driver closed its socket)."""
    try:
        with socket.create_connection(driver, timeout=timeouts.CONNECT) as sock:
            link = connect_handshake(sock, secret, task, COPY)
            link.settimeout(None)
            recv(link, (STOP,), 0)
    except (OSError, ChannelError):
        pass


def work(sock: Link, task: int, blocks: list[Block], *, secret: bytes, spec: FoldSpec, tree: CombineTree,
          num_weights: int, port: int, num_tasks: int) -> None:
    """From a handshaken connection to the driver on: task 0 is the root, the others connect to it."""
    frame_max = iteration_size(num_weights)
    if task == 0:
        host = sock.getsockname()[0]  # the address this executor reaches the driver from
        with bind(host, port) as server:
            send(sock, ADDRESS, encode_address(host, server.getsockname()[1]))
            children = accept_children(server, secret, num_tasks - 1)
        sock.settimeout(None)
        try:
            _root_loop(sock, children, blocks, tree, spec, num_weights, frame_max)
        finally:
            for c in children:
                c.close()
        return
    try:
        _, address = recv(sock, (SETUP,), 1024)
    except ChannelError:
        return  # the driver gave this start up (busy slots, a task that did not start): nothing to serve
    finally:
        sock.close()
    child(decode_address(address), task, blocks, secret=secret, spec=spec, tree=tree, frame_max=frame_max)


def child(root_address: tuple[str, int], task: int, blocks: list[Block], *, secret: bytes, spec: FoldSpec,
          tree: CombineTree, frame_max: int) -> None:
    """A task other than the root: connect to the root, fold the blocks for every iteration until STOP."""
    with socket.create_connection(root_address, timeout=timeouts.CONNECT) as root:
        root.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        root = connect_handshake(root, secret, task)
        root.settimeout(None)
        while True:
            try:
                kind, frame = recv(root, (ITERATION, STOP), frame_max)
            except ChannelError:
                return  # the root is gone: the driver sees the job end
            if kind == STOP:
                return
            seed, weights = decode_iteration(frame)
            send(root, PIECES, encode_pieces(_fold(blocks, tree, weights, seed, spec)))


def _root_loop(sock: Link, children: list[Link], blocks: list[Block], tree: CombineTree,
               spec: FoldSpec, num_weights: int, frame_max: int) -> None:
    while True:
        try:
            kind, frame = recv(sock, (ITERATION, STOP), frame_max)
        except ChannelError:
            kind, frame = STOP, bytearray()  # the driver is gone
        for c in children:
            send(c, kind, frame)
        if kind == STOP:
            return
        seed, weights = decode_iteration(frame)
        total = root_sums(children, blocks, tree, spec, weights, seed, num_weights)
        send(sock, PIECES, encode_pieces({tree.root: total}))


def root_sums(children: list[Link], blocks: list[Block], tree: CombineTree, spec: FoldSpec, weights: np.ndarray,
              seed: int, num_weights: int) -> Any:
    """One iteration at the root, the ITERATION of ``seed`` and ``weights`` already sent to the
    ``children``: fold the root's blocks, receive the children's pieces and combine all in the tree's order."""
    piece_max = pieces_size(tree.num_partitions, num_weights)
    pieces = _fold(blocks, tree, weights, seed, spec)
    for c in children:
        _, payload = recv(c, (PIECES,), piece_max)
        got = decode_pieces(payload, num_weights)
        if got.keys() & pieces.keys():
            raise ChannelError("two tasks sent the same part of the tree")
        pieces.update(got)
    return tree.combine(pieces, merge)


@dataclasses.dataclass(frozen=True)
class ServeFirst:
    """What a block-building task needs to stay up as a resident task (``resident.Crew.builders``)."""

    driver: tuple[str, int]
    secret: bytes
    token: str
    num_partitions: int

    def serve(self, block: Block, summary: BlockSummary) -> None:
        """In the first attempt of a task of the job that carries :data:`SERVE` = ``token``: send the
        summary, then wait for a plan and serve iterations, or for STOP. Returns when done: the block
        is then handed to Spark. Never raises: a task that cannot serve just ends."""
        from pyspark import TaskContext

        ctx = TaskContext.get()
        if ctx is None or ctx.attemptNumber() != 0 or ctx.getLocalProperty(SERVE) != self.token:
            return  # a rebuild (a retry, a lost block, a later job): Spark caches it, nothing more
        try:
            sock = socket.create_connection(self.driver, timeout=timeouts.CONNECT)
        except OSError:
            return  # the driver no longer waits for the builders (Crew.build gave up): a plain build
        try:
            with sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                link = connect_handshake(sock, self.secret, block.partition)
                send(link, SUMMARY, summary_to_json(summary).encode())
                link.settimeout(None)  # the driver checks the data before it plans: as long as that takes
                kind, frame = recv(link, (PLAN, STOP), 1 << 30)
                if kind == STOP:
                    return
                spec, depth, num_weights, port = decode_plan(frame)
                work(link, block.partition, [block], secret=self.secret, spec=spec,
                      tree=CombineTree(self.num_partitions, depth), num_weights=num_weights, port=port,
                      num_tasks=self.num_partitions)
        except Exception as e:  # the driver sees the channel break and goes on with Spark jobs
            print(f"sparkgd: the task that built block {block.partition} stopped serving: {e}", file=sys.stderr)

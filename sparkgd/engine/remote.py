"""The engine under Spark Connect: DataFrame operations only, no SparkContext, no RDD.

The blocks are a cached DataFrame with one row per partition of the input: ``mapInArrow`` builds
each partition's :class:`~sparkgd.core.block.Block` from its Arrow batches (the same function and
the same rows as in classic mode) and stores it as raw buffers (a JSON header and the arrays'
bytes, never a pickle), next to its summary as JSON. Each iteration is one ``mapInArrow`` job over
them with the iteration's weights and seed in the function's closure; each task returns its
partition's sums, and the client combines them in the :class:`~sparkgd.core.tree.CombineTree`'s
order, so a model is bit for bit the classic engine's on the same data and partitioning. When the
partial sums would exceed one vector by more than :data:`~sparkgd.engine.aggregation.SMALL_EXTRA`,
the lower levels of the tree are combined on the executors (one ``groupBy().applyInArrow`` per
level) and the client receives the top level only.

Faster, when the cluster can hold all the blocks' tasks at once (:func:`resident_off`): the loop itself
runs in a task (:meth:`RemoteBlocks.iterate_on_executors`). One barrier ``mapInArrow`` job over the
blocks, whose task 0 runs :func:`~sparkgd.engine.loop.iterate` (the sampler's seeds, the update, the
stopping tests: the classic driver's code, so the same bits) and is the root of the combine tree; the
other tasks connect to it over the resident channel (:mod:`sparkgd.engine.channel`: authenticated,
sealed, never unpickled), its port passed by one ``allGather``. A job runs a chunk of iterations
(:data:`~sparkgd.engine.timeouts.CHUNK` seconds, at most :data:`~sparkgd.engine.timeouts.CHUNK_ITERATIONS`)
and returns the loop's state, as JSON and raw arrays, to the client, which writes the checkpoints,
calls the callbacks with every iteration's state, and starts the next chunk. Executors cannot, in
general, reach a Connect client, so nothing of an iteration goes through it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from sparkgd.core import sums as _sums
from sparkgd.core.block import Block, FoldSpec, fold, summary_from_json, summary_to_json
from sparkgd.core.checkpoint import state_from_record, state_record
from sparkgd.core.errors import SGDDivergenceError
from sparkgd.core.state import SGDState
from sparkgd.core.sums import merge
from sparkgd.core.tree import CombineTree
from sparkgd.engine import timeouts
from sparkgd.engine.blocks import BlockFacts

log = logging.getLogger("sparkgd")

_BLOCKS_SCHEMA = "partition int, chunk int, block binary, summary string, cores int"
CHUNK = 4 << 20  # bytes of a block per row: Spark hands many 4 MiB values to Python faster than one of 80 MiB
_SUMS_SCHEMA = "level int, node int, sums binary"


_ALIGN = 64


def _pack(arrays: dict[str, np.ndarray | None], meta: dict) -> bytes:
    """Arrays as ``<header length><JSON header><raw bytes>``: dtypes, shapes and offsets in the header, no
    pickle. Each array starts at a multiple of 64 bytes: BLAS sums misaligned doubles in another order, and
    the sums must be the classic engine's bits."""
    entries, parts, at = [], [], 0
    for name, a in arrays.items():
        if a is None:
            continue
        a = np.asarray(a, order="C")  # not ascontiguousarray: it makes a 0-d array (Adam's count) 1-d
        entries.append([name, a.dtype.str, list(a.shape), at])
        parts.append(a.tobytes() + bytes(-a.nbytes % _ALIGN))
        at += a.nbytes + (-a.nbytes % _ALIGN)
    head = json.dumps({"meta": meta, "arrays": entries}).encode()
    head += b" " * (-(4 + len(head)) % _ALIGN)
    return len(head).to_bytes(4, "little") + head + b"".join(parts)


def _unpack(buf: Any) -> tuple[dict[str, np.ndarray], dict]:
    view = memoryview(buf)
    size = int.from_bytes(view[:4], "little")
    header = json.loads(bytes(view[4:4 + size]))
    out = {}
    for name, dtype, shape, at in header["arrays"]:
        dt = np.dtype(dtype)
        if dt.hasobject:
            raise ValueError("sparkgd: a block holds an object array")
        start = 4 + size + at
        a = np.frombuffer(view[start:start + int(np.prod(shape, dtype=np.int64)) * dt.itemsize], dtype=dt)
        out[name] = (a if a.ctypes.data % 16 == 0 else a.copy()).reshape(shape)  # numpy allocates 16-aligned
    return out, header["meta"]


def encode_block(block: Block) -> bytes:
    x = block.features
    if sp.issparse(x):
        arrays = {"data": x.data, "indices": x.indices, "indptr": x.indptr}
        meta = {"sparse": True, "shape": list(x.shape)}
    else:
        arrays, meta = {"features": x}, {"sparse": False}
    arrays.update(labels=block.labels, weights=block.weights)
    return _pack(arrays, {**meta, "partition": block.partition, "error": block.error})


def decode_block(buf: Any) -> Block:
    a, meta = _unpack(buf)
    if meta["sparse"]:
        x: Any = sp.csr_matrix((a["data"], a["indices"], a["indptr"]), shape=tuple(meta["shape"]))
    else:
        x = a["features"]
    return Block(meta["partition"], a["labels"], x, a.get("weights"), meta["error"])


def _build(batches: Iterator[pa.RecordBatch], *, columns: tuple[str, str, str], moments: bool
           ) -> Iterator[pa.RecordBatch]:
    from pyspark import TaskContext

    from sparkgd.core.block import summarize
    from sparkgd.engine.arrow import block_from_table

    partition = TaskContext.get().partitionId()
    batches = list(batches)
    if batches:
        table = pa.Table.from_batches(batches)
    else:
        table = pa.table({"label": pa.array([], pa.float64())})
    block = block_from_table(partition, table, columns)
    data = encode_block(block)
    chunks = [data[at:at + CHUNK] for at in range(0, len(data), CHUNK)]
    yield pa.RecordBatch.from_pydict(
        {"partition": [partition] * len(chunks), "chunk": list(range(len(chunks))), "block": chunks,
         "summary": [summary_to_json(summarize(block, moments))] + [None] * (len(chunks) - 1),
         "cores": [os.cpu_count() or 1] * len(chunks)},
        schema=pa.schema([("partition", pa.int32()), ("chunk", pa.int32()), ("block", pa.binary()),
                          ("summary", pa.string()), ("cores", pa.int32())]))


_SUMS = pa.schema([("level", pa.int32()), ("node", pa.int32()), ("sums", pa.binary())])


def _joined(chunks: list[tuple[int, Any]]) -> np.ndarray:
    """A block's chunks, in chunk order, in one numpy buffer (aligned as numpy aligns, see :func:`_pack`)."""
    chunks.sort(key=lambda c: c[0])
    if [c for c, _ in chunks] != list(range(len(chunks))):
        raise ValueError(f"sparkgd: a block's chunks are missing or repeated: {[c for c, _ in chunks]}")
    out = np.empty(sum(b.size for _, b in chunks), dtype=np.uint8)
    at = 0
    for _, b in chunks:
        out[at:at + b.size] = np.frombuffer(b, dtype=np.uint8)
        at += b.size
    return out


def _blocks(batches: Iterator[pa.RecordBatch]) -> list[Block]:
    """A task's blocks, in partition order, from the rows of the blocks DataFrame it reads."""
    found: dict[int, list[tuple[int, Any]]] = {}
    for b in batches:
        for p, c, data in zip(b.column("partition").to_pylist(), b.column("chunk").to_pylist(), b.column("block")):
            found.setdefault(p, []).append((c, data.as_buffer()))
    return [decode_block(_joined(chunks)) for _, chunks in sorted(found.items())]


def _leaves(batches: Iterator[pa.RecordBatch], *, weights: np.ndarray, seed: int, spec: FoldSpec
            ) -> Iterator[pa.RecordBatch]:
    for block in _blocks(batches):
        p, value = block.partition, fold(block, weights, seed, spec)
        yield pa.RecordBatch.from_pydict({"level": [0], "node": [p], "sums": [_sums.encode(value)]}, schema=_SUMS)


def _combine(table: pa.Table, *, tree: CombineTree, level: int, num_weights: int) -> pa.Table:
    """Fold the children (level ``level - 1``) of one parent, in index order."""
    children = {(level - 1, c): _sums.decode(s.as_buffer(), num_weights)[0] for c, s in
                zip(table.column("node").to_pylist(), table.column("sums"))}
    parent = tree.parent(next(iter(children)))
    value = tree.value(parent, children, merge)
    return pa.table({"level": [level], "node": [parent[1]], "sums": [_sums.encode(value)]}, schema=_SUMS)


def _combiner(tree: CombineTree, level: int, num_weights: int) -> Any:
    """:func:`_combine` as a plain function (pyspark's applyInArrow cannot read a ``functools.partial``'s hints)."""

    def combine(table):
        return _combine(table, tree=tree, level=level, num_weights=num_weights)

    return combine


class RemoteBlocks(BlockFacts):
    """The blocks of a DataFrame under Spark Connect, cached by Spark as a DataFrame of raw buffers."""

    def __init__(self, df: Any, columns: tuple[str, str, str], moments: bool = False) -> None:
        from pyspark import StorageLevel

        self.df = df.mapInArrow(functools.partial(_build, columns=columns, moments=moments), _BLOCKS_SCHEMA) \
            .persist(StorageLevel.MEMORY_AND_DISK)
        try:
            rows = self.df.where("chunk = 0").select("partition", "summary", "cores").collect()
        except Exception as e:
            if "No module named 'sparkgd" in str(e):
                raise RuntimeError(
                    "the Spark Connect server's Python workers cannot import sparkgd: install the sparkgd wheel "
                    "where the executors run, or ship it from this client with "
                    "spark.addArtifacts('sparkgd-<version>-py3-none-any.whl', pyfile=True)") from None
            raise
        summaries = sorted((summary_from_json(r["summary"]) for r in rows), key=lambda s: s.partition)
        super().__init__(summaries, columns)
        self.num_partitions = len(summaries)
        self.cores = max((r["cores"] for r in rows), default=1)  # an executor machine's, for local[*]
        self.arranged_in = self.num_partitions  # the partitions of self.df (fewer once arranged for the slots)
        self.chunks = 0  # the jobs that ran the loop in a task (iterate_on_executors) ...
        self.failed_chunks = 0  # ... and those that failed

    def iteration_sums(self, depth: int, spec: FoldSpec, num_weights: int) -> RemoteSums:
        return RemoteSums(self.df, CombineTree(self.num_partitions, depth), spec, num_weights)

    def iterate_on_executors(self, rules: Any, spec: FoldSpec, depth: int, num_weights: int, state: SGDState,
                             num_iterations: int, after: Callable[[SGDState], None],
                             keep: Callable[[SGDState], bool]) -> SGDState:
        """Run :func:`~sparkgd.engine.loop.iterate` in a task of a barrier job over the blocks, a chunk per
        job, until ``state`` converges or reaches ``num_iterations``; ``after`` sees each state ``keep``
        picks, in order. A chunk whose job fails runs again from the state it started from (same bits);
        where a barrier job cannot run (:func:`resident_off`), or a chunk failed :data:`CHUNK_TRIES` times
        in a row, each iteration is one Spark job. ``state`` is updated in place and returned."""
        from sparkgd.engine.loop import iterate
        from sparkgd.engine.resident import spark_seconds

        spark = self.df.sparkSession
        conf = functools.partial(_conf, spark)
        reason, slots = resident_off(conf, self.cores)
        if reason is None and slots < self.arranged_in:
            self._arrange(slots)
        secret = os.urandom(32)
        seconds = spark_seconds(conf(timeouts.CHUNK_KEY), timeouts.CHUNK, bare="s")
        failed = 0
        while reason is None and not state.converged and state.iteration < num_iterations:
            task = functools.partial(
                _chunk, secret=secret, rules=rules, spec=spec, depth=depth, num_weights=num_weights,
                num_partitions=self.num_partitions, state=encode_state(state),
                until=min(num_iterations, state.iteration + timeouts.CHUNK_ITERATIONS), seconds=seconds, keep=keep)
            try:
                rows = self.df.mapInArrow(task, _CHUNK_SCHEMA, barrier=True).collect()
            except Exception as e:  # noqa: BLE001 - a lost task, a killed job: the chunk runs again from its state
                failed += 1
                self.failed_chunks += 1
                first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
                if failed >= CHUNK_TRIES:
                    reason = f"the job running the loop in a task failed {failed} times in a row ({first})"
                    break
                log.warning("sparkgd: the job running iterations %d.. in a task failed (%s); running them again",
                            state.iteration + 1, first)
                continue
            failed = 0
            self.chunks += 1
            error = None
            for row in rows:
                if row["kind"] == "error":
                    error = SGDDivergenceError(*json.loads(row["meta"]))
                    continue
                got = decode_state(row["data"])
                if row["kind"] == "kept":
                    after(got)
                else:
                    _assign(state, got)
            if error is not None:
                raise error
        if reason is not None and not state.converged and state.iteration < num_iterations:
            log.info("sparkgd: under Spark Connect each iteration is one Spark job: %s", reason)
            job = self.iteration_sums(depth, spec, num_weights)
            iterate(rules, job, state, num_iterations, after)
        return state

    def _arrange(self, slots: int) -> None:
        """Put the blocks in at most ``slots`` partitions, each block's rows whole in one (a barrier stage cannot
        ``coalesce``): one shuffle of the cached blocks, cached in their place. Every path folds whatever
        blocks a task holds and combines them in the tree's order: the bits do not change."""
        from pyspark import StorageLevel

        arranged = self.df.repartitionByRange(slots, "partition").persist(StorageLevel.MEMORY_AND_DISK)
        arranged.where("chunk = 0").count()
        log.info("sparkgd: %d partitions of blocks arranged in %d for the %d task slots", self.num_partitions,
                 slots, slots)
        self.df.unpersist()
        self.df, self.arranged_in = arranged, slots

    def hadoop_dirs(self) -> Any:
        raise ValueError("under Spark Connect, checkpointDir must be a local path (the client writes the checkpoints)")

    def unpersist(self, blocking: bool = False) -> None:
        self.df.unpersist(blocking)


class RemoteSums:
    """Each iteration's ``(gradient sum, loss sum, rows, weight sum)``: one ``mapInArrow`` job (plus a
    ``groupBy().applyInArrow`` per tree level combined on the executors)."""

    def __init__(self, blocks_df: Any, tree: CombineTree, spec: FoldSpec, num_weights: int) -> None:
        from sparkgd.engine.aggregation import top_level

        self._df, self.tree, self._spec, self._d = blocks_df, tree, spec, num_weights
        self._top = top_level(tree, num_weights)
        self.resident_calls = 0

    def __call__(self, weights: np.ndarray, seed: int) -> Any:
        from pyspark.sql import functions as F

        w = np.ascontiguousarray(weights, dtype=np.float64)
        sums = self._df.mapInArrow(functools.partial(_leaves, weights=w, seed=int(seed), spec=self._spec), _SUMS_SCHEMA)
        tree = self.tree
        for level in range(1, self._top + 1):  # a node's parent is its index // fan_in
            sums = sums.groupBy(F.floor(F.col("node") / tree.fan_in)).applyInArrow(_combiner(tree, level, self._d),
                                                                                   _SUMS_SCHEMA)
        pieces = {(r["level"], r["node"]): _sums.decode(r["sums"], self._d)[0] for r in sums.collect()}
        return tree.combine(pieces, merge) if self._top < tree.height else pieces[tree.root]

    def close(self) -> None:
        pass



_CHUNK_SCHEMA = "kind string, meta string, data binary"
CHUNK_TRIES = 3  # a chunk's job failing this many times in a row: one job per iteration from then on
SLOTS_KEY = "spark.sparkgd.connect.slots"  # the task slots of the cluster, where the conf does not tell


def _conf(spark: Any, key: str) -> str | None:
    try:
        return spark.conf.get(key, None)
    except Exception:  # noqa: BLE001 - a key the server will not show
        return None


def task_slots(conf: Callable[[str], str | None], cores_seen: int) -> int | None:
    """How many tasks the cluster runs at once, from the conf (``None``: it does not tell): ``local[N]``,
    ``local-cluster[N, C, M]``, ``spark.cores.max`` or a static ``spark.executor.instances`` x
    ``spark.executor.cores``, over ``spark.task.cpus``; :data:`SLOTS_KEY` overrides them."""
    given = conf(SLOTS_KEY)
    if given:
        return int(given)
    master = (conf("spark.master") or "").replace(" ", "")
    cores: int | None = None
    if m := re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master):
        cores = 1 if m.group(1) is None else cores_seen if m.group(1) == "*" else int(m.group(1))
    elif m := re.fullmatch(r"local-cluster\[(\d+),(\d+),\d+\]", master):
        cores = int(m.group(1)) * int(m.group(2))
    elif conf("spark.cores.max"):
        cores = int(conf("spark.cores.max") or 0)
    elif conf("spark.executor.instances") and conf("spark.executor.cores"):
        cores = int(conf("spark.executor.instances") or 0) * int(conf("spark.executor.cores") or 0)
    return None if cores is None else cores // int(conf("spark.task.cpus") or 1)


def resident_off(conf: Callable[[str], str | None], cores_seen: int) -> tuple[str | None, int]:
    """Why the loop cannot run in a task under Connect (or ``None``), and the cluster's task slots: a barrier
    job needs a static allocation and a slot for each of its tasks at once."""
    if (conf("spark.sparkgd.residentTasks") or "true").lower() == "false":
        return "spark.sparkgd.residentTasks is false", 0
    if (conf("spark.dynamicAllocation.enabled") or "false").lower() == "true":
        return "spark.dynamicAllocation.enabled: Spark refuses barrier jobs under dynamic allocation", 0
    slots = task_slots(conf, cores_seen)
    if slots is None or slots < 1:
        return (f"the conf does not tell how many tasks the cluster runs at once; set {SLOTS_KEY} to run the "
                "loop in a task"), 0
    return None, slots


def encode_state(state: SGDState) -> bytes:
    meta, arrays = state_record(state)
    return _pack({k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}, meta)


def decode_state(buf: Any) -> SGDState:
    arrays, meta = _unpack(buf)
    return state_from_record(meta, arrays)


def _assign(state: SGDState, new: SGDState) -> None:
    for name in state.__dataclass_fields__:
        setattr(state, name, getattr(new, name))


def _chunk(batches: Iterator[pa.RecordBatch], *, secret: bytes, rules: Any, spec: FoldSpec, depth: int,
           num_weights: int, num_partitions: int, state: bytes, until: int, seconds: float,
           keep: Callable[[SGDState], bool]) -> Iterator[pa.RecordBatch]:
    """A task of the barrier job: task 0 runs the loop from ``state`` and is the root, the others serve it."""
    from pyspark import BarrierTaskContext

    from sparkgd.engine.channel import ITERATION, STOP, encode_iteration, iteration_size, send
    from sparkgd.engine.executor import accept_children, bind, child, root_sums
    from sparkgd.engine.loop import iterate

    ctx = BarrierTaskContext.get()
    blocks = _blocks(batches)
    task, tree = ctx.partitionId(), CombineTree(num_partitions, depth)
    infos = ctx.getTaskInfos()
    host = infos[0].address.rsplit(":", 1)[0]  # the root's executor
    if task != 0:
        port = int(ctx.allGather("")[0])
        child((host, port), task, blocks, secret=secret, spec=spec, tree=tree, frame_max=iteration_size(num_weights))
        return
    with bind(host, 0) as server:
        ctx.allGather(str(server.getsockname()[1]))
        children = accept_children(server, secret, len(infos) - 1)
    out: dict[str, list] = {"kind": [], "meta": [], "data": []}
    size, start = 0, time.monotonic()

    def reply(kind: str, meta: str | None, data: bytes | None) -> None:
        out["kind"].append(kind)
        out["meta"].append(meta)
        out["data"].append(data)

    def job(weights: np.ndarray, seed: int) -> Any:
        frame = encode_iteration(seed, weights)
        for c in children:
            send(c, ITERATION, frame)
        return root_sums(children, blocks, tree, spec, weights, seed, num_weights)

    def after(s: SGDState) -> None:
        nonlocal size
        if keep(s):
            data = encode_state(s)
            size += len(data)
            reply("kept", None, data)

    def more() -> bool:
        return time.monotonic() - start < seconds and size < _KEPT_BYTES

    loop_state = decode_state(state)
    try:
        iterate(rules, job, loop_state, until, after, more)
    except SGDDivergenceError as e:
        reply("error", json.dumps([e.iteration, e.last_finite_loss, e.what, e.value]), None)
    finally:
        for c in children:
            try:
                send(c, STOP)
            except OSError:
                pass
            c.close()
    reply("last", None, encode_state(loop_state))
    yield pa.RecordBatch.from_pydict(out, schema=pa.schema([("kind", pa.string()), ("meta", pa.string()),
                                                            ("data", pa.binary())]))


_KEPT_BYTES = 64 << 20  # the states a chunk sends back (one per iteration with a callback) stay under this

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
level) and the client receives the top level only. Resident tasks stay off: executors cannot, in
general, reach a Connect client.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from sparkgd.core import sums as _sums
from sparkgd.core.block import Block, FoldSpec, fold, summary_from_json, summary_to_json
from sparkgd.core.sums import merge
from sparkgd.core.tree import CombineTree
from sparkgd.engine.blocks import BlockFacts

_BLOCKS_SCHEMA = "partition int, chunk int, block binary, summary string"
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
        a = np.ascontiguousarray(a)
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
         "summary": [summary_to_json(summarize(block, moments))] + [None] * (len(chunks) - 1)},
        schema=pa.schema([("partition", pa.int32()), ("chunk", pa.int32()), ("block", pa.binary()),
                          ("summary", pa.string())]))


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


def _leaves(batches: Iterator[pa.RecordBatch], *, weights: np.ndarray, seed: int, spec: FoldSpec
            ) -> Iterator[pa.RecordBatch]:
    found: dict[int, list[tuple[int, Any]]] = {}
    for b in batches:
        for p, c, data in zip(b.column("partition").to_pylist(), b.column("chunk").to_pylist(), b.column("block")):
            found.setdefault(p, []).append((c, data.as_buffer()))
    for p, chunks in sorted(found.items()):
        value = fold(decode_block(_joined(chunks)), weights, seed, spec)
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
            rows = self.df.where("chunk = 0").select("partition", "summary").collect()
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

    def iteration_sums(self, depth: int, spec: FoldSpec, num_weights: int) -> RemoteSums:
        return RemoteSums(self.df, CombineTree(self.num_partitions, depth), spec, num_weights)

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


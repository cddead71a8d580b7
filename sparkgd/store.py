"""Blocks kept where the Python workers can reach them without the JVM re-sending them.

Shipping cached pickled blocks from the JVM to the Python workers every iteration costs more
than the arithmetic (DESIGN.md). So when a block is built, its arrays are also written once as
raw ``.npy`` files into the executor's Spark files directory; an iteration's task then receives
only the partition index and memory-maps the arrays (shared by every Python worker of the host
through the page cache). A task that does not find its block (another host, a restarted
executor) reports a miss, and the driver has that partition's block built again from the input
(``BlockedData.source``, which also stores it on that host): the rows and the arithmetic are
the same either way.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import OrderedDict

import numpy as np
import scipy.sparse as sp

from sparkgd.blocks import Block

_OPEN: OrderedDict[tuple[str, int], Block] = OrderedDict()
_MAX_OPEN = 64  # blocks kept open per worker process; older stores are dropped first


def _root() -> str | None:
    from pyspark import SparkFiles

    try:
        return SparkFiles.getRootDirectory()
    except Exception:  # no Spark files directory: the store is not available here
        return None


def new_store_id() -> str:
    return f"sparkgd-store-{uuid.uuid4().hex}"


def _dir(store: str) -> str | None:
    root = _root()
    return None if root is None else os.path.join(root, store)


def _arrays(block: Block) -> dict[str, np.ndarray]:
    out = {"labels": block.labels}
    if block.weights is not None:
        out["weights"] = block.weights
    if sp.issparse(block.features):
        out.update(data=block.features.data, indices=block.features.indices, indptr=block.features.indptr,
                   shape=np.asarray(block.features.shape, dtype=np.int64))
    else:
        out["features"] = np.ascontiguousarray(block.features)
    return out


def put(store: str, block: Block) -> None:
    """Write a block's arrays under the store (write then rename, so readers see whole files)."""
    if block.error:
        return
    d = _dir(store)
    if d is None:
        return
    part = os.path.join(d, f"p{block.partition}")
    if os.path.isdir(part):
        return
    tmp = f"{part}.tmp-{uuid.uuid4().hex}"
    os.makedirs(tmp)
    for name, arr in _arrays(block).items():
        np.save(os.path.join(tmp, f"{name}.npy"), arr, allow_pickle=False)
    try:
        os.rename(tmp, part)
    except OSError:  # another task (a retry, a speculative copy) stored it first
        shutil.rmtree(tmp, ignore_errors=True)


def get(store: str, partition: int) -> Block | None:
    """The stored block of ``partition``, memory-mapped, or ``None`` when this host lacks it."""
    key = (store, partition)
    if key in _OPEN:
        _OPEN.move_to_end(key)
        return _OPEN[key]
    d = _dir(store)
    part = None if d is None else os.path.join(d, f"p{partition}")
    if part is None or not os.path.isdir(part):
        return None

    def load(name: str) -> np.ndarray | None:
        f = os.path.join(part, f"{name}.npy")
        return np.load(f, mmap_mode="r", allow_pickle=False) if os.path.exists(f) else None

    labels = load("labels")
    if os.path.exists(os.path.join(part, "features.npy")):
        features = load("features")
    else:
        shape = tuple(int(v) for v in load("shape"))
        features = sp.csr_matrix((load("data"), load("indices"), load("indptr")), shape=shape, copy=False)
    block = Block(partition, labels, features, load("weights"))
    _OPEN[key] = block
    while len(_OPEN) > _MAX_OPEN:
        _OPEN.popitem(last=False)
    return block


def drop(store: str) -> None:
    """Delete the store's files on this host (the driver's, which is every executor's in local mode)."""
    for key in [k for k in _OPEN if k[0] == store]:
        del _OPEN[key]
    d = _dir(store)
    if d is not None:
        shutil.rmtree(d, ignore_errors=True)

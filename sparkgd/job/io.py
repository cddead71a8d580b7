"""Reading training data: LIBSVM, CSV (with a header) and Parquet, with errors that name the
file and line (or the column and row) of the first bad record.

Each reader returns an RDD of ``(label, features)`` rows (features a numpy array, or a
``pyspark.mllib`` ``SparseVector`` for LIBSVM) and the feature names.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from pyspark import RDD, SparkContext
from pyspark.mllib.linalg import SparseVector
from pyspark.sql import SparkSession

from sparkgd.core.errors import InputDataError
from sparkgd.engine import _spark

log = logging.getLogger("sparkgd.job")

class DataError(InputDataError):
    """The input data is malformed; the message names the file and line, or the column."""


def list_files(sc: SparkContext, path: str | list[str]) -> list[str]:
    """The data files under ``path`` (a file, a directory or a glob), through Hadoop's FileSystem;
    a list is taken as the files themselves (a micro-batch's new files)."""
    if isinstance(path, list):
        return sorted(path)
    fs, hpath = _spark.hadoop_path(sc, path)
    statuses = fs.globStatus(hpath)
    if statuses is None or len(statuses) == 0:
        raise DataError(f"input {path!r} does not exist")
    files: list[str] = []
    for st in statuses:
        if st.isDirectory():
            for child in fs.listStatus(st.getPath()):
                name = child.getPath().getName()
                if child.isFile() and not name.startswith(("_", ".")):
                    files.append(child.getPath().toString())
        else:
            files.append(st.getPath().toString())
    if not files:
        raise DataError(f"input {path!r} holds no data files")
    return sorted(files)


def _lines(sc: SparkContext, files: list[str], min_partitions: int | None) -> RDD:
    """``(file, line number from 1, text)`` for every line of every file, in order."""
    rdds = []
    for f in files:
        rdds.append(sc.textFile(f, min_partitions).zipWithIndex().map(lambda t, f=f: (f, t[1] + 1, t[0])))
    return rdds[0] if len(rdds) == 1 else sc.union(rdds)


def _first_error(parsed: RDD) -> str | None:
    bad = parsed.filter(lambda r: isinstance(r, str)).take(1)
    return bad[0] if bad else None


def _check(parsed: RDD, on_bad_rows: str) -> tuple[RDD, dict[str, Any]]:
    """Fail on the first bad record, or (``skip``) drop them and report how many and which."""
    if on_bad_rows == "fail":
        err = _first_error(parsed)
        if err is not None:
            raise DataError(err)
        return parsed, {"skipped": 0, "examples": []}
    bad = parsed.filter(lambda r: isinstance(r, str))
    count = bad.count()
    return parsed.filter(lambda r: not isinstance(r, str)), {"skipped": count, "examples": bad.take(5)}


def _bad_label(where: str, label: float, classes: int | None) -> str | None:
    """Why ``label`` does not fit: ``classes`` None takes any number, 2 labels 0/1, ``K`` class indices
    ``0 .. K-1``, 0 any class index."""
    if classes == 2 and label not in (0.0, 1.0):
        return f"{where}: label {label:g} is not 0 or 1 (classification needs 0/1 labels)"
    if classes is not None and classes != 2 and (label < 0 or label != int(label) or 0 < classes <= label):
        allowed = f"0 .. {classes - 1} (--num-classes {classes})" if classes else "0, 1, 2, ..."
        return f"{where}: label {label:g} is not a class index {allowed}"
    return None


def _parse_libsvm(rec: tuple[str, int, str], num_features: int, classes: int | None = None) -> Any:
    f, n, text = rec
    body = text.split("#", 1)[0].strip()
    if not body:
        return None
    parts = body.split()
    where = f"{f}:{n}"
    try:
        label = float(parts[0])
    except ValueError:
        return f"{where}: label {parts[0]!r} is not a number"
    if not math.isfinite(label):
        return f"{where}: label is {parts[0]}"
    if bad := _bad_label(where, label, classes):
        return bad
    idx, val = [], []
    for tok in parts[1:]:
        i, sep, v = tok.partition(":")
        if not sep:
            return f"{where}: {tok!r} is not index:value"
        try:
            k = int(i)
        except ValueError:
            return f"{where}: index {i!r} is not an integer"
        try:
            x = float(v)
        except ValueError:
            return f"{where}: value {v!r} of index {k} is not a number"
        if k < 1:
            return f"{where}: index {k} is below 1 (LIBSVM indices start at 1)"
        if idx and k <= idx[-1]:
            return f"{where}: index {k} is {'repeated' if k == idx[-1] else 'out of order'} (indices must increase)"
        if not math.isfinite(x):
            return f"{where}: value of index {k} is {v}"
        if num_features and k > num_features:
            return f"{where}: index {k} exceeds the {num_features} features"
        idx.append(k)
        val.append(x)
    return label, idx, val


def read_libsvm(sc: SparkContext, path: str, num_features: int | None = None, partitions: int | None = None,
                on_bad_rows: str = "fail", classes: int | None = None) -> tuple[RDD, list[str], dict[str, Any]]:
    """LIBSVM text (``label index:value ...``, 1-based increasing indices, ``#`` comments)."""
    parsed = _lines(sc, list_files(sc, path), partitions).map(
        lambda r: _parse_libsvm(r, num_features or 0, classes))
    parsed = parsed.filter(lambda r: r is not None)
    parsed, report = _check(parsed, on_bad_rows)
    if num_features is None:
        num_features = parsed.map(lambda r: r[1][-1] if r[1] else 0).fold(0, max)
    if num_features == 0 and parsed.isEmpty():
        raise DataError(f"input {path!r} holds no rows")
    d = int(num_features)
    rows = parsed.map(lambda r: (r[0], SparseVector(d, [k - 1 for k in r[1]], r[2])))
    return rows, [f"f{j + 1}" for j in range(d)], report


def _parse_csv(rec: tuple[str, int, str], header: list[str], label_idx: int, feat_idx: list[int],
               classes: int | None = None) -> Any:
    f, n, text = rec
    if n == 1 or not text.strip():
        return None
    cells = text.split(",")
    where = f"{f}:{n}"
    if len(cells) != len(header):
        return f"{where}: {len(cells)} fields, the header has {len(header)}"
    out = []
    for j in [label_idx] + feat_idx:
        cell = cells[j].strip()
        if cell == "":
            return f"{where}: column {header[j]!r} is empty"
        try:
            x = float(cell)
        except ValueError:
            return f"{where}: column {header[j]!r} value {cell!r} is not a number"
        if not math.isfinite(x):
            return f"{where}: column {header[j]!r} is {cell}"
        out.append(x)
    if bad := _bad_label(where, out[0], classes):
        return bad
    return out[0], np.asarray(out[1:])


def _numeric_columns(header: list[str], line: str, label_col: str, file: str) -> list[str]:
    """The columns other than the label whose first value parses as a number (an empty one counts as numeric)."""
    cells = [c.strip() for c in line.split(",")]
    names, skipped = [], []
    for j, h in enumerate(header):
        if h == label_col:
            continue
        cell = cells[j] if j < len(cells) else ""
        try:
            float(cell) if cell else None
            names.append(h)
        except ValueError:
            skipped.append(f"{h!r} ({cell!r})")
    if skipped:
        log.info("%s: features are the numeric columns; skipped %s (give --feature-cols to choose)", file,
                 ", ".join(skipped))
    return names


def read_csv(sc: SparkContext, path: str, label_col: str, feature_cols: list[str] | None = None,
             partitions: int | None = None, on_bad_rows: str = "fail",
             classes: int | None = None) -> tuple[RDD, list[str], dict[str, Any]]:
    """CSV with a header line in every file; features are ``feature_cols`` or all other numeric columns:
    those whose value in the first data row is a number (as Parquet input skips non-numeric types)."""
    files = list_files(sc, path)
    first = sc.textFile(files[0]).take(2)
    if not first:
        raise DataError(f"{files[0]}: the file is empty")
    header = [h.strip() for h in first[0].split(",")]
    if label_col not in header:
        raise DataError(f"{files[0]}:1: label column {label_col!r} is not in the header {header}")
    names = feature_cols or _numeric_columns(header, first[1] if len(first) > 1 else "", label_col, files[0])
    missing = [c for c in names if c not in header]
    if missing:
        raise DataError(f"{files[0]}:1: feature columns {missing} are not in the header {header}")
    if not names:
        raise DataError(f"{files[0]}:1: no feature columns besides the label {label_col!r}")
    label_idx, feat_idx = header.index(label_col), [header.index(c) for c in names]

    def parse(rec):
        if rec[1] == 1 and [h.strip() for h in rec[2].split(",")] != header:
            return f"{rec[0]}:1: header differs from {files[0]}'s"
        return _parse_csv(rec, header, label_idx, feat_idx, classes)

    parsed = _lines(sc, files, partitions).map(parse).filter(lambda r: r is not None)
    parsed, report = _check(parsed, on_bad_rows)
    if parsed.isEmpty():
        raise DataError(f"input {path!r} holds no data rows")
    return parsed, names, report


def read_parquet(spark: SparkSession, path: str, label_col: str, feature_cols: list[str] | None = None,
                 partitions: int | None = None, on_bad_rows: str = "fail",
                 classes: int | None = None) -> tuple[RDD, list[str], dict[str, Any]]:
    """Parquet with a numeric label column and numeric feature columns (or one vector column)."""
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import NumericType

    try:
        df = spark.read.parquet(*(path if isinstance(path, list) else [path]))
    except Exception as e:  # AnalysisException: path missing or not Parquet
        raise DataError(f"cannot read Parquet input {path!r}: {str(e).splitlines()[0]}") from None
    types = {f.name: f.dataType for f in df.schema.fields}
    if label_col not in types:
        raise DataError(f"{path}: label column {label_col!r} is not in the data (columns {sorted(types)})")
    names = feature_cols or [c for c, t in types.items()
                             if c != label_col and isinstance(t, (NumericType, VectorUDT))]
    for c in [label_col] + names:
        if c not in types:
            raise DataError(f"{path}: column {c!r} is not in the data (columns {sorted(types)})")
        if not isinstance(types[c], (NumericType, VectorUDT)) or (c == label_col and isinstance(types[c], VectorUDT)):
            raise DataError(f"{path}: column {c!r} has type {types[c].simpleString()}, expected numeric")
    cols = [label_col] + names  # --partitions: the caller re-partitions the rows in order

    def parse(pair: tuple[Any, int]) -> Any:
        row, i = pair
        vals = []
        for c in cols:
            v = row[c]
            if v is None:
                return f"{path}: row {i + 1}: column {c!r} is null"
            arr = v.toArray() if hasattr(v, "toArray") else [v]
            if not np.isfinite(np.asarray(arr, dtype=float)).all():
                return f"{path}: row {i + 1}: column {c!r} is NaN or infinite"
            vals.extend(arr)
        if bad := _bad_label(f"{path}: row {i + 1}: column {label_col!r}", float(vals[0]), classes):
            return bad
        return float(vals[0]), np.asarray(vals[1:], dtype=np.float64)

    parsed = df.select(*cols).rdd.zipWithIndex().map(parse)
    parsed, report = _check(parsed, on_bad_rows)
    if parsed.isEmpty():
        raise DataError(f"input {path!r} holds no rows")
    return parsed, names, report


def read(spark: SparkSession, fmt: str, path: str | list[str], *, label_col: str = "label",
         feature_cols: list[str] | None = None, partitions: int | None = None,
         on_bad_rows: str = "fail", classes: int | None = None,
         num_features: int | None = None) -> tuple[RDD, list[str], dict[str, Any]]:
    """Dispatch on ``fmt`` (``libsvm``, ``csv``, ``parquet``); ``classes`` checks the labels (see ``_bad_label``);
    ``num_features`` fixes LIBSVM's width (else the largest index read)."""
    if fmt == "libsvm":
        out = read_libsvm(spark.sparkContext, path, num_features, partitions, on_bad_rows, classes)
    elif fmt == "csv":
        out = read_csv(spark.sparkContext, path, label_col, feature_cols, partitions, on_bad_rows, classes)
    elif fmt == "parquet":
        out = read_parquet(spark, path, label_col, feature_cols, partitions, on_bad_rows, classes)
    else:
        raise ValueError(f"format must be libsvm, csv or parquet, got {fmt!r}")
    return out



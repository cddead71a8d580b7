"""Train a linear model with distributed mini-batch SGD: ``spark-submit jobs/train_linear.py [options]``.

The options are :mod:`sparkgd.job.cli`'s (``--help``); an installed sparkgd runs the same job as
``python -m sparkgd.job`` or ``sparkgd-train-linear``.
"""

from __future__ import annotations

import sys

from sparkgd.job.cli import main, parser

__all__ = ["main", "parser"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

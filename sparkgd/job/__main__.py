"""``python -m sparkgd.job [options]``: the batch job (see :mod:`sparkgd.job.cli`). Under spark-submit, hand
it this file: ``spark-submit "$(python -c 'import sparkgd.job.__main__ as m; print(m.__file__)')" [options]``."""

import sys

from sparkgd.job.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

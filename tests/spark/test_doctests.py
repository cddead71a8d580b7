"""The examples in the docstrings run."""

import doctest

import pytest

import sparkgd.core.schedules
import sparkgd.ml.classification
import sparkgd.ml.regression
import sparkgd.rdd


@pytest.mark.parametrize("module", [sparkgd.rdd, sparkgd.core.schedules, sparkgd.ml.regression,
                                    sparkgd.ml.classification], ids=lambda m: m.__name__)
def test_docstring_examples(spark, module):
    result = doctest.testmod(module, extraglobs={"spark": spark, "sc": spark.sparkContext},
                             optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

"""Each param's doc states the rule _check_ranges applies (#21.6)."""

import re

import pytest

from sparkgd.ml import SGDLinearRegression, SGDLinearSVC, SGDLogisticRegression
from sparkgd.ml.params import RANGES


@pytest.mark.parametrize("est", [SGDLinearRegression, SGDLogisticRegression, SGDLinearSVC])
def test_every_range_checked_is_the_range_documented(est):
    e = est()
    for name, (_, rule) in RANGES.items():
        if e.hasParam(name):
            assert e.getParam(name).doc.endswith(f"({rule})"), name
    text = e.explainParams()
    assert "SparkContext" not in text and "(>= 2)" not in text and "(>= 0)." not in text


@pytest.mark.parametrize("name,ok,bad", [("stepSize", 1e-9, 0.0), ("aggregationDepth", 1, 0),
                                         ("checkpointInterval", 1, 0), ("tol", 0.0, 1.5)])
def test_the_documented_boundaries_are_the_applied_ones(name, ok, bad):
    SGDLinearRegression(**{name: ok})._check_ranges()
    with pytest.raises(ValueError, match=re.escape(f"param {name} must be {RANGES[name][1]}, got")):
        SGDLinearRegression(**{name: bad})._check_ranges()

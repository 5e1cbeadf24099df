import numpy as np
import pytest

from lamaml.engine.metrics import summarize


def test_metrics_match_a_hand_computed_matrix():
    R = np.array([[90.0, 20.0, 10.0],
                  [80.0, 85.0, 30.0],
                  [70.0, 75.0, 95.0]])
    baseline = np.array([10.0, 12.0, 8.0])
    m = summarize(R, baseline)
    assert m["ra"] == pytest.approx((70 + 75 + 95) / 3)
    assert m["bti"] == pytest.approx(((70 - 90) + (75 - 85) + 0) / 3)       # over all T, as the paper
    assert m["bwt"] == pytest.approx(((70 - 90) + (75 - 85)) / 2)           # over the first T-1
    assert m["learning_accuracy"] == pytest.approx((90 + 85 + 95) / 3)
    assert m["fwt"] == pytest.approx(((20 - 12) + (30 - 8)) / 2)


def test_a_single_task_has_no_transfer():
    m = summarize(np.array([[64.0]]), np.array([9.0]))
    assert m == {"ra": 64.0, "bti": 0.0, "bwt": 0.0, "learning_accuracy": 64.0, "fwt": 0.0}

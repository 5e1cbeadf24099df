"""The paper's Table 1 (MNIST, single pass) as packaged data, and what the table and its claims share."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import yaml

TABLE1_BENCHMARKS = ["mnist-rotations", "mnist-permutations", "mnist-many-permutations"]
TABLE1_METHODS = ["online", "ewc", "gem", "mer", "c-maml", "sync-la-maml", "la-maml"]


@lru_cache(maxsize=None)
def paper_table1() -> dict[str, dict[str, dict[str, list[float]]]]:
    """benchmark -> method -> {"ra": [mean, std], "bti": [mean, std]} (config/paper/table1.yaml)."""
    return yaml.safe_load(resources.files("lamaml.config").joinpath("paper/table1.yaml").read_text())


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for one value)."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

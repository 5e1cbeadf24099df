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


# ---- Table 2: Split CIFAR-100 and Split Tiny ImageNet-200, task-aware, single- and multi-pass ----

TABLE2_BENCHMARKS = ["cifar100", "tinyimagenet"]
TABLE2_SETTINGS = ["single", "multi"]


@lru_cache(maxsize=None)
def paper_table2() -> dict:
    """config/paper/table2.yaml: ``ra`` (benchmark -> setting -> method -> mean RA), ``methods`` (the
    table's rows), ``same_run_in_both`` and ``only_setting`` (methods the paper ran in one setting)."""
    return yaml.safe_load(resources.files("lamaml.config").joinpath("paper/table2.yaml").read_text())


def table2_methods() -> list[str]:
    return list(paper_table2()["methods"])


def column_name(benchmark: str, setting: str) -> str:
    """A Table 2 column, as its claims name it: ``cifar100/single``."""
    return f"{benchmark}/{setting}"


TABLE2_COLUMNS = [column_name(b, s) for b in TABLE2_BENCHMARKS for s in TABLE2_SETTINGS]

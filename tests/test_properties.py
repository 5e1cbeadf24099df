"""Property-based tests over the configuration and command-line surface.

Whatever a user types, the tool answers with a config or one clean line: it never crashes with a
traceback, never hangs, and never writes a result file for a run that did not finish.
"""
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lamaml.cli import main
from lamaml.config import RunConfig, resolve_config
from lamaml.errors import UserError
from lamaml.methods import METHODS

KEYS = sorted(set(RunConfig.model_fields) - {"params", "benchmark", "method"}
              | {k for cls in METHODS.values() for k in cls.Params.model_fields})
VALUES = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["true", "false", "null", "", "[]", "{}", "nan", "-inf", "1e400", "0x10", "mean", "last",
                     "cpu", "cuda", "seen", "xavier-uniform", "'quoted'", "!!python/object:os.system"]),
    st.text(max_size=12),
)
BENCHMARKS = st.sampled_from(["mnist-rotations", "mnist-permutations", "mnist-many-permutations", "mnist", ""])
METHOD_NAMES = st.sampled_from(sorted(METHODS) + ["LaMAML", "sgd"])
FAST = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(benchmark=BENCHMARKS, method=METHOD_NAMES,
       overrides=st.dictionaries(st.sampled_from(KEYS + ["bogus"]), VALUES, max_size=4))
@example(benchmark="mnist-rotations", method="a-gem", overrides={"analyses": "\n"})   # found by CI once
def test_any_overrides_give_a_valid_config_or_a_user_error(benchmark, method, overrides):
    try:
        config = resolve_config(benchmark, method, overrides)
    except UserError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert config.glances >= 1 and config.batch_size >= 1
    for value in config.params.values():
        assert not (isinstance(value, float) and not math.isfinite(value))


ARG = st.one_of(st.sampled_from(["--seed", "--tasks", "--set", "--benchmark", "--method", "--checkpoint-every",
                                 "--quiet", "--no-download", "glances=2", "alpha_init=x", "-1", "0", "3", "5m"]),
                st.text(max_size=8))


@settings(max_examples=100, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.lists(ARG, max_size=6))
def test_the_command_line_never_crashes_or_writes_results_for_failed_runs(args, tmp_path_factory, capsys, monkeypatch):
    out = tmp_path_factory.mktemp("out")
    monkeypatch.setenv("LAMAML_DATA", str(out / "no-data-here"))       # every valid run stops at the data
    monkeypatch.setenv("LAMAML_NO_DOWNLOAD", "1")
    try:
        status = main(["run", "--out", str(out), *args])
    except SystemExit as exit_:       # argparse's own usage errors: status 2, no traceback
        status = exit_.code
    assert status in (0, 2)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if status == 2 and err.startswith("lamaml:"):
        assert len(err.strip().splitlines()) == 1
    assert not (out / "metrics.json").exists()

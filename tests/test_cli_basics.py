"""What a newcomer meets first: the bare command, --version, --help, `lamaml config`, a closed pipe."""
import itertools
import json
import subprocess
import sys
import time


from lamaml.config.schema import SETTINGS
from lamaml.data import BENCHMARKS
from lamaml.methods import METHODS

from test_cli import lamaml


def test_a_bare_lamaml_prints_its_usage_and_starts_nothing(tmp_path):
    result = lamaml(cwd=tmp_path)
    assert result.returncode == 0 and "usage: lamaml" in result.stdout and "config" in result.stdout
    assert list(tmp_path.iterdir()) == []            # no run folder, no download attempt


def test_version_names_the_installed_package():
    import lamaml as package
    result = lamaml("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"lamaml {package.__version__}"


def test_help_does_not_import_torch():
    code = "import sys; from lamaml.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_a_closed_pipe_ends_a_listing_quietly():
    process = subprocess.Popen([sys.executable, "-m", "lamaml.cli", "list"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.readline()
    process.stdout.close()                           # what `| head -1` does
    start = time.monotonic()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0 and "Traceback" not in stderr and time.monotonic() - start < 120


def test_config_prints_the_resolved_config_of_every_benchmark_method_and_setting():
    from lamaml.cli import main
    import contextlib
    import io
    for benchmark, method, setting in itertools.product(BENCHMARKS, METHODS, SETTINGS):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            assert main(["config", "--benchmark", benchmark, "--method", method, "--setting", setting]) == 0
        config = json.loads(out.getvalue())
        assert (config["benchmark"], config["method"], config["setting"]) == (benchmark, method, setting)
        if method in ("gem", "a-gem") and benchmark in ("cifar100", "tinyimagenet"):
            assert config["params"]["grad_clip_norm"] in (2.0, 5.0)      # the scripts' 5.0, else the parser's 2.0
        if method == "a-gem" and benchmark in ("cifar100", "tinyimagenet"):
            assert config["params"]["grad_clip_norm"] == 2.0


def test_config_names_a_setting_the_paper_never_ran_and_refuses_a_bad_key():
    result = lamaml("config", "--benchmark", "cifar100", "--method", "mer", "--setting", "multi")
    assert result.returncode == 0 and json.loads(result.stdout)["epochs"] == 10
    assert "the paper ran mer on cifar100 single-pass only" in result.stderr
    bad = lamaml("config", "--set", "alpah_init=0.1")
    assert bad.returncode == 2 and bad.stderr.startswith("lamaml: --set alpah_init: unknown setting")


def _subcommands():
    import argparse
    from lamaml.cli import build_parser
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_option_of_every_subcommand_has_a_help_text_and_shows_its_default():
    import argparse
    commands = _subcommands()
    assert {"run", "config", "list", "report", "runs", "reproduce", "sweep", "plot"} <= set(commands)
    for name, sub in commands.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            assert action.help, f"lamaml {name} {'/'.join(action.option_strings) or action.dest}: no help"
            default = action.default
            if action.option_strings and default is not None and default is not False and default != [] \
                    and default != argparse.SUPPRESS:
                assert "default" in formatter._get_help_string(action), f"lamaml {name} {action.option_strings}"
    report = lamaml("report", "--help")
    text = " ".join(report.stdout.split())      # as wrapped to any terminal width
    assert report.returncode == 0 and "(default: runs/lamaml.sqlite)" in text
    assert "(default: table)" in text and "config.params.alpha_init=0.1" in text
    run = " ".join(lamaml("run", "--help").stdout.split())
    assert "(default: 0)" in run and "(default: cpu)" in run and "(default: None)" not in run

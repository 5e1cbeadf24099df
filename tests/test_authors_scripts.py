"""The vision presets against the authors' own commands (config/paper/authors_scripts.yaml).

Each command of their run_experiments.sh, with parser.py's defaults for the flags it leaves out,
is mapped onto our config keys by the table below and must equal our preset for the same
(benchmark, method, setting), or be one of the YAML's named deviations. Fast: no data, no training.
"""
from __future__ import annotations

import os
import shlex
from importlib import resources
from pathlib import Path

import pytest
import yaml

from lamaml.config import resolve_config
from lamaml.config.schema import RunConfig
from lamaml.data import benchmark_info

SCRIPTS = yaml.safe_load(resources.files("lamaml.config").joinpath("paper/authors_scripts.yaml").read_text())
VISION_TEXT = resources.files("lamaml.config").joinpath("presets/vision.yaml").read_text()
VISION = yaml.safe_load(VISION_TEXT)
COMMANDS = SCRIPTS["commands"]
DEVIATIONS = SCRIPTS["deviations"]


def command_id(command) -> str:
    return f"{command['benchmark']}-{command['method']}-{command['setting']}"


def given_flags(text: str) -> dict:
    """A command's flags as argparse ends up with them: variables expanded, a later flag overriding an
    earlier one (--log_every), a switch read as true, values as YAML scalars ("50." is 50.0)."""
    for name, value in SCRIPTS["variables"].items():
        text = text.replace(f"${name}", value)
    tokens = shlex.split(text)
    flags = {}
    for i, token in enumerate(tokens):
        if token.startswith("--"):
            has_value = i + 1 < len(tokens) and not tokens[i + 1].startswith("--")
            flags[token[2:]] = yaml.safe_load(tokens[i + 1]) if has_value else True
        else:
            assert i > 0 and tokens[i - 1].startswith("--"), f"stray token {token!r} in {text!r}"
    return flags


def authors_args(command) -> dict:
    """Every flag the command's model file reads, as it runs: the command's value, else the default."""
    given = given_flags(command["flags"])
    args = {name: given.get(name, command["defaults"].get(name)) for name in SCRIPTS["reads"][command["method"]]}
    return {**args, "benchmark": command["benchmark"]}


# -- how their flags map onto our keys -------------------------------------------------------------
# Each entry: our key -> (the flags it is made from, how). `fixed` is the model file's own behaviour,
# whatever the flags say (the method files' docstrings; docs/faithfulness.md).

def same(flag: str, convert=lambda value: value):
    return (flag,), lambda a: convert(a[flag])


def fixed(value):
    return (), lambda a: value


def icarl_samples(a):
    # icarl.py reads --samples_per_task only to count where a task ends (n x (1 - validation) x epochs);
    # the loader always trains on the whole task, so a count that covers it is our "all samples" (null).
    n = a["samples_per_task"] * (1 - a["validation"])
    return None if a["samples_per_task"] < 0 or n >= benchmark_info(a["benchmark"]).samples_per_task else round(n)


RUN = {   # main.py (epochs), the loader (batch size, every sample of a task), the Learner (network, init)
    "model": same("arch", {"pc_cnn": "pc-cnn"}.get),
    "init": same("xav_init", lambda xav: "xavier-normal" if xav else "kaiming-normal"),
    "epochs": same("n_epochs"),
    "batch_size": same("batch_size"),
    "samples_per_task": fixed(None),
}
LOOK_AHEAD = {   # lamaml_cifar.py, eralg4.py la_ER and meta-bgd.py share the inner loop
    "glances": same("glances"),
    "memories": same("memories"),
    "replay_batch_size": same("replay_batch_size", int),
    "alpha_init": same("alpha_init"),
    "inner_steps": same("cifar_batches"),
    "inner_clamp": same("grad_clip_norm"),      # torch.clamp of each inner gradient at +-grad_clip_norm
    "grad_clip_norm": same("grad_clip_norm"),   # clip_grad_norm_ of the meta-gradients
    "relu_in_inner": fixed(False),              # fast weights: w - g * alpha, raw alpha
}
LA_MAML = {**RUN, **LOOK_AHEAD, "second_order": same("second_order"), "meta_loss": fixed("mean"),
           "snapshot_memory": same("use_old_task_memory")}
SGD = {**RUN, "glances": same("glances"), "lr": same("lr"), "grad_clip_norm": same("grad_clip_norm")}
GEM = {**SGD, "n_memories": same("n_memories"), "memory_strength": same("memory_strength")}

MAPPING = {
    "la-maml": {**LA_MAML, "opt_lr": same("opt_lr")},
    "sync-la-maml": {**LA_MAML, "opt_lr": same("opt_lr"), "opt_wt": same("opt_wt")},
    "c-maml": {**LA_MAML, "opt_wt": same("opt_wt")},
    "la-er": {**RUN, **LOOK_AHEAD, "opt_lr": same("opt_lr"), "second_order": same("second_order"),
              "meta_loss": fixed("last"),          # meta_losses[-1]
              "snapshot_memory": fixed(False)},    # eralg4.py keeps one memory
    "er": {**SGD, "memories": same("memories"), "replay_batch_size": same("replay_batch_size", int),
           "push_every_epoch": fixed(True)},       # its reservoir update has no epoch gate
    "gem": GEM,
    "a-gem": {**GEM, "reference": fixed("task-mean")},   # the mean of each past task's clipped gradient
    "icarl": {**GEM, "samples_per_task": (("samples_per_task", "validation"), icarl_samples)},
    "mer": {**RUN, "lr": same("lr"), "grad_clip_norm": same("grad_clip_norm"), "memories": same("memories"),
            "replay_batch_size": same("replay_batch_size", int), "beta": same("beta"), "gamma": same("gamma"),
            "batches_per_example": same("batches_per_example", int)},
    "meta-bgd": {**RUN, **LOOK_AHEAD, "std_init": same("std_init"), "mean_eta": same("mean_eta"),
                 "train_mc_iters": same("train_mc_iters"),
                 "second_order": fixed(True),      # create_graph=True always
                 "meta_loss": fixed("mean"),
                 "snapshot_memory": fixed(False),  # its M is an alias of M_new
                 "bgd_on_rates": fixed(True),      # BGD's groups are all named parameters, alphas included
                 "clip_rates": fixed(False)},      # its clip reads the Learner's parameters only
    "iid": {**RUN, "lr": same("lr"), "iterations": same("iterations"), "tasks_per_batch": same("classes_per_it"),
            "grad_clip_norm": fixed(None)},        # iid2.py never clips
}

# Flags a model file reads that set none of our keys, and why.
SELECTS_METHOD = "selects the method (test_each_command_runs_the_model_and_switches_of_its_method)"
UNMAPPED = {
    "la-maml": {"opt_wt": "the weights step with relu(alpha) unless --sync_update",
                "learn_lr": SELECTS_METHOD, "sync_update": SELECTS_METHOD},
    "sync-la-maml": {"learn_lr": SELECTS_METHOD, "sync_update": SELECTS_METHOD},
    "c-maml": {"opt_lr": "alpha is never updated without --learn_lr",
               "learn_lr": SELECTS_METHOD, "sync_update": SELECTS_METHOD},
    "la-er": {"lr": "builds an optimiser la_ER never steps", "learn_lr": SELECTS_METHOD},
    "er": {"learn_lr": SELECTS_METHOD},
    "gem": {},
    "a-gem": {"memories": "sizes a reservoir agem.py never samples"},
    "icarl": {},
    "mer": {},
    "meta-bgd": {"bgd_optimizer": "the scripts keep its default, bgd, the only optimiser we implement",
                 "use_old_task_memory": "its M is an alias of M_new, so the flag changes nothing"},
    "iid": {},
}

MODEL_FILE = {   # our method -> (--model, --learn_lr, --sync_update)
    "la-maml": ("lamaml_cifar", True, False), "sync-la-maml": ("lamaml_cifar", True, True),
    "c-maml": ("lamaml_cifar", False, True), "la-er": ("eralg4", True, False), "er": ("eralg4", False, False),
    "gem": ("gem", False, False), "a-gem": ("agem", False, False), "icarl": ("icarl", False, False),
    "mer": ("meralg1", False, False), "meta-bgd": ("meta-bgd", False, False), "iid": ("iid2", False, False),
}


def theirs(command) -> dict:
    a = authors_args(command)
    return {key: get(a) for key, (_, get) in MAPPING[command["method"]].items()}


def ours(config: RunConfig, key: str):
    if key in RunConfig.model_fields and key != "params":
        return getattr(config, key)
    assert key in config.params, f"{config.method} has no hyperparameter {key}"
    return config.params[key]


def applies(deviation, command) -> bool:
    return ((deviation["benchmark"], deviation["method"]) == (command["benchmark"], command["method"])
            and deviation["setting"] in ("all", command["setting"]))


def named_deviation(command, key):
    return next((d for d in DEVIATIONS if d["key"] == key and applies(d, command)), None)


# -- the transcription -------------------------------------------------------------------------------

def test_the_script_has_forty_vision_commands_one_per_benchmark_method_and_setting():
    triples = [(c["benchmark"], c["method"], c["setting"]) for c in COMMANDS]
    methods = set(MODEL_FILE) - {"iid", "mer"}
    expected = {(b, m, s) for b in ("cifar100", "tinyimagenet") for m in methods for s in ("single", "multi")}
    expected |= {(b, "iid", "multi") for b in ("cifar100", "tinyimagenet")}
    expected |= {(b, "mer", "single") for b in ("cifar100", "tinyimagenet")}
    assert len(triples) == 40 and set(triples) == expected
    lines = [c["line"] for c in COMMANDS]
    assert lines == sorted(set(lines))


@pytest.mark.parametrize("command", COMMANDS, ids=command_id)
def test_each_command_runs_the_model_and_switches_of_its_method(command):
    flags = given_flags(command["flags"])
    switches = (flags["model"], flags.get("learn_lr", False), flags.get("sync_update", False))
    assert switches == MODEL_FILE[command["method"]]
    assert flags["dataset"] == command["benchmark"]
    assert flags["loader"] == ("multi_task_loader" if command["method"] == "iid" else "class_incremental_loader")
    epochs = authors_args(command)["n_epochs"]
    assert (epochs == 1) == (command["setting"] == "single"), epochs


@pytest.mark.parametrize("command", COMMANDS, ids=command_id)
def test_each_command_lists_exactly_the_parser_defaults_of_the_flags_it_leaves_out(command):
    given = given_flags(command["flags"])
    defaults = SCRIPTS["parser_defaults"]
    expected = {name: defaults[name] for name in SCRIPTS["reads"][command["method"]] if name not in given}
    assert command["defaults"] == expected


@pytest.mark.parametrize("method", sorted(MAPPING))
def test_every_flag_a_model_file_reads_sets_one_of_our_keys_or_is_named_unmapped(method):
    mapped = {flag for flags, _ in MAPPING[method].values() for flag in flags}
    reads = set(SCRIPTS["reads"][method])
    assert mapped <= reads, mapped - reads
    assert reads - mapped == set(UNMAPPED[method])


@pytest.mark.skipif(not os.environ.get("LAMAML_AUTHORS_DIR"),
                    reason="set LAMAML_AUTHORS_DIR to a checkout of montrealrobotics/La-MAML (commit cff3524)")
def test_the_transcription_matches_the_authors_script_line_for_line():
    script = (Path(os.environ["LAMAML_AUTHORS_DIR"]) / "run_experiments.sh").read_text().split("\n")
    found, i = {}, 0
    while i < len(script):
        if script[i].startswith(("python3 main.py $CIFAR", "python3 main.py $IMGNET")):
            start, parts = i + 1, [script[i].rstrip()]
            while parts[-1].endswith("\\"):
                i += 1
                parts.append(script[i].rstrip())
            pieces = [part.removesuffix("\\").rstrip() for part in parts]
            found[start] = " ".join([pieces[0]] + [p.strip() for p in pieces[1:]]).removeprefix("python3 main.py ")
        i += 1
    assert found == {c["line"]: c["flags"] for c in COMMANDS}
    for name, value in SCRIPTS["variables"].items():
        assert any(line in (f"{name}='{value}'", f"{name}={value}") for line in script), name


# -- our presets against them ------------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS, ids=command_id)
def test_every_command_has_its_own_preset_block(command):
    assert command["setting"] in VISION[command["benchmark"]].get(command["method"], {})


# Methods the paper never ran have no command; their blocks take ER's protocol, memory and rate, or
# VR-MCL La-MAML's (the header says so; tests/test_replay_baselines.py and test_vr_mcl.py check it).
NOT_IN_THE_PAPER = ("er-ace", "der", "der++", "vr-mcl")


def test_every_preset_block_has_a_transcribed_command():
    blocks = {(b, m, s) for b, table in VISION.items() for m, entry in table.items()
              if m not in ("_defaults", *NOT_IN_THE_PAPER) for s in entry}
    assert blocks == {(c["benchmark"], c["method"], c["setting"]) for c in COMMANDS}


@pytest.mark.parametrize("command", COMMANDS, ids=command_id)
def test_our_preset_runs_the_authors_command_or_a_named_deviation(command):
    config = resolve_config(command["benchmark"], command["method"], setting=command["setting"])
    wrong = []
    for key, value in theirs(command).items():
        mine, deviation = ours(config, key), named_deviation(command, key)
        if deviation is None and mine != value:
            wrong.append(f"{key}: ours {mine!r}, theirs {value!r} (line {command['line']})")
        elif deviation is not None and (mine, value) != (deviation["ours"], deviation["theirs"]):
            wrong.append(f"{key}: the named deviation says ours {deviation['ours']!r}, theirs {deviation['theirs']!r}; "
                         f"found ours {mine!r}, theirs {value!r}")
    assert not wrong, "; ".join(wrong)


def deviation_id(deviation) -> str:
    return f"{deviation['benchmark']}-{deviation['method']}-{deviation['setting']}-{deviation['key']}"


@pytest.mark.parametrize("deviation", DEVIATIONS, ids=deviation_id)
def test_every_named_deviation_is_still_one(deviation):
    commands = [c for c in COMMANDS if applies(deviation, c)]
    assert commands, "no transcribed command for this deviation"
    assert deviation["ours"] != deviation["theirs"]
    for command in commands:
        config = resolve_config(command["benchmark"], command["method"], setting=command["setting"])
        assert ours(config, deviation["key"]) == deviation["ours"], command_id(command)
        assert theirs(command)[deviation["key"]] == deviation["theirs"], command_id(command)
    assert deviation["why"].strip()


@pytest.mark.parametrize("deviation", DEVIATIONS, ids=deviation_id)
def test_every_named_deviation_is_named_in_the_vision_presets_header(deviation):
    lines = VISION_TEXT.split("\n")
    header = "\n".join(lines[:next(i for i, line in enumerate(lines) if line and not line.startswith("#"))])
    assert f"{deviation['key']}: {deviation['ours']}" in header and deviation["method"] in header

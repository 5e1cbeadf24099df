"""The typed, validated description of one run, and how it is resolved from presets and overrides.

Precedence, lowest first: field defaults < the paper preset for (benchmark, method) < explicit
arguments (seed, tasks) < ``--set key=value`` overrides. Keys are either run fields or the
chosen method's hyperparameters; anything else is refused with the list of allowed keys.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from ..data import benchmark_info, check_scenario
from ..errors import UserError
from ..methods import MethodParams, method_class


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    benchmark: str
    method: str
    seed: int = Field(0, ge=0, description="seeds the tasks, the model, the stream order and the method")
    tasks: int | None = Field(None, ge=1, description="keep only the first N tasks (smoke runs)")
    samples_per_task: int | None = Field(None, ge=1, description="training samples per task; "
                                         "null: the benchmark's own (1000 / 1000 / 200)")
    epochs: int = Field(1, ge=1, description="passes over each task (1: single-pass protocol)")
    batch_size: int = Field(10, ge=1, description="incoming stream batch size")
    glances: int = Field(1, ge=1, description="updates on each incoming batch")
    setting: Literal["single", "multi"] = Field("single", description="the paper's protocol: single pass "
                                                "with glances, or multi-pass (10 epochs); selects the preset")
    hparams: Literal["scripts", "appendix"] = Field(
        "scripts", description="which of the paper's hyperparameters the preset takes: the authors' scripts "
        "(which produced its numbers) or the appendix's tables where they differ (config/paper/appendix.yaml)")
    model: Literal["mlp", "pc-cnn"] = Field("mlp", description="network: the MNIST MLP or the vision "
                                            "benchmarks' conv net (their preset's default)")
    init: Literal["kaiming-normal", "kaiming-normal-gain1", "xavier-uniform", "xavier-normal"] = Field(
        "kaiming-normal", description="weight init (biases zero): La-MAML's Learner (kaiming-normal, gain sqrt 2), "
                           "the gain 1 its comment names (kaiming-normal-gain1: Tiny ImageNet's La-MAML-family "
                           "presets, where sqrt 2 diverges), GEM/MER's MLP of the MNIST baselines "
                           "(xavier-uniform), the authors' --xav_init (xavier-normal)")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="where to compute")
    cuda_precision: Literal["float32", "tf32"] = Field(
        "float32", description="on CUDA, float32 convolutions and matrix products in full float32 (the CPU's "
        "numbers; the authors' 2020 runs predate TF32) or in TF32 (faster on Ampere and later GPUs, a 10-bit "
        "mantissa; PyTorch's own default for convolutions); no effect on the CPU")
    deterministic: bool = Field(False, description="on CUDA, deterministic kernels (torch.use_deterministic_"
                                "algorithms; slower): the same seed gives the same numbers bit for bit, as on "
                                "the CPU, and a resumed run the metrics of an uninterrupted one; no effect on the CPU")
    train_threads: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description="CPU threads while training. auto: the threads this process may use (at most 4; a "
        "sweep's share of the cores per job) for conv nets, one for an MLP run, whose single-sample steps gain "
        "nothing from more, and for batched seeds, which then equal their separate runs to the bit (all, under "
        "MKL_CBWR=AUTO,STRICT); a number: that many. Evaluation uses all of them")
    eval_batch_size: int = Field(10000, ge=1, description="test images per forward pass at evaluation")
    evaluate: Literal["all", "seen", "metrics"] = Field(
        "metrics", description="after each task, evaluate only what the final metrics read (the task just "
        "learned and the next, then all at the end: 3T evaluations instead of T^2), those seen and the "
        "next (RA after every task), or every task (the full matrix, as the authors); skipped entries "
        "are null")
    scenario: Literal["task-il", "class-il", "domain-il"] | None = Field(
        None, description="task-il: each task's loss and prediction see only its classes (task id at test); "
        "class-il: one head over all outputs, no task id at test; domain-il: the same classes in every task. "
        "null: the benchmark's own (split-mnist class-il, cifar100 and tinyimagenet task-il, the MNIST "
        "rotations and permutations domain-il, their only one)")
    eval_every: int | None = Field(
        None, ge=1, description="anytime evaluation: every N incoming batches and at each task's end, accuracy "
        "on the tasks seen so far (the curve, aaa, min_acc and worst_case_accuracy in metrics.json; not "
        "training time); null: off")
    anytime_samples: int | None = Field(
        None, ge=1, description="anytime evaluation reads only the first N samples of each task's evaluation "
        "split (the same samples at every point, for every method and seed), so a 100-task stream can afford "
        "it; null: the whole split, as the accuracy matrix")
    analyses: list[Literal["alignment", "fast-weights", "lr-stats"]] = Field(
        default_factory=list, description="series measured during the run for the paper's analyses "
        "(gradient alignment, RA at fast weights, learned-rate statistics); they do not change the run")
    analysis_every: int = Field(25, ge=1, description="meta-updates between two fast-weights / "
                                "lr-stats measurements")
    analysis_samples: int = Field(1000, ge=1, description="test images per task the analyses read")
    params: dict[str, Any] = Field(default_factory=dict, description="the method's hyperparameters")
    # The same hyperparameters as the method's typed Params, validated once with the config: what the
    # method is built with. ``params`` is their plain form, for JSON, stores and config hashes.
    _method_params: MethodParams | None = PrivateAttr(None)

    @field_validator("train_threads", mode="before")
    @classmethod
    def _threads_or_auto(cls, threads: Any) -> Any:
        """One message for both forms (pydantic's would name the int branch of the union)."""
        if threads == "auto":
            return threads
        try:
            count = int(threads)
        except (TypeError, ValueError):
            count = 0
        if isinstance(threads, float) and count != threads or count < 1:
            raise ValueError(f"{threads!r} is neither an integer >= 1 nor 'auto'")
        return count

    @field_validator("scenario")
    @classmethod
    def _scenario_of_benchmark(cls, scenario: str | None, info: ValidationInfo) -> str | None:
        if scenario is not None and "benchmark" in info.data:
            try:
                check_scenario(info.data["benchmark"], scenario)
            except UserError as error:
                raise ValueError(str(error).removeprefix(f"scenario={scenario}: ")) from None
        return scenario

    @model_validator(mode="after")
    def _check_combinations(self) -> "RunConfig":
        """Settings that are each valid but cannot work together, caught before any work starts."""
        params = method_class(self.method).Params(**self.params)
        self.__dict__["params"] = params.model_dump()
        self._method_params = params
        bench = benchmark_info(self.benchmark)
        samples = self.samples_per_task or bench.samples_per_task
        inner_steps = self.params.get("inner_steps")
        if inner_steps is not None and inner_steps > self.batch_size:
            raise ValueError(f"inner_steps={inner_steps} exceeds batch_size={self.batch_size}: "
                             f"each inner step needs at least one sample")
        tasks_per_batch = self.params.get("tasks_per_batch")
        if tasks_per_batch is not None and self.batch_size % tasks_per_batch:
            raise ValueError(f"batch_size={self.batch_size} is not a multiple of tasks_per_batch={tasks_per_batch}: "
                             f"each batch takes batch_size / tasks_per_batch samples of each task")
        if samples is not None and self.batch_size > samples:
            raise ValueError(f"batch_size={self.batch_size} exceeds the {samples} training samples per task")
        cls = method_class(self.method)
        if "fast-weights" in self.analyses and not hasattr(cls, "record_fast_weights"):
            raise ValueError(f"analyses=fast-weights needs a look-ahead method with fast weights "
                             f"(la-maml, c-maml, sync-la-maml, la-er), not {self.method}")
        if "lr-stats" in self.analyses and not hasattr(cls, "record_fast_weights"):
            raise ValueError(f"analyses=lr-stats needs a method with per-parameter rates "
                             f"(la-maml, c-maml, sync-la-maml, la-er), not {self.method}")
        if check_scenario(self.benchmark, self.scenario) == "class-il" and cls.needs_task_id_at_test:
            raise ValueError(f"scenario=class-il: {self.method} predicts with the task id (its class means are "
                             f"per task); run it with --set scenario=task-il")
        if len(set(self.analyses)) != len(self.analyses):
            raise ValueError(f"analyses={self.analyses}: each analysis at most once")
        if self.tasks is not None and self.tasks > bench.n_tasks:
            raise ValueError(f"tasks={self.tasks}: {self.benchmark} has {bench.n_tasks} tasks; use 1..{bench.n_tasks}")
        return self

    def method_params(self) -> MethodParams:
        """The method's hyperparameters, typed (a copy: the method may not change the config's)."""
        return self._method_params.model_copy()


@lru_cache(maxsize=None)
def _presets() -> dict[str, dict[str, dict[str, Any]]]:
    merged: dict = {}
    for entry in resources.files("lamaml.config").joinpath("presets").iterdir():
        if entry.name.endswith(".yaml"):
            merged.update(yaml.safe_load(entry.read_text()))
    return merged


SETTINGS = ("single", "multi")
MULTI_PASS = {"epochs": 10, "glances": 1}   # the paper's multi-pass protocol, where no preset says more


@lru_cache(maxsize=None)
def _appendix() -> dict[str, dict[str, dict[str, Any]]]:
    return yaml.safe_load(resources.files("lamaml.config").joinpath("paper/appendix.yaml").read_text())


HPARAMS = ("scripts", "appendix")


def preset(benchmark: str, method: str, setting: str = "single", hparams: str = "scripts") -> dict[str, Any]:
    """The paper's hyperparameters for this (benchmark, method, setting) ({} where the paper has none).

    Vision entries hold one block per setting; a method the paper ran in one setting only has no
    block for the other and is refused there. Entries without blocks (MNIST) are single-pass.
    ``hparams="appendix"`` overlays the appendix's values where they differ from the scripts.
    """
    table = _presets().get(benchmark, {})
    merged = dict(table.get("_defaults", {}))
    entry = table.get(method, {})
    if any(key in entry for key in SETTINGS):
        if setting not in entry:
            other = next(key for key in SETTINGS if key in entry)
            raise UserError(f"--setting {setting}: the paper ran {method} on {benchmark} {other}-pass only")
        merged.update(entry[setting])
    else:
        merged.update(entry)
        if setting == "multi":
            merged.update(MULTI_PASS)
    if hparams == "appendix":
        overlay = (_appendix().get(benchmark) or {}).get(method, {})
        merged.update(overlay.get(setting, {}) if any(key in overlay for key in SETTINGS) else overlay)
    return merged


SINGLE_PASS = {"epochs": 1}   # what the single-pass protocol changes of a multi-pass preset


def preset_note(benchmark: str, method: str, setting: str, hparams: str = "scripts") -> str | None:
    """Why a run's preset is not the paper's own for this setting (None when it is)."""
    try:
        preset(benchmark, method, setting, hparams)
        return None
    except UserError:
        other = next(key for key in SETTINGS if key != setting)
        protocol = MULTI_PASS if setting == "multi" else SINGLE_PASS
        return (f"the paper ran {method} on {benchmark} {other}-pass only; this {setting}-pass run takes its "
                f"{other}-pass hyperparameters with the {setting}-pass protocol "
                f"({', '.join(f'{k} {v}' for k, v in protocol.items())})")


def _preset_or_other_setting(benchmark: str, method: str, setting: str, hparams: str) -> dict[str, Any]:
    """The paper's preset; for a setting the paper never ran this method in, its other setting's
    hyperparameters under this setting's protocol (named by ``preset_note``), so every method can
    be compared under one protocol."""
    try:
        return preset(benchmark, method, setting, hparams)
    except UserError:
        other = next(key for key in SETTINGS if key != setting)
        return {**preset(benchmark, method, other, hparams), **(MULTI_PASS if setting == "multi" else SINGLE_PASS)}


def parse_value(text: str) -> Any:
    """A ``--set`` value as YAML scalar: numbers, true/false, null, lists; otherwise the string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _explain(error: ValidationError, given: dict[str, Any]) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"] if part != "params") or "config"
    message = first["msg"].replace("Value error, ", "").replace("Input should be", f"{key} must be")
    root = key.split(".")[0]
    if root in given:
        return f"--set {root}={given[root]}: {message}"
    return message if key == "config" else f"{key}: {message}"


def resolve_config(benchmark: str, method: str, overrides: dict[str, Any] | None = None,
                   **explicit: Any) -> RunConfig:
    """Resolve a run's full configuration; ``overrides`` are ``--set`` values (strings allowed)."""
    benchmark_info(benchmark)
    params_model = method_class(method).Params
    run_fields = set(RunConfig.model_fields) - {"params", "benchmark", "method"}
    setting = raw_setting = (overrides or {}).get("setting") or explicit.get("setting") or "single"
    if setting not in SETTINGS:
        raise UserError(f"--setting {raw_setting}: choose single (one pass, with glances) or multi (10 epochs)")
    hparams = (overrides or {}).get("hparams") or explicit.get("hparams") or "scripts"
    if hparams not in HPARAMS:
        raise UserError(f"--hparams {hparams}: choose scripts (the authors' run_experiments.sh, the default) "
                        f"or appendix (the paper appendix's tables)")
    settings = _preset_or_other_setting(benchmark, method, setting, hparams)
    settings["setting"], settings["hparams"] = setting, hparams
    settings.update({k: v for k, v in explicit.items() if v is not None})
    raw = dict(overrides or {})
    for key, value in raw.items():
        if key not in run_fields and key not in params_model.model_fields:
            allowed = sorted(run_fields | set(params_model.model_fields))
            raise UserError(f"--set {key}: unknown setting for {method}; allowed: {', '.join(allowed)}")
        settings[key] = parse_value(value) if isinstance(value, str) else value
    top = {k: v for k, v in settings.items() if k in run_fields}
    params = {k: v for k, v in settings.items() if k not in run_fields}
    try:
        return RunConfig(benchmark=benchmark, method=method, params=params, **top)
    except ValidationError as error:
        raise UserError(_explain(error, raw)) from None

"""What ``lamaml list`` prints: every benchmark, and every method with its paper presets and defaults."""
from __future__ import annotations


def catalog() -> str:
    """Benchmarks (tasks, samples per task, description); methods, each with its preset on every
    benchmark and protocol the paper ran it under (a benchmark run under both says which), then
    the defaults of its other hyperparameters."""
    from ..config import preset
    from ..data import BENCHMARKS
    from ..errors import UserError
    from ..methods import METHODS
    lines = ["benchmarks:"]
    for info in BENCHMARKS.values():
        samples = "all" if info.samples_per_task is None else info.samples_per_task
        scenarios = f"; {info.scenarios[0]} (or --set scenario={','.join(info.scenarios[1:])})" \
            if len(info.scenarios) > 1 else ""
        lines.append(f"  {info.name:<26} {info.n_tasks:>3} tasks x {samples:>4} samples   "
                     f"{info.description}{scenarios}")
    lines += ["", "methods (paper defaults per benchmark; change any with --set key=value):"]
    for name, cls in sorted(METHODS.items()):
        lines.append(f"  {name:<14} {cls.summary}")
        for bench, info in BENCHMARKS.items():
            for setting in info.settings:
                try:
                    values = preset(bench, name, setting)
                except UserError:     # the paper ran this method in the other setting only
                    continue
                label = f"{bench} ({setting})" if len(info.settings) > 1 else bench
                if values:
                    lines.append(f"      {label:<26} " + " ".join(f"{k}={v}" for k, v in values.items()))
        defaults = cls.Params().model_dump()
        lines.append("      other defaults: " + " ".join(f"{k}={v}" for k, v in defaults.items()))
    return "\n".join(lines)

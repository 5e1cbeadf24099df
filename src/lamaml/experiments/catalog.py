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
        lines.append(f"  {info.name:<26} {info.n_tasks:>3} tasks x {info.samples_per_task:>4} samples   "
                     f"{info.description}")
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

"""Data: files, benchmarks and task streams. Imports only lamaml's bottom modules (errors, atomic)."""
from .benchmarks import BENCHMARKS, benchmark_info, build_benchmark, check_scenario, require_data
from .files import resolve_data_dir
from .stream import SCENARIOS, Task, TaskStream, stream_from_data

__all__ = ["BENCHMARKS", "SCENARIOS", "Task", "TaskStream", "benchmark_info", "build_benchmark", "check_scenario",
           "require_data", "resolve_data_dir", "stream_from_data"]

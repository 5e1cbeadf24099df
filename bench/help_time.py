"""`lamaml --help` against `python -c "import torch"` on this machine: medians of N runs each.

    python bench/help_time.py [--runs 5]
"""
import argparse
import statistics
import subprocess
import sys
import time


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    n = parser.parse_args().runs
    help_s = median_seconds([sys.executable, "-m", "lamaml", "--help"], n)
    torch_s = median_seconds([sys.executable, "-c", "import torch"], n)
    print(f"lamaml --help {help_s:.2f} s; import torch {torch_s:.2f} s; ratio {help_s / torch_s:.2f} (medians of {n})")

"""The speed checks of issue 16, as one command on an idle machine: a Markdown table to paste into
BENCHMARKS.md.

    python bench/speed_checks.py --data-dir ../shared/data --out /tmp/speed      # all (about 20 min)
    python bench/speed_checks.py --checks mnist,seeds --data-dir ../shared/data --out /tmp/speed

- mnist: `lamaml run` (MNIST Rotations, La-MAML, seed 0, defaults) twice: wall clock, RA, BTI,
  ms per meta-update; and the projection `--estimate` makes (`--dry-run` shows it as JSON) against
  the real wall clock.
- seeds: `lamaml run --seeds 0-4` on one training thread (`--set train_threads=1`) and as the default
  `train_threads=auto` trains batched seeds (every core, at most 4), against one seed's wall clock.
- tiny: the projection of a 2-task Tiny ImageNet La-MAML run, then the run itself (both on the threads
  `auto` gives a conv net: every core, at most 4).
Each command runs alone; the load average before it is printed beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def lamaml(*args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lamaml", *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"lamaml {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - start, done.stdout + done.stderr


def load() -> float:
    return os.getloadavg()[0]


def projected_seconds(args: list[str]) -> float:
    """What `lamaml run ARGS --dry-run` projects for the whole run (its JSON's projected_total_s)."""
    _, text = lamaml("run", *args, "--dry-run")
    return float(json.loads(text[text.index("{"):])["projected"]["projected_total_s"])


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def check_mnist(out: Path, data: list[str], rows: list[str]) -> float:
    estimate = projected_seconds(data)
    walls = []
    for k in range(2):
        before = load()
        wall, _ = lamaml("run", *data, "--quiet", "--out", str(out / f"mnist{k}"))
        m = metrics(out / f"mnist{k}")
        walls.append(wall)
        rows.append(f"| `lamaml run` (MNIST Rotations, La-MAML, seed 0), round {k + 1} | {before:.1f} | {wall:.1f} s "
                    f"| RA {m['ra']:.2f}, BTI {m['bti']:.2f}, {m['ms_per_update']:.2f} ms/update, "
                    f"train {m['train_time_s']:.1f} s, eval {m['eval_time_s']:.1f} s |")
    rows.append(f"| its `--estimate` | - | {estimate:.0f} s | {100 * (estimate / walls[0] - 1):+.0f} % against round 1 |")
    return walls[0]


def check_seeds(out: Path, data: list[str], rows: list[str], one_seed: float) -> None:
    for threads in ("1", "auto"):
        before = load()
        wall, _ = lamaml("run", *data, "--seeds", "0-4", "--quiet", "--set", f"train_threads={threads}",
                         "--out", str(out / f"seeds{threads}"))
        ras = [metrics(out / f"seeds{threads}" / f"seed{k}")["ra"] for k in range(5)]
        rows.append(f"| `lamaml run --seeds 0-4`, train_threads={threads} | {before:.1f} | {wall:.1f} s "
                    f"(**{wall / one_seed:.2f}x** one seed) | RA {' / '.join(f'{r:.2f}' for r in ras)} |")


def check_tiny(out: Path, data_dir: str, rows: list[str]) -> None:
    data = ["--benchmark", "tinyimagenet", "--method", "la-maml", "--tasks", "2", "--data-dir", data_dir]
    estimate = projected_seconds(data)
    before = load()
    wall, _ = lamaml("run", *data, "--quiet", "--out", str(out / "tiny"))
    m = metrics(out / "tiny")
    rows.append(f"| 2-task Tiny ImageNet La-MAML run | {before:.1f} | {wall:.0f} s | {m['ms_per_update']:.0f} ms/update, "
                f"RA {m['ra']:.2f}; `--estimate` {estimate:.0f} s ({100 * (estimate / wall - 1):+.0f} %) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True, help="a scratch folder for the runs")
    parser.add_argument("--checks", default="mnist,seeds,tiny")
    args = parser.parse_args()
    out, checks, rows = Path(args.out), args.checks.split(","), []
    out.mkdir(parents=True, exist_ok=True)
    data = ["--data-dir", args.data_dir]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    one_seed = check_mnist(out, data, rows) if "mnist" in checks or "seeds" in checks else 0.0
    if "seeds" in checks:
        check_seeds(out, data, rows, one_seed)
    if "tiny" in checks:
        check_tiny(out, args.data_dir, rows)
    print(f"commit {commit}, {os.cpu_count()} cores; `python bench/speed_checks.py --checks {args.checks}`\n")
    print("| check | load before | wall clock | numbers |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

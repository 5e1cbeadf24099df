"""The Python API and the CLI give the same run: ``lamaml.fit`` on ``lamaml.benchmark(...)`` against
``lamaml run`` with the same seed, full MNIST Rotations (issue 15's acceptance; ~2 x 45 s).

    python bench/fit_vs_run.py --data-dir ../shared/data
"""
import argparse
import json
import subprocess
import sys
import tempfile

import numpy as np

import lamaml

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data-dir", required=True)
args = parser.parse_args()
bench = lamaml.benchmark("mnist-rotations", data_dir=args.data_dir)
fit = lamaml.fit(bench.model("la-maml"), bench, "la-maml", progress=False)
out = tempfile.mkdtemp()
subprocess.run([sys.executable, "-m", "lamaml", "run", "--data-dir", args.data_dir, "--out", out, "--quiet"],
               check=True, capture_output=True)
metrics = json.load(open(f"{out}/metrics.json"))
cli = np.array(metrics["acc_matrix"], dtype=float)
api = np.asarray(fit.acc_matrix, dtype=float)
same_entries = np.array_equal(np.isnan(cli), np.isnan(api))
print(f"fit RA {fit.ra:.3f}, run RA {metrics['ra']:.3f}; same entries evaluated: {same_entries}; "
      f"largest difference {np.nanmax(np.abs(cli - api)):.4f}")

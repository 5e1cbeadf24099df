"""How far one call moves ours and the authors' apart from an equal start (float64): their weights,
rates (and BGD's state) are set to ours again after every call, so rounding cannot accumulate.

    python bench/resync_authors.py --authors-dir /tmp/La-MAML [--methods sync-la-maml,c-maml] [--shape cifar100]
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from authors import cases  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors-dir", required=True)
    parser.add_argument("--methods", default="sync-la-maml,c-maml,la-maml")
    parser.add_argument("--shape", default="cifar100", choices=["cifar100", "tinyimagenet"])
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    for method in args.methods.split(","):
        row = cases.run_case(args.authors_dir, method, args.shape, resync=True)
        rates = "-" if row.rates_diff is None else f"{row.rates_diff:.1e}"
        print(f"{args.shape} {method}: each call from an equal start, weights {row.weights_diff:.1e}, rates {rates}",
              flush=True)


if __name__ == "__main__":
    main()

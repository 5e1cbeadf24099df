#!/usr/bin/env bash
# bench_mnist.py on two source trees (e.g. git worktrees of two commits), alternated, so both see
# the same machine state:  bash bench/ab_mnist.sh BEFORE_TREE AFTER_TREE [ROUNDS] [DATA_DIR, default $LAMAML_DATA or ./data]
# Prints each invocation's table; each tree runs its own bench/bench_mnist.py against its own src/.
set -euo pipefail
before=$(realpath "$1"); after=$(realpath "$2"); rounds=${3:-2}; data=$(realpath "${4:-${LAMAML_DATA:-data}}")
for round in $(seq "$rounds"); do
  for tree in "$before" "$after"; do
    echo "== $tree, round $round ($(git -C "$tree" rev-parse --short HEAD))"
    (cd "$tree" && PYTHONPATH="$tree/src" python bench/bench_mnist.py --data-dir "$data" --updates 600 --skip-full \
      | grep '^| ms')
  done
done

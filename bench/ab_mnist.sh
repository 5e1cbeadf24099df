#!/usr/bin/env bash
# bench_mnist.py on two source trees (e.g. git worktrees of two commits), alternated, so both see
# the same machine state:  bash bench/ab_mnist.sh BEFORE_TREE AFTER_TREE [ROUNDS] [DATA_DIR, default $LAMAML_DATA or ./data]
# Prints each invocation's table; each tree runs its own bench/bench_mnist.py against its own src/.
set -euo pipefail
source "$(dirname "$0")/ab_trees.sh"
data=$(realpath "${4:-${LAMAML_DATA:-data}}")
mnist() { python bench/bench_mnist.py --data-dir "$data" --updates 600 --skip-full | grep '^| ms'; }
export -f mnist; export data
ab_trees "$1" "$2" "${3:-2}" bash -c mnist

#!/usr/bin/env bash
# bench_vision.py on two source trees (e.g. git worktrees of two commits), alternated, so both see the
# same machine state; each tree runs its own bench/bench_vision.py against its own src/:
#   bash bench/ab_vision.sh BEFORE_TREE AFTER_TREE [ROUNDS] [BENCHMARKS] [METHODS] [UPDATES] [WARMUP]
# e.g. bash bench/ab_vision.sh ../before . 2 cifar100 la-maml,sync-la-maml,c-maml,la-er,meta-bgd 15
# One training thread (as runs train), median of UPDATES updates after WARMUP (default 2) warm-up ones
# (MER: --warmup 50 fills its memory to a full replay draw of 25 in either tree); prints each
# invocation's table rows (benchmark, method, setting, ..., ms / update, ...).
set -euo pipefail
source "$(dirname "$0")/ab_trees.sh"
benchmarks=${4:-cifar100}; methods=${5:-la-maml}; updates=${6:-15}; warmup=${7:-2}
vision() { python bench/bench_vision.py --benchmarks "$benchmarks" --methods "$methods" --updates "$updates" \
  --warmup "$warmup" --threads 1 2>/dev/null | grep -E "^\| (cifar100|tinyimagenet) " || true; }
export -f vision; export benchmarks methods updates warmup
ab_trees "$1" "$2" "${3:-2}" bash -c vision

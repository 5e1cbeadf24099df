#!/usr/bin/env bash
# bench_vision.py on two source trees (e.g. git worktrees of two commits), alternated, so both see the
# same machine state; each tree runs its own bench/bench_vision.py against its own src/:
#   bash bench/ab_vision.sh BEFORE_TREE AFTER_TREE [ROUNDS] [BENCHMARKS] [METHODS] [UPDATES] [WARMUP]
# e.g. bash bench/ab_vision.sh ../before . 2 cifar100 la-maml,sync-la-maml,c-maml,la-er,meta-bgd 15
# THREADS_BEFORE and THREADS_AFTER (default 1 and 1) set each tree's training threads: a number, or auto
# (how runs train the conv nets since train_threads=auto; the tree must know it). Median of UPDATES updates
# after WARMUP (default 2) warm-up ones
# (MER: --warmup 50 fills its memory to a full replay draw of 25 in either tree); prints each
# invocation's table rows (benchmark, method, setting, ..., ms / update, ...). Before each round it prints
# what a second thread pays the pc-cnn then (the cpu_scaling.py beside this script, --brief; AB_PROBE= skips it):
# this 2-vCPU VM swings between hours, and a slow round shows there.
set -euo pipefail
source "$(dirname "$0")/ab_trees.sh"
benchmarks=${4:-cifar100}; methods=${5:-la-maml}; updates=${6:-15}; warmup=${7:-2}
here=$(realpath "$(dirname "$0")")
export AB_PROBE=${AB_PROBE-"PYTHONPATH='$here/../src' python '$here/cpu_scaling.py' --only ${benchmarks%%,*} --brief --rounds 3 --passes 5"}
after_tree=$(realpath "$2"); threads_before=${THREADS_BEFORE:-1}; threads_after=${THREADS_AFTER:-1}
vision() {
  local threads=$threads_before; [ "$PWD" = "$after_tree" ] && threads=$threads_after
  echo "   (training threads: $threads)"
  python bench/bench_vision.py --benchmarks "$benchmarks" --methods "$methods" --updates "$updates" \
  --warmup "$warmup" --threads "$threads" 2>/dev/null | grep -E "^\| (cifar100|tinyimagenet) " || true; }
export -f vision; export benchmarks methods updates warmup after_tree threads_before threads_after
ab_trees "$1" "$2" "${3:-2}" bash -c vision

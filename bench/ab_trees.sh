# Sourced by bench/ab_mnist.sh and bench/ab_vision.sh: one benchmark command on two source trees (e.g. git
# worktrees of two commits), alternated for ROUNDS rounds so both see the same machine state; each tree
# runs the command from its own root with its own src/ on PYTHONPATH.
#   ab_trees BEFORE_TREE AFTER_TREE ROUNDS COMMAND...
# AB_PROBE: a shell command run (from the calling directory) before each round, to say what state the
# machine is in then (ab_vision.sh: what a second thread pays now); unset or empty, none.
ab_trees() {
  local before after rounds round tree
  before=$(realpath "$1"); after=$(realpath "$2"); rounds=$3; shift 3
  for round in $(seq "$rounds"); do
    if [ -n "${AB_PROBE:-}" ]; then
      local probe
      probe=$(bash -c "$AB_PROBE" 2>&1) && probe=$(tail -1 <<< "$probe") || probe="(probe failed: $(tail -1 <<< "$probe"))"
      echo "-- before round $round: $probe"
    fi
    for tree in "$before" "$after"; do
      echo "== $tree, round $round ($(git -C "$tree" rev-parse --short HEAD)), load $(cut -d' ' -f1 /proc/loadavg)"
      (cd "$tree" && PYTHONPATH="$tree/src" "$@")
    done
  done
}

#!/usr/bin/env bash
# The CUDA check, as one command for the device machine (its python3 holds a CUDA PyTorch; nothing can
# be fetched there). lamaml's own needs that its image lacks travel as wheels in .whl/, and MNIST (for
# the end-to-end runs) in .devdata/mnist/, both made here first:
#   echo /.whl/ >> .git/info/exclude; echo /.devdata/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     pydantic==2.12.5 pydantic-core==2.41.5 annotated-types==0.7.0 typing-inspection==0.4.2
#   mkdir -p .devdata && cp -r ../shared/data/mnist .devdata/
# then run `bash bench/gpu_check.sh` with `carry: [".whl", ".devdata"]`. Four parts, each under its own
# time limit so that one slow part cannot hide the others; together under 8 minutes:
#   1. gpu_check.py: every Table 2 method's update on CUDA equal to the CPU's in float64, eager speed
#      and projected full runs                                              -> $OUT/gpu-check.md
#   2. `lamaml run --device cuda` end to end on MNIST Rotations (when .devdata/mnist is there): 3 tasks,
#      5 batched seeds of 3 tasks, and the full run's --estimate             -> $OUT/gpu-runs.log
#   3. the compiled rows (torch.compile on the model, first-order methods)  -> $OUT/gpu-compile.md
#   4. the main job, whole: `lamaml run --device cuda` (La-MAML, MNIST Rotations) -> $OUT/gpu-runs.log
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out="${OUT:-.}" device="${DEVICE:-cuda}"      # DEVICE=cpu: a dry run of this script where there is no GPU
[ "$device" = cpu ] || nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
timeout 270 python3 bench/gpu_check.py --device "$device" --skip-compile --out "$out/gpu-check.md"
if [ -d .devdata/mnist ]; then
    data=(--data-dir .devdata --no-download --device "$device" --quiet)
    for args in "--tasks 3" "--tasks 3 --seeds 0-4" "--estimate"; do
        echo "## lamaml run --device $device $args"
        time timeout 50 python3 -m lamaml run $args "${data[@]}"
    done 2>&1 | tee "$out/gpu-runs.log"
fi
timeout 150 python3 bench/gpu_check.py --device "$device" --methods er,la-er --compile-methods er,la-er --out "$out/gpu-compile.md"
if [ -d .devdata/mnist ]; then      # last: the main job itself, whole, on the device (the --estimate above, checked)
    echo "## lamaml run --device $device (the full run)" | tee -a "$out/gpu-runs.log"
    { time timeout 100 python3 -m lamaml run "${data[@]}"; } 2>&1 | tee -a "$out/gpu-runs.log"
fi
echo "gpu_check.sh done"

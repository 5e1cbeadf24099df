#!/usr/bin/env bash
# The CUDA check, as one command for the device machine (its python3 holds a CUDA PyTorch; nothing can
# be fetched there). lamaml's own needs that its image lacks travel as wheels in .whl/, made here first:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     pydantic==2.12.5 pydantic-core==2.41.5 annotated-types==0.7.0 typing-inspection==0.4.2
# then run it with `carry: [".whl"]`. It writes $OUT/gpu-check.md (or ./gpu-check.md) and ends in ~8 min.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
timeout 480 python3 bench/gpu_check.py --out "${OUT:-.}/gpu-check.md"

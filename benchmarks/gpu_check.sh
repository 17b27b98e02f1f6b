#!/usr/bin/env bash
# The GPU check: the first thing to run whenever a GPU is at hand (about 8-11 minutes on one H100/H200).
#
#   benchmarks/gpu_check.sh OUT_DIR [--seed S] [--suite]
#
# Runs, each logged in full to OUT_DIR/<step>.log through tee (a time limit cannot cut what was written):
#   cuda-tests   tests/test_cuda.py (capture, replay against eager, schedule inside the graph, fallback)
#   throughput   benchmarks/proxy_throughput.py: our trainer against a plain eager loop
#   phi0         `scalesearch train --alpha 1 --beta 1 --gamma 1 --device cuda --json --seed S`
#   grid         `scalesearch grid --budget 2x --device cuda --seed S`, timed, cold cost cache (on a GPU the
#                default refines at φ = 2 what φ = 1 leaves open: its time is part of the figure)
#   concurrent   benchmarks/concurrent_trials.py --jobs 2: two trials on the GPU at once against one
#   suite        (with --suite) the whole test suite, which must pass where CUDA is present
# then writes OUT_DIR/summary.txt (one screen, targets marked) and summary.json. A second call with
# --seed 1 into the same OUT_DIR adds the two-run agreement (Spearman over the networks both grids trained).
# Exit status: 0 all steps ran and every target was met; 1 a step failed; 3 all ran, a target was missed;
# 4 the summary could not be made. Steps run under `timeout` in their own process group: Ctrl-C stops this
# script, and a step still running ends at its limit.
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu_check.sh OUT_DIR [--seed S] [--suite]}
shift
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)  # before the cd below: a relative folder is the caller's
cd "$(dirname "$0")/.."
SEED=0
SUITE=0
while [ $# -gt 0 ]; do
  case $1 in
    --seed) SEED=${2:?--seed needs a value}; shift 2 ;;
    --suite) SUITE=1; shift ;;
    *) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
# This checkout's package, installed or not (a GPU machine may only have its dependencies as wheels).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
SCALESEARCH=("$PY" -m scalesearch)
export SCALESEARCH_JOBS=1  # one worker per GPU unless a step says otherwise (concurrent measures more)
unset SCALESEARCH_DEVICE
failed=()

step() {  # step NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*" | tee -a "$OUT/steps.log"
  local t0
  t0=$(date +%s%N)
  timeout --signal=TERM --kill-after=30 "$limit" "$@" 2>&1 | tee "$OUT/$name-seed$SEED.log"
  local rc=${PIPESTATUS[0]}
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "$name seed=$SEED rc=$rc seconds=$((ms / 1000)).$(printf %03d $((ms % 1000)))" | tee -a "$OUT/steps.log"
  [ "$rc" = 0 ] || failed+=("$name")
}

step env 60 bash -c "nvidia-smi; $PY -c 'import torch, sys; print(sys.version); print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))'"
step cuda-tests 180 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py
step throughput 150 "$PY" benchmarks/proxy_throughput.py
step phi0 150 "${SCALESEARCH[@]}" train --alpha 1 --beta 1 --gamma 1 --device cuda --json --seed "$SEED"
rm -rf "$OUT/grid-seed$SEED" "$OUT/cost-cache-seed$SEED"
# A cold cost cache, as on a user's first run: the grid measures every candidate itself.
step grid 480 env SCALESEARCH_CACHE="$OUT/cost-cache-seed$SEED" "${SCALESEARCH[@]}" grid --budget 2x --device cuda \
  --seed "$SEED" --out "$OUT/grid-seed$SEED"
step concurrent 180 "$PY" benchmarks/concurrent_trials.py --jobs 2
if [ "$SUITE" = 1 ]; then
  step suite 900 "$PY" -m pytest -q -p no:cacheprovider
fi

"$PY" benchmarks/gpu_summary.py "$OUT" 2>&1 | tee "$OUT/summary.txt"
summary_rc=${PIPESTATUS[0]}
if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu_check: failed steps: ${failed[*]} (logs in $OUT)" | tee -a "$OUT/summary.txt"
  exit 1
fi
[ "$summary_rc" = 3 ] && exit 3
[ "$summary_rc" = 0 ] || { echo "gpu_check: the summary itself failed (status $summary_rc)" >&2; exit 4; }

#!/usr/bin/env bash
# GPU check, sized for one short run on one GPU: at most 9 minutes on an H100/H200-class card
# (the device tool's limit is 10 minutes a command and 15 minutes a session, start included),
# from at most 64 MiB of files (the repository plus the compact bundle of make_gpu_bundle.sh).
#
#   benchmarks/gpu_check.sh OUT_DIR [DATA_ROOT]
#
# Runs, each step under its own time limit and all of them under BUDGET_S (default 540 s):
#   1. the machine (nvidia-smi, torch, the GPU);
#   2. bench_pgd.py on CUDA (ResNet-18, 224 px, batch 256), without and with autocast, and
#      torch.compile (the opt-in ADVMED_COMPILE hook);
#   3. bench_uap.py on CUDA (ResNet-18 on pneumonia_cxr at 224 px), without and with autocast;
#   4. tests/test_scale_cuda.py: attacks under autocast agree with fp32;
#   5. chapters 1-3 of the paper profile on pneumonia_cxr with MobileNet v1 0.75 (ImageNet) and
#      ResNet-18 (scratch): their cells timed one by one under
#      CHAPTERS_BUDGET_S (default 240 s), then their tables (paper_cells.py);
#   6. bench_robust.py on CUDA: the robust-evaluation grid on the model chapter 1 trained.
# and writes into OUT_DIR: env.txt, log.txt (every step's output), steps.tsv (step, exit
# status, seconds), cells.csv, tables.txt, paper_cells.json, pytest_cuda.txt.
#
# DATA_ROOT (default $ADVMED_DATA_ROOT, else .gpu-bundle/data) needs chest_xray_kermany_224/
# and weights/mobilenet_v1_0.75_224_tfjs/. Python packages the machine lacks (kornia, pooch,
# torchattacks, ...) are installed from .gpu-bundle/wheels when that folder exists.
#
# The plumbing can be tried on a CPU with small sizes (the autocast and compile steps are then
# skipped): DEVICE=cpu PROFILE=paper-dry SIZE=32 BATCH=16 IMAGES=32 benchmarks/gpu_check.sh /tmp/out
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu_check.sh OUT_DIR [DATA_ROOT]}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUDGET_S=${BUDGET_S:-540}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
PROFILE=${PROFILE:-paper}
SIZE=${SIZE:-224}
BATCH=${BATCH:-256}
IMAGES=${IMAGES:-300}
T0=$(date +%s)
export PYTHONUNBUFFERED=1 ADVMED_OFFLINE=1
export ADVMED_DATA_ROOT=${2:-${ADVMED_DATA_ROOT:-$REPO/.gpu-bundle/data}}
export ADVMED_CACHE=${ADVMED_CACHE:-/tmp/advmed-gpu-check}
export PYTHONPATH=$REPO/lib${PYTHONPATH:+:$PYTHONPATH}
cd "$REPO"

if ! $PY -c "import kornia, pooch, torchattacks" 2>/dev/null; then
  if [ -d .gpu-bundle/wheels ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/advmed-site .gpu-bundle/wheels/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/advmed-site
  fi
fi

left() { echo $(( BUDGET_S - ($(date +%s) - T0) )); }
printf 'step\tstatus\tseconds\n' > "$OUT/steps.tsv"
# step NAME LIMIT_S COMMAND...: run COMMAND under min(LIMIT_S, what is left of BUDGET_S)
step() {
  local name=$1 limit=$2; shift 2
  local budget; budget=$(left)
  if [ "$budget" -lt 20 ]; then printf '%s\tskipped (budget)\t0\n' "$name" >> "$OUT/steps.tsv"; return; fi
  [ "$limit" -gt "$budget" ] && limit=$budget
  echo "===== $name (limit ${limit} s) =====" >> "$OUT/log.txt"
  local s; s=$(date +%s)
  timeout "$limit" "$@" >> "$OUT/log.txt" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - s ))" >> "$OUT/steps.tsv"
}

{ nvidia-smi; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA')"; } > "$OUT/env.txt" 2>&1

GPU_ONLY=(); [ "$DEVICE" = cpu ] || GPU_ONLY=(--compile)
step pgd 60 $PY benchmarks/bench_pgd.py --device "$DEVICE" --batch "$BATCH" --size "$SIZE" --steps 10 --repeats 5 \
  "${GPU_ONLY[@]}"
[ "$DEVICE" = cpu ] || step pgd_amp 60 $PY benchmarks/bench_pgd.py --device "$DEVICE" --batch "$BATCH" --size "$SIZE" \
  --steps 10 --repeats 5 --amp
UAP_ARGS=(--device "$DEVICE" --data kermany --arch resnet18 --size "$SIZE" --n $((2 * BATCH)) --train-steps 200
          --target-rate 0.6 --skip-art)
step uap 75 $PY benchmarks/bench_uap.py "${UAP_ARGS[@]}"
[ "$DEVICE" = cpu ] || step uap_amp 60 $PY benchmarks/bench_uap.py "${UAP_ARGS[@]}" --amp
step cuda_tests 90 bash -c "$PY -m pytest -q -rs -p no:cacheprovider tests/test_scale_cuda.py 2>&1 | tee '$OUT/pytest_cuda.txt'"
step chapters_1_3 420 env ADVMED_DEVICE="$DEVICE" $PY benchmarks/paper_cells.py --profile "$PROFILE" \
  --tasks pneumonia_cxr --models mobilenet_v1_075:imagenet resnet18:scratch \
  --chapters 01_models 02_whitebox 03_uap --skip whitebox/robust whitebox/diagnostics --budget-s "${CHAPTERS_BUDGET_S:-240}" --out "$OUT"
step robust 90 $PY benchmarks/bench_robust.py --device "$DEVICE" --profile "$PROFILE" --task pneumonia_cxr \
  --images "$IMAGES" --steps 20 --pgd-restarts 3 --threads 8 --skip-part2
echo "gpu_check: $(( $(date +%s) - T0 )) s; outputs in $OUT"
cat "$OUT/steps.tsv"

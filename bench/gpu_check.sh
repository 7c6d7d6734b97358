#!/usr/bin/env bash
# The GPU checks of issue 13, in one run of a few minutes on one H100 (each step has its own
# time limit: 120 + 180 + 60 + 60 + 150 s, so the whole stays under 10 minutes even when
# every step runs out of time).
#
# Needs: a CUDA GPU, python3 with torch (CUDA build), numpy, scipy, pandas, networkx,
# matplotlib, tqdm and pytest already installed. No network, nothing installed: the
# repository is used in place (PYTHONPATH=.). Run from anywhere:
#
#     bash bench/gpu_check.sh [OUT_DIR]      # reports and logs go to OUT_DIR (default /tmp/gpu_check)
#
# Prints, each as a same-run ratio where there is a reference:
#   1. the CUDA tests (tests/verify/test_cuda.py, tests/verify/test_capture.py);
#   2. bench/bench_gpu.py: ms per draw at 256 px (goal <= 2.5), engine / fp32 matmul
#      (goal >= 0.2), engine / per-sample loop (goal >= 5), each lever's worth, and the
#      per-sample error of fp32 / tf32 / bf16 against float64;
#   3. the main job on the GPU (goal <= 5 s end to end), with its time on this machine's CPU
#      for 16 draws (the same command, so the ratio is per draw);
#   4. the 1024-px job: verify scaling --dims 32,...,1024 --draws 640 (goal < 60 s).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.
OUT=${1:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
status=0

section() { printf '\n==== %s ====\n' "$*"; }
# wall seconds of a command, its output to a log; the seconds on stdout
timed() {
    local log=$1
    shift
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$log" 2>&1
    local rc=$?
    t1=$(date +%s.%N)
    echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}'
    return $rc
}

section "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi not found"
$PY -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); sys.exit(0 if torch.cuda.is_available() else 3)" || {
    echo "no CUDA device visible to torch: nothing to check"
    exit 3
}
echo "cpu cores: $(nproc)"

section "1. CUDA tests"
timeout 120 $PY -m pytest -q -p no:cacheprovider tests/verify/test_cuda.py tests/verify/test_capture.py || status=1

section "2. bench/bench_gpu.py (256 px)"
timeout 180 $PY bench/bench_gpu.py --draws 256 --rounds 2 || status=1

section "3. main job: verify scaling --arch strided-cnn --dims 32,64,128,256"
gpu=$(timed "$OUT/main-gpu.log" timeout 60 $PY -m verify scaling --arch strided-cnn --dims 32,64,128,256 --device cuda --out-dir "$OUT/main") || status=1
tail -n 4 "$OUT/main-gpu.log"
grep -E "^- (precision|seed)" "$OUT/main/scaling-strided-cnn.md" 2>/dev/null
cpu=$(timed "$OUT/main-cpu16.log" timeout 60 $PY -m verify scaling --arch strided-cnn --dims 32,64,128,256 --draws 16 --device cpu --out-dir "$OUT/main-cpu16") || status=1
echo "main job on the GPU: ${gpu} s end to end (goal <= 5 s; $(echo "$gpu" | awk '{printf "%.2f", $1 / 5}') x the goal)"
echo "same command with 16 draws on this machine's CPU: ${cpu} s; GPU per draw = $(echo "$gpu $cpu" | awk '{printf "%.3f", ($1 / 160) / ($2 / 16)}') x CPU per draw (both including start-up and the exact side)"

section "4. whole job: --dims 32,64,128,256,512,1024 --draws 640"
big=$(timed "$OUT/big-gpu.log" timeout 150 $PY -m verify scaling --arch strided-cnn --dims 32,64,128,256,512,1024 --draws 640 --device cuda --out-dir "$OUT/big") || status=1
tail -n 4 "$OUT/big-gpu.log"
echo "1024-px job on the GPU: ${big} s end to end (goal < 60 s; $(echo "$big" | awk '{printf "%.2f", $1 / 60}') x the goal)"

section "done"
echo "logs and reports in $OUT; status $status"
exit $status

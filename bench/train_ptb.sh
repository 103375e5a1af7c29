#!/usr/bin/env bash
# The training benchmarks of the closing note, on PTB's own splits (../shared/data/ptb):
# teacher, distilled vs scratch student, throughput vs a plain Trainer, torchrun 2 vs 1 process.
# Usage: bash bench/train_ptb.sh [OUT_DIR]   (about 75 minutes on 2 cores)
set -euo pipefail
out=${1:-bench/out}
mkdir -p "$out"
export LMFORGE_HOME="$out/home" LMFORGE_NO_PROGRESS=1
lm=".venv/bin/lmforge"
[ -d "$out/ptb" ] || $lm data prepare --config configs/ptb.yaml --output "$out/ptb"

# 1. Teacher: 4 layers x 256, 8k BPE, context 128, cosine decay over ~45 minutes.
$lm train --config configs/ptb-teacher.yaml --data "$out/ptb" --output "$out/teacher" --force

# 2. Students with half the teacher's layers, same steps: distilled vs from scratch.
$lm distill --teacher "$out/teacher" --data "$out/ptb" --output "$out/student-distilled" \
  --student-layers 2 --max-steps 400 --eval-steps 100 --learning-rate 2e-3 --force
$lm train --data "$out/ptb" --output "$out/student-scratch" --model-size small --n-layer 2 \
  --max-steps 400 --eval-steps 100 --learning-rate 2e-3 --force

# 3. Throughput against a plain Trainer script, same shape, no evaluation in either.
$lm train --data "$out/ptb" --output "$out/throughput" --model-size small --max-steps 60 \
  --eval-steps 1000 --no-track --force
.venv/bin/python bench/plain_trainer.py "$out/ptb" --steps 60

# 4. torchrun: 2 processes vs 1, same global batch.
$lm train --data "$out/ptb" --output "$out/ddp-1" --model-size small --max-steps 100 \
  --eval-steps 25 --no-track --force
OMP_NUM_THREADS=1 .venv/bin/torchrun --nproc_per_node 2 -m lmforge train --data "$out/ptb" \
  --output "$out/ddp-2" --model-size small --max-steps 100 --eval-steps 25 --no-track --force
.venv/bin/python bench/report_train.py "$out"

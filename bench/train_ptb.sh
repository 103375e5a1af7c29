#!/usr/bin/env bash
# The training benchmarks of the closing note, on PTB's own splits (../shared/data/ptb):
# teacher, distilled vs scratch student, throughput vs a plain Trainer, torchrun 2 vs 1 process.
# Usage: bash bench/train_ptb.sh [OUT_DIR]   (about 2 hours on 2 cores)
set -euo pipefail
out=${1:-bench/out}
mkdir -p "$out"
export LMFORGE_HOME="$out/home" LMFORGE_NO_PROGRESS=1
lm=".venv/bin/lmforge"
[ -d "$out/ptb" ] || $lm data prepare --config configs/ptb.yaml --output "$out/ptb"

# 1. Teacher: 4 layers x 256, 8k BPE, context 128, bf16 autocast, dropout 0.2, a cosine that
#    decays over 55 minutes of wall time (configs/ptb-teacher.yaml says why); then its word-level
#    perplexity on PTB's test and valid files.
$lm train --config configs/ptb-teacher.yaml --data "$out/ptb" --output "$out/teacher" --force
$lm eval "$out/teacher" --perplexity ../shared/data/ptb/ptb.test.txt \
  --report "$out/eval-teacher" --force
$lm eval "$out/teacher" --perplexity ../shared/data/ptb/ptb.valid.txt \
  --report "$out/eval-teacher-valid" --force

# 2. Students with half the teacher's layers, same steps: distilled vs from scratch. Both use
#    the teacher's bf16 autocast (same steps, ~1.6x the tokens/s of fp32); the distilled one
#    inherits the teacher's dropout (0.2) with its config, the scratch one keeps the default 0.1.
#    600 steps (about 30 minutes for the distilled one: each step also runs the teacher).
$lm distill --teacher "$out/teacher" --data "$out/ptb" --output "$out/student-distilled" \
  --student-layers 2 --max-steps 600 --eval-steps 200 --learning-rate 2e-3 --precision bf16 --force
$lm train --data "$out/ptb" --output "$out/student-scratch" --model-size small --n-layer 2 \
  --max-steps 600 --eval-steps 200 --learning-rate 2e-3 --precision bf16 --force
for student in student-distilled student-scratch; do
  $lm eval "$out/$student" --perplexity ../shared/data/ptb/ptb.test.txt \
    --report "$out/eval-$student" --force
done

# 3. Throughput against a plain Trainer script, same shape, no evaluation in either; and
#    fp32 against bf16 autocast (compare step_tokens_per_second in each lmforge.json; on a
#    shared machine alternate and take the best of two).
for precision in fp32 bf16; do
  $lm train --data "$out/ptb" --output "$out/throughput-$precision" --model-size small \
    --max-steps 60 --eval-steps 1000 --no-track --precision "$precision" --force
done
.venv/bin/python bench/plain_trainer.py "$out/ptb" --steps 60

# 4. torchrun: 2 processes vs 1, same global batch; the checkpoints keep the logged curves
#    that bench/report_train.py plots.
$lm train --data "$out/ptb" --output "$out/ddp-1" --model-size small --max-steps 100 \
  --eval-steps 25 --no-track --keep-checkpoints --force
OMP_NUM_THREADS=1 .venv/bin/torchrun --nproc_per_node 2 -m lmforge train --data "$out/ptb" \
  --output "$out/ddp-2" --model-size small --max-steps 100 --eval-steps 25 --no-track \
  --keep-checkpoints --force
.venv/bin/python bench/report_train.py "$out"

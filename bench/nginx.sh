#!/usr/bin/env bash
# `lmforge bench` through nginx (`lmforge deploy local`) with 1 and 2 workers on this machine,
# the distilgpt2-shaped model of bench/engine.py (built by it or by bench/serve.sh).
# Usage: bash bench/nginx.sh [OUT_DIR]
set -euo pipefail
out=${1:-bench/out}
lm=.venv/bin/lmforge
model="$out/engine/distilgpt2-random"
export LMFORGE_NO_PROGRESS=1
for workers in 1 2; do
  echo "== nginx over $workers worker(s)"
  $lm deploy local "$model" --workers "$workers" --port 8090 --run-dir "$out/nginx-$workers" \
    --rate-per-ip 1000 2>"$out/nginx-$workers.log" &
  deploy=$!
  for _ in $(seq 600); do curl -sf http://127.0.0.1:8090/readyz >/dev/null && break; sleep 0.5; done
  $lm bench http://127.0.0.1:8090 --concurrency 8,32 --requests 64 --prompt-tokens 13 \
    --max-new-tokens 64 --warmup 4 --output "$out/nginx-bench-$workers"
  kill -TERM $deploy && wait $deploy
done

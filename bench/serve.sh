#!/usr/bin/env bash
# `lmforge bench` against `lmforge serve` (the distilgpt2-shaped model of bench/engine.py) at
# concurrency 1, 8 and 32; overload at 4x the queue bound and the recovery right after; and the
# naive reference server (transformers generate per request) under the same load.
# Usage: bash bench/serve.sh [OUT_DIR]
set -euo pipefail
out=${1:-bench/out}
py=.venv/bin/python
lm=.venv/bin/lmforge
model="$out/engine/distilgpt2-random"
export LMFORGE_NO_PROGRESS=1
$py -c "import sys; sys.path.insert(0, 'bench'); from pathlib import Path; \
from engine import build_model; build_model(Path('$model'))"

wait_ready() {
  for _ in $(seq 600); do
    curl -sf "$1" >/dev/null && return 0
    sleep 0.2
  done
  echo "server at $1 never got ready" >&2
  return 1
}
# 13 words make about 32 tokens with this model's tokenizer (bench.json reports the count).
load=(--requests 64 --prompt-tokens 13 --max-new-tokens 64 --warmup 4)

echo "== lmforge serve, concurrency 1, 8, 32"
$lm serve "$model" --port 8100 --kv-slots 32 --max-queue 256 --unverified 2>"$out/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
wait_ready http://127.0.0.1:8100/readyz
$lm bench http://127.0.0.1:8100 --concurrency 1,8,32 "${load[@]}" --output "$out/serve-bench"
kill -TERM $server && wait $server

echo "== overload: 4x the queue bound (32 slots + 32 queued = 64), then one request at once"
$lm serve "$model" --port 8100 --kv-slots 32 --max-queue 32 --unverified 2>>"$out/serve.log" &
server=$!
wait_ready http://127.0.0.1:8100/readyz
$lm bench http://127.0.0.1:8100 --concurrency 256 --requests 256 --prompt-tokens 13 \
  --max-new-tokens 64 --warmup 0 --output "$out/serve-overload"
$py - <<'PY'
import time, httpx
start = time.perf_counter()
answer = httpx.post("http://127.0.0.1:8100/v1/generate",
                    json={"prompt": "recovered?", "max_new_tokens": 4}, timeout=60)
print(f"right after the overload: HTTP {answer.status_code} in {time.perf_counter() - start:.3f} s")
PY
kill -TERM $server && wait $server

echo "== naive reference server (transformers generate per request)"
$py bench/naive_server.py "$model" --port 8101 2>>"$out/serve.log" &
server=$!
wait_ready http://127.0.0.1:8101/v1/models
$lm bench http://127.0.0.1:8101 --concurrency 1,8,32 --requests 16 --prompt-tokens 13 \
  --max-new-tokens 64 --warmup 1 --output "$out/naive-bench"
kill $server

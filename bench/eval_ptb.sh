#!/usr/bin/env bash
# The evaluation benchmark of the closing note: the full suite (configs/eval-ptb.yaml) on the
# distilled student that bench/train_ptb.sh wrote, with its teacher as the baseline (so both
# models run every task), then every task's metrics and seconds for both.
# Usage: bash bench/eval_ptb.sh [OUT_DIR]
set -euo pipefail
out=${1:-bench/out}
export LMFORGE_HOME="$out/home" LMFORGE_NO_PROGRESS=1
# Exit code 1 only says that the student fails the gate against its teacher somewhere.
.venv/bin/lmforge eval "$out/student-distilled" --baseline "$out/teacher" \
  --suite configs/eval-ptb.yaml --batch-size 32 --report "$out/eval" --force \
  || echo "the student fails the suite's gate against the teacher (see the comparison)"
.venv/bin/python - "$out/eval/report.json" <<'PY'
import json
import sys

report = json.load(open(sys.argv[1]))
for model in (report["baseline"], report):
    print(f"\n## {model['model']['ref']} (load {model['load_seconds']:.1f} s)")
    for task, metrics in model["tasks"].items():
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        print(f"- {task} ({model['details'][task]['seconds']:.1f} s): {shown}")
PY

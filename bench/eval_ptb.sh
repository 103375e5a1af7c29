#!/usr/bin/env bash
# The evaluation benchmark of the closing note: the full suite (configs/eval-ptb.yaml) on the
# PTB teacher and the distilled student that bench/train_ptb.sh wrote, the student against the
# teacher as its baseline, then a table of every task's metrics and seconds.
# Usage: bash bench/eval_ptb.sh [OUT_DIR]
set -euo pipefail
out=${1:-bench/out}
export LMFORGE_HOME="$out/home" LMFORGE_NO_PROGRESS=1
lm=".venv/bin/lmforge"
$lm eval "$out/teacher" --suite configs/eval-ptb.yaml --report "$out/eval/teacher" --force
# The student against its teacher: exit code 1 only says it fails the gate somewhere.
$lm eval "$out/student-distilled" --suite configs/eval-ptb.yaml --baseline "$out/teacher" \
  --report "$out/eval/student" --force || echo "student: the gate against the teacher failed"
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
for name in ("teacher", "student"):
    report = json.loads((out / "eval" / name / "report.json").read_text())
    print(f"\n## {name}: {report['model']['ref']} (load {report['load_seconds']:.1f} s)")
    for task, metrics in report["tasks"].items():
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        print(f"- {task} ({report['details'][task]['seconds']:.1f} s): {shown}")
PY

#!/usr/bin/env bash
# The registry flow of the closing note on two real trained models (from bench/train_ptb.sh),
# in a fresh embedded store, with the wall time of each step.
# Usage: bash bench/registry_flow.sh [OUT_DIR]
set -uo pipefail
out=${1:-bench/out}
export LMFORGE_HOME="$out/registry-home" LMFORGE_NO_PROGRESS=1
rm -rf "$LMFORGE_HOME"
lm=".venv/bin/lmforge"
step() {
  local label=$1 t0=$EPOCHREALTIME
  shift
  echo "\$ lmforge ${*}"
  "$lm" "$@"
  local rc=$?
  awk -v l="$label" -v rc="$rc" -v a="$t0" -v b="$EPOCHREALTIME" \
    'BEGIN { printf ">> %s: exit %d, %.2f s\n\n", l, rc, b - a }'
}
step "register teacher (v1)" registry register "$out/teacher" --name ptb
step "register distilled student (v2)" registry register "$out/student-distilled" --name ptb
step "register scratch student (v3)" registry register "$out/student-scratch" --name ptb
step "promote teacher" registry promote ptb 1
step "promote distilled student" registry promote ptb 2
step "promote worse scratch student" registry promote ptb 3
step "force scratch student" registry promote ptb 3 --force --reason "half the layers for the edge fleet"
step "rollback" registry rollback ptb
step "pull production" registry pull models:/ptb@production
printf 'x' >> "$LMFORGE_HOME/cache/ptb/2/model.safetensors"
step "pull tampered" registry pull models:/ptb@production
step "list" registry list

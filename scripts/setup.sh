#!/usr/bin/env bash
# One command from a fresh machine to a working hub: installs the system libraries, builds
# hubctl in release mode, fetches and verifies the shipped model and data, then runs the
# main job on the embedded defaults — a registry on SQLite in $HUB_HOME with the base
# model imported — and prints the model's card. Safe to run again: every step is idempotent.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$HUB_REPO_ROOT"

bash scripts/install-deps.sh
log "building hubctl (release)"
build_log=$(mktemp)
if ! swift build -c release --product hubctl >"$build_log" 2>&1; then
    tail -n 60 "$build_log" >&2
    die "swift build failed (full log: $build_log)"
fi
hubctl="$(swift build -c release --show-bin-path)/hubctl"
[ -x "$hubctl" ] || die "the release build did not produce $hubctl"
bash scripts/fetch-assets.sh

export HUB_HOME="${HUB_HOME:-$HOME/.compression-hub}"
log "registry in $HUB_HOME"
"$hubctl" init
"$hubctl" import "$HUB_MODEL_GGUF" smollm2/SmolLM2-135M-Instruct
"$hubctl" card smollm2/SmolLM2-135M-Instruct
log "done: hubctl is at $hubctl"

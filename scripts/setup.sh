#!/usr/bin/env bash
# One command from a fresh machine to a working hub: installs the system libraries, builds
# hubctl in release mode, fetches and verifies the shipped model and data, then runs the
# main job on the embedded defaults, scripts/quickstart.sh: a registry on SQLite in
# $HUB_HOME served by the daemon, the base imported, two compressed variants pushed and
# evaluated, the one that fits a latency budget pulled, audited and run. Safe to run again.
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
bash scripts/quickstart.sh "$hubctl"
log "done: hubctl is at $hubctl"

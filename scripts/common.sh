# Shared settings for the project's scripts; sourced, not run.
HUB_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HUB_CACHE="${HUB_CACHE:-$HOME/.cache/compression-hub}"
export HUB_MODEL_GGUF="$HUB_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
export HUB_BIGBENCH="$HUB_CACHE/bigbench"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# start_daemon HUBCTL LOG [serve options…]: starts `hubctl serve` on an ephemeral loopback port
# in the background, its log in LOG; sets $daemon (its pid) and $port once it listens.
start_daemon() {
    local hubctl=$1 daemon_log=$2
    shift 2
    "$hubctl" serve --port 0 "$@" 2> "$daemon_log" &
    daemon=$!
    port=""
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$daemon_log" | head -1)
        [ -n "$port" ] && return 0
        sleep 0.1
    done
    die "the daemon did not start: $(cat "$daemon_log")"
}

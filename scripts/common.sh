# Shared settings for the project's scripts; sourced, not run.
HUB_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HUB_CACHE="${HUB_CACHE:-$HOME/.cache/compression-hub}"
export HUB_MODEL_GGUF="$HUB_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
export HUB_BIGBENCH="$HUB_CACHE/bigbench"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

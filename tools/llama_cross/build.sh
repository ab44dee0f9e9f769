#!/usr/bin/env bash
# Builds a second libllama from the same llama.cpp source as the references (the one vendored
# in the llama-cpp-python sdist), for another x86 ISA level: AVX2 + FMA + F16C, no AVX-512.
# nmse.py then loads it through llama-cpp-python (LLAMA_CPP_LIB_PATH) to measure how far
# llama.cpp's logits move between two builds of itself. A developer tool; never part of CI.
#
#   tools/llama_cross/build.sh            # prints the directory holding libllama.so
#
# Environment: SDIST (the llama-cpp-python sdist), WORK (scratch dir, default /tmp/llama_perf,
# shared with tools/llama_perf), CMAKE_VENV (a venv with pip-installed cmake, default
# /work/ref/venv), JOBS (default 2). About 3 minutes on 2 cores.
set -euo pipefail

SDIST=${SDIST:-/work/ref/sdist/llama_cpp_python-0.3.36.tar.gz}
WORK=${WORK:-/tmp/llama_perf}
CMAKE_VENV=${CMAKE_VENV:-/work/ref/venv}
export PATH="$CMAKE_VENV/bin:$PATH"

. "$(dirname "$0")/../llama_perf/source.sh"

BUILD="$WORK/build-avx2"
if [ ! -e "$BUILD/bin/libllama.so" ]; then
    cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
        -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
        -DGGML_BMI2=ON -DGGML_AVX512=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF >&2
    cmake --build "$BUILD" --target llama -j "${JOBS:-2}" >&2
fi
echo "$BUILD/bin"

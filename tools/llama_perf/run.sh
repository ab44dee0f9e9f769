#!/usr/bin/env bash
# Builds llama.cpp's test-backend-ops from the source vendored in the llama-cpp-python sdist and
# runs its MUL_MAT perf mode for the shapes our `cargo bench --bench matvec` measures.
# A developer tool for docs/perf.md; never part of CI.
#
#   tools/llama_perf/run.sh [THREADS...]          (default: 1 2)
#
# Environment: SDIST (the llama-cpp-python sdist), WORK (scratch dir, default /tmp/llama_perf),
# CMAKE_VENV (a venv with pip-installed cmake and ninja, default /work/ref/venv).
#
# Two edits are made to the *scratch copy* of tests/test-backend-ops.cpp (never to anything in
# this repo), because upstream's perf mode (a) fixes the CPU backend at hardware_concurrency/2
# threads, and (b) only has m=4096,k=14336 mat-vec cases for every type:
#   - the thread count is read from GGML_TBO_THREADS when set;
#   - a mat-vec case m=4096, n=1, k=4096 is added for every type.
# The AMX flags are disabled: ggml's AMX path segfaults on this machine (see FACTS.md).
set -euo pipefail

SDIST=${SDIST:-/work/ref/sdist/llama_cpp_python-0.3.36.tar.gz}
WORK=${WORK:-/tmp/llama_perf}
CMAKE_VENV=${CMAKE_VENV:-/work/ref/venv}
THREADS=("$@")
[ ${#THREADS[@]} -eq 0 ] && THREADS=(1 2)
export PATH="$CMAKE_VENV/bin:$PATH"

. "$(dirname "$0")/source.sh"
# The patches go on whenever they are missing, also into a tree tools/llama_cross unpacked.
TBO="$SRC/tests/test-backend-ops.cpp"
if ! grep -q GGML_TBO_THREADS "$TBO"; then
    # (a) thread count from the environment.
    sed -i 's|std::max<int>(1, N_THREADS/2)|std::max<int>(1, getenv("GGML_TBO_THREADS") ? atoi(getenv("GGML_TBO_THREADS")) : (int) N_THREADS/2)|' "$TBO"
    grep -q GGML_TBO_THREADS "$TBO" || { echo "patch (a) did not apply" >&2; exit 1; }
fi
if ! grep -q '4096, 1, 4096, {1, 1}' "$TBO"; then
    # (b) 4096x4096 mat-vec for every type, next to the upstream 4096x14336 ones.
    sed -i 's|^    // Q4_K multi-column mat-vec|    for (ggml_type type_a : all_types) { test_cases.emplace_back(new test_mul_mat(type_a, GGML_TYPE_F32, 4096, 1, 4096, {1, 1}, {1, 1})); }\n    // Q4_K multi-column mat-vec|' "$TBO"
    grep -q '4096, 1, 4096, {1, 1}' "$TBO" || { echo "patch (b) did not apply" >&2; exit 1; }
fi

BUILD="$WORK/build"
if [ ! -x "$BUILD/bin/test-backend-ops" ]; then
    export CFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    export CXXFLAGS="$CFLAGS"
    cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DGGML_OPENMP=ON
    cmake --build "$BUILD" --target test-backend-ops -j "${JOBS:-2}"
fi

# Types we have kernels for; n=1 (mat-vec); k = 4096 or 14336 columns, m = 4096 rows.
TYPES='f32|f16|bf16|q4_0|q4_1|q5_0|q5_1|q8_0|q2_K|q3_K|q4_K|q5_K|q6_K'
for t in "${THREADS[@]}"; do
    echo "== threads=$t"
    GGML_TBO_THREADS=$t "$BUILD/bin/test-backend-ops" perf -o MUL_MAT -b CPU \
        -p "type_a=($TYPES),type_b=f32,m=4096,n=1,k=(4096|14336),bs=\[1,1\],nr=\[1,1\]" 2>&1 \
        | grep -E 'MUL_MAT|threads|CPU' || true
done

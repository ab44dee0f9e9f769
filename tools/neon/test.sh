#!/usr/bin/env bash
# Runs the kernel tests (SIMD vs scalar twin, determinism, accuracy, API) for AArch64 under
# qemu-user emulation, so the NEON tier is exercised on an x86-64 machine. A developer tool,
# not a CI step: emulation checks results, not speed.
#
# Usage: tools/neon/test.sh [extra cargo test args, e.g. -- --nocapture]
# Builds into $CARGO_TARGET_DIR (default: target/neon, apart from the host builds' locks).
set -euo pipefail

cd "$(dirname "$0")/../.."

readonly TARGET=aarch64-unknown-linux-gnu
readonly LINKER=aarch64-linux-gnu-gcc
readonly SYSROOT=/usr/aarch64-linux-gnu
readonly APT_LINE="apt-get install -y qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross"

missing=0
for tool in qemu-aarch64 "$LINKER"; do
    if ! command -v "$tool" >/dev/null; then
        echo "missing: $tool" >&2
        missing=1
    fi
done
if [[ ! -d "$SYSROOT/lib" ]]; then
    echo "missing: the AArch64 C library in $SYSROOT" >&2
    missing=1
fi
if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "missing: the $TARGET standard library (rustup target add $TARGET)" >&2
    missing=1
fi
if [[ $missing -ne 0 ]]; then
    echo "on Debian/Ubuntu, as root: $APT_LINE" >&2
    exit 1
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/neon}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="$LINKER"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $SYSROOT"

cargo test -p apr-engine --target "$TARGET" --release \
    --test kernels_simd --test kernels_determinism --test kernels_accuracy --test kernels_api \
    "$@"

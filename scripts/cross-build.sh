#!/usr/bin/env bash
# Cross-builds the workspace for the Jetson (aarch64-unknown-linux-gnu) on an
# x86_64 Debian or Ubuntu machine: rustup's target for Rust, Debian's
# gcc-aarch64-linux-gnu for the C and C++ parts (bundled SQLite, the TensorRT
# shim) and for linking, and the arm64 kernel headers for the V4L2 bindings.
#
#   scripts/cross-build.sh          release binaries, then their sha256
#   scripts/cross-build.sh --test   the test suite too, run under qemu-aarch64-static
#                                   (but for the slow ones in qemu-slow-tests.txt)
#
# The binaries are packaged builds (EDGESORT_PACKAGED): the CLI's default
# configuration is the box's /etc/edgesort/line/edgesort.toml. The TensorRT shim
# is compiled in when TENSORRT_INCLUDE_DIR (and CUDA_INCLUDE_DIR) name the
# JetPack's headers; without them the binaries run the CPU backend only and
# `edgesort provision` says so.
#
# Reproducible: --locked builds exactly the committed Cargo.lock, and paths of
# this checkout and of cargo's registry are remapped, so two checkouts in
# different folders give the same bytes. Installs what it needs (apt, rustup)
# when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu
run_tests=false
[ "${1:-}" = --test ] && run_tests=true

need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
[ -e "$SYSROOT/include/asm/types.h" ] || need+=(linux-libc-dev-arm64-cross)
[ -e "$SYSROOT/lib/libc.so.6" ] || need+=(libc6-dev-arm64-cross)
$run_tests && ! command -v qemu-aarch64-static >/dev/null && need+=(qemu-user-static)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    echo ">> installing host packages: ${need[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# bindgen (the v4l crate) parses the target's videodev2.h, not the host's.
export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--target=aarch64-linux-gnu --sysroot=$SYSROOT"
# Tests run under user-mode qemu with the cross glibc as their root. The
# guest's ld.so must load the libc of its own build: on a host that also has
# Debian's multiarch libc6:arm64 (the .deb build installs it), the guest reads
# the host's /etc/ld.so.cache and mixes the two, and every thread creation
# spins forever. LD_LIBRARY_PATH=/lib (inside the prefix) comes before the
# cache. Both variables also reach the binaries the tests start through
# binfmt_misc.
export QEMU_LD_PREFIX=$SYSROOT
export QEMU_SET_ENV=LD_LIBRARY_PATH=/lib
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
# Only the target's flags: build scripts and proc macros stay host builds.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="--remap-path-prefix=$PWD=/build/edgesort --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
# Dates in the C parts' objects, if any, come from the commit.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH

EDGESORT_PACKAGED=1 cargo build --locked --release --target "$TARGET" --workspace --bins
echo ">> $TARGET release binaries:"
(cd "target/$TARGET/release" && sha256sum edgesort edgesortd && file edgesort edgesortd)

if $run_tests; then
    # Tests start our own binaries (edgesortd, the CLI, the processes the
    # fault-injection tests kill): the kernel must hand those to qemu too.
    scripts/register-qemu-aarch64.sh
    # Under qemu's CPU emulation the detector takes about 10 s a frame, so
    # the tests that run it over a clip or an image set take hours; they are
    # named, with the reason, in qemu-slow-tests.txt, and run natively in
    # .ci/run. CROSS_TEST_ALL=1 runs them here too.
    slow_list=scripts/qemu-slow-tests.txt
    mapfile -t slow < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$slow_list")
    listed=$(cargo test --quiet --locked --target "$TARGET" --workspace -- --list --include-ignored \
        | sed -n 's/: test$//p')
    for name in "${slow[@]}"; do
        grep -qxF -- "$name" <<<"$listed" || { echo "$slow_list: no test is named $name" >&2; exit 1; }
    done
    skips=()
    if [ "${CROSS_TEST_ALL:-0}" = 1 ]; then
        echo ">> running every test, the ${#slow[@]} slow ones of $slow_list too"
    else
        echo ">> not run under qemu (see $slow_list; CROSS_TEST_ALL=1 runs them): ${#slow[@]} tests"
        printf '     %s\n' "${slow[@]}"
        for name in "${slow[@]}"; do skips+=(--skip "$name"); done
    fi
    cargo test --locked --target "$TARGET" --workspace --no-fail-fast "${@:2}" -- --exact "${skips[@]}"
fi

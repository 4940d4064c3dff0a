#!/bin/bash
# Whether an edgesort binary was built with the TensorRT shim. The shim is
# compiled only when crates/tensorrt-sys/build.rs finds TensorRT's headers;
# without them the crate builds a stub, and `edgesort provision` stops at
# "this build has no TensorRT shim (built without TensorRT headers)".
#
#   scripts/deb/has-tensorrt-shim.sh BINARY
#
# Prints one line and exits 0 (with the shim), 1 (without it) or 2 (cannot
# tell: no such file, or only one of the two marks below).
#
# Any architecture, stripped or not (cargo-deb strips the packaged binaries,
# and the shim's C functions are not exported, so there is no symbol to look
# for): it looks for two strings that only a build with the shim carries,
# one from each side of the shim's C ABI:
#   - "buildSerializedNetwork failed": a message of the C++ shim itself
#     (crates/tensorrt-sys/shim/shim.cpp), in the binary's read-only data;
#   - "createInferBuilder_INTERNAL": the libnvinfer factory the Rust side
#     looks up at run time, in src/shim.rs, a module compiled under
#     cfg(tensorrt_shim) only.
# By hand: `grep -c -a -F 'buildSerializedNetwork failed' BINARY` (0 without
# the shim), or `strings BINARY | grep createInferBuilder_INTERNAL`.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BINARY" >&2; exit 2; }
binary=$1
[ -f "$binary" ] || { echo "$binary: no such file" >&2; exit 2; }

marks=("buildSerializedNetwork failed" "createInferBuilder_INTERNAL")
found=()
for mark in "${marks[@]}"; do
    if LC_ALL=C grep -q -a -F -- "$mark" "$binary"; then
        found+=("$mark")
    fi
done
case ${#found[@]} in
    2) echo "$binary: with the TensorRT shim"; exit 0 ;;
    0) echo "$binary: without the TensorRT shim (built without TensorRT headers)"; exit 1 ;;
    *)
        echo "$binary: cannot tell: it carries \"${found[0]}\" but not the other mark of the TensorRT shim" \
            "(has crates/tensorrt-sys changed? see $0)" >&2
        exit 2
        ;;
esac

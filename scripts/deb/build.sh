#!/bin/bash
# Packages the binaries that scripts/cross-build.sh left in
# target/aarch64-unknown-linux-gnu/release as edgesort_<version>_arm64.deb in
# target/debian/, for stock JetPack 6, and checks it with lintian. Nothing
# is compiled: the package holds exactly the binaries that were tested.
# Installs what is missing (cargo-deb, lintian, the arm64 libc6 metadata).
#
#   scripts/deb/build.sh                      binaries with the TensorRT shim only
#   scripts/deb/build.sh --without-tensorrt   binaries without it only
#
# The binaries must carry the TensorRT shim (cross-built with JetPack's
# TensorRT and CUDA headers: TENSORRT_INCLUDE_DIR, CUDA_INCLUDE_DIR) unless
# --without-tensorrt asks for a package without it; a package from binaries
# without the shim never builds an engine, on any box (docs/deb.md, "With or
# without TensorRT"). scripts/deb/has-tensorrt-shim.sh tells them apart.
set -euo pipefail

tensorrt=with
case "${1:-}" in
    "") ;;
    --without-tensorrt) tensorrt=without ;;
    *) echo "usage: $0 [--without-tensorrt]" >&2; exit 2 ;;
esac
[ $# -le 1 ] || { echo "usage: $0 [--without-tensorrt]" >&2; exit 2; }

cd "$(dirname "$0")/../.."
target=aarch64-unknown-linux-gnu
release=target/$target/release
out=target/debian

for binary in edgesort edgesortd; do
    if [ ! -x "$release/$binary" ]; then
        echo "$release/$binary is missing: run scripts/cross-build.sh first" >&2
        exit 1
    fi
done

# The engine is built by `edgesort provision` (edgesort-provision.service),
# so the CLI is the binary whose shim decides; both come from one build.
probe=0
scripts/deb/has-tensorrt-shim.sh "$release/edgesort" || probe=$?
case "$tensorrt,$probe" in
    with,0) echo ">> with the TensorRT shim: provisioning builds each box's engine" ;;
    without,1) echo ">> without the TensorRT shim, as asked (--without-tensorrt): every box settles on the CPU backend" ;;
    with,1)
        cat >&2 <<EOF
$release/edgesort was built without the TensorRT shim (no TensorRT headers
when it was cross-built). On a JetPack box its provisioning would stop at "this
build has no TensorRT shim", never build an engine, and settle on the CPU
backend (exit 4). Cross-build again with JetPack's headers,
  TENSORRT_INCLUDE_DIR=... CUDA_INCLUDE_DIR=... scripts/cross-build.sh
or package it as it is, by name: $0 --without-tensorrt
EOF
        exit 1
        ;;
    without,0)
        echo "--without-tensorrt, but $release/edgesort carries the TensorRT shim: leave the option out" >&2
        exit 1
        ;;
    *) exit 1 ;;
esac

command -v cargo-deb >/dev/null || nice -n 19 cargo install cargo-deb --version 3.8.0 --locked
missing=()
# cargo-deb strips the binaries with the target's strip, found by its
# Debian triple.
command -v aarch64-linux-gnu-strip >/dev/null || missing+=(binutils-aarch64-linux-gnu)
command -v lintian >/dev/null || missing+=(lintian)
# Depends comes from dpkg-shlibdeps, which takes the oldest libc6 version
# per symbol from libc6:arm64's symbols file: libc6 (>= 2.35). The cross
# toolchain's libc6-arm64-cross has a shlibs file only, whose (>= 2.36)
# would shut out JetPack 6 (glibc 2.35). The same for libstdc++6, which the
# TensorRT shim links when the binaries were built with TensorRT's headers.
arm64_libraries=()
for library in libc6:arm64 libstdc++6:arm64; do
    dpkg-query -W -f '${db:Status-Abbrev}' "$library" 2>/dev/null | grep -q '^ii' || arm64_libraries+=("$library")
done
if [ ${#arm64_libraries[@]} -gt 0 ]; then
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update
    missing+=("${arm64_libraries[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

rm -f "$out"/edgesort_*_arm64.deb
nice -n 19 cargo deb -p edgesort --no-build --target "$target" --output "$out/"
deb=$(echo "$out"/edgesort_*_arm64.deb)
dpkg-deb --field "$deb" Package Version Architecture Depends Installed-Size

# Every tag shown, info included; a warning or an error fails the build.
# The package's overrides say why each overridden tag does not apply.
lintian --info --display-info --fail-on error,warning "$deb"
echo "$deb"

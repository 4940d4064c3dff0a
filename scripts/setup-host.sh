#!/bin/bash
# What a Debian or Ubuntu build machine needs beyond Rust: libclang, with
# which the v4l crate's build generates the V4L2 bindings from the kernel's
# own videodev2.h (so they match the headers of the target being built), and
# those headers (linux-libc-dev: linux/videodev2.h, asm/types.h).
# Idempotent; run as root or through sudo.
#
# No BINDGEN_EXTRA_CLANG_ARGS is needed for the musl target
# (x86_64-unknown-linux-musl, the VM tests' binaries): clang maps it to the
# same multiarch include folder as glibc, /usr/include/x86_64-linux-gnu, where
# asm/types.h lives. Without linux-libc-dev the build fails on
# 'asm/types.h' file not found, for either target.
#
# The API tests render the status page in headless Chromium (Debian's
# chromium; on Ubuntu that package is a snap stub, so point $CHROMIUM at a
# real binary) and need DejaVu, the page's first font, for text and a stable
# layout. Headless needs none of chromium's recommends (mesa, upower, ...).
set -euo pipefail
need=()
ldconfig -p | grep -q 'libclang\(-[0-9.]*\)\?\.so' || need+=(libclang-dev)
[ -e "/usr/include/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)/asm/types.h" ] \
    || need+=(linux-libc-dev)
command -v chromium >/dev/null || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    echo ">> installing host packages: ${need[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi

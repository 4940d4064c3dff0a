#!/bin/bash
# What a Debian or Ubuntu build machine needs beyond Rust: libclang, with
# which the v4l crate's build generates the V4L2 bindings from the kernel's
# own videodev2.h (so they match the headers of the target being built).
# Idempotent; run as root or through sudo.
set -euo pipefail
if ! ldconfig -p | grep -q 'libclang\(-[0-9.]*\)\?\.so'; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends libclang-dev
fi

#!/bin/bash
# Builds one integration test as a static (musl) binary, which runs in the
# VMs' busybox initramfs as it is, and prints its path.
# Usage: scripts/vm/test-binary.sh PACKAGE TEST
set -euo pipefail
PACKAGE=$1 TEST=$2
TARGET=x86_64-unknown-linux-musl
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET" >&2
BINARY=$(cargo test -p "$PACKAGE" --test "$TEST" --target "$TARGET" --no-run \
    --message-format=json 2>/dev/null \
    | sed -n "s/.*\"executable\":\"\([^\"]*\/${TEST}-[^\"]*\)\".*/\1/p" | tail -1)
[ -x "$BINARY" ] || { echo "cannot build $PACKAGE's $TEST test for $TARGET" >&2; exit 1; }
echo "$BINARY"

#!/bin/bash
# The GPIO backend against a real GPIO chip: builds gpio-sim for Debian's 6.12
# kernel (it is not in Debian's build), builds edgesort-gpio's gpio-sim test as
# a static binary, boots the kernel in qemu with a busybox initramfs, creates
# the chip and runs the test there. About 1 min once the kernel packages are
# cached in target/gpio-sim (the first run downloads ~270 MB from Debian).
#
# Usage: scripts/gpio-sim/test.sh
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "$REPO"
"$REPO/scripts/gpio-sim/build-module.sh"
TARGET=x86_64-unknown-linux-musl
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
BINARY=$(cargo test -p edgesort-gpio --test gpio_sim --target "$TARGET" --no-run \
    --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*gpio_sim[^"]*\)".*/\1/p' | tail -1)
[ -x "$BINARY" ] || { echo "cannot build the gpio-sim test" >&2; exit 1; }
TEST_ARGS="--ignored --test-threads 1 --nocapture" \
    "$REPO/scripts/gpio-sim/run-vm.sh" "$BINARY"

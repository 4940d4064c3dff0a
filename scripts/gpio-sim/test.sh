#!/bin/bash
# The GPIO backend against a real GPIO chip: builds gpio-sim for the test VMs'
# Debian 6.12 kernel (Debian does not build it), builds edgesort-gpio's
# gpio-sim tests as static binaries, boots the kernel in qemu (scripts/vm/),
# creates an 8-line chip labelled edgesort-sim through configfs and runs the
# tests there: the backend itself (gpio_sim), and edgesortd wired onto the
# chip's lines, sorting the demo clip (edgesortd_on_gpio_sim). The daemon is
# edgesortd-recorded-detections: edgesortd with its detector replaced by the
# demo clip's recorded detections (the real one takes seconds per frame
# under the VM's CPU emulation). A few minutes once the kernel packages are
# cached in target/vm (the first run downloads ~270 MB from Debian).
#
# Usage: [EDGESORTD_RECORDED_BIN=target/debug/edgesortd-recorded-detections] \
#            scripts/gpio-sim/test.sh
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "$REPO"
MODULE=$(scripts/gpio-sim/build-module.sh | tail -1)
source scripts/vm/kernel.sh
vm_extract_modules "$VM_WORK/modules-configfs" configfs

BINARY=$(scripts/vm/test-binary.sh edgesort-gpio gpio_sim)
LINE_TEST=$(scripts/vm/test-binary.sh edgesort-gpio edgesortd_on_gpio_sim)

# `cargo test --workspace` has built it (edgesortd's tests build every binary
# of the package); build it here when run alone.
if [ -z "${EDGESORTD_RECORDED_BIN:-}" ]; then
    cargo build -q -p edgesortd --bin edgesortd-recorded-detections
    EDGESORTD_RECORDED_BIN=target/debug/edgesortd-recorded-detections
fi

ADD=$(mktemp -d)
SETUP=$(mktemp)
TOOLS=$(mktemp -d)
trap 'rm -rf "$ADD" "$SETUP" "$TOOLS"' EXIT
mkdir -p "$ADD/lib" "$ADD/line"
cp "$MODULE" "$ADD/lib/gpio-sim-oot.ko"
# The daemon's clip (with its recorded detections) and configuration.
cp -r tests/data/demo_clip "$ADD/line/demo_clip"
cp board/edgesort.toml "$ADD/line/edgesort.toml"
# Stripped: the debug build is several hundred MB.
strip -o "$TOOLS/edgesortd-recorded-detections" "$EDGESORTD_RECORDED_BIN"
cat > "$SETUP" <<'FRAGMENT'
modprobe configfs || fail "modprobe configfs"
insmod /lib/gpio-sim-oot.ko || fail "insmod gpio-sim-oot"
mount -t configfs none /sys/kernel/config || fail "mount configfs"
C=/sys/kernel/config/gpio-sim/edgesort
mkdir $C && mkdir $C/bank0 || fail "configfs mkdir"
echo 8 > $C/bank0/num_lines
echo edgesort-sim > $C/bank0/label
echo 1 > $C/live || fail "live"
DEV=$(cat $C/dev_name); CHIP=$(cat $C/bank0/chip_name)
SYS=/sys/devices/platform/$DEV/$CHIP
echo "== gpio-sim device $DEV, chip /dev/$CHIP"
[ -c /dev/$CHIP ] || fail "/dev/$CHIP missing"
grep -q "edgesort-sim" /sys/kernel/debug/gpio || fail "label not in /sys/kernel/debug/gpio"
# The simulator's own pull switch moves the line the tests read.
echo pull-up > $SYS/sim_gpio0/pull;   v1=$(cat $SYS/sim_gpio0/value)
echo pull-down > $SYS/sim_gpio0/pull; v0=$(cat $SYS/sim_gpio0/value)
echo "== line 0: pull-up reads $v1, pull-down reads $v0"
[ "$v1$v0" = "10" ] || fail "pull does not move line 0"
echo pull-up > $SYS/sim_gpio3/pull
export GPIO_SIM_CHIP=/dev/$CHIP GPIO_SIM_SYSFS=$SYS GPIO_SIM_LABEL=edgesort-sim GPIO_SIM_LINES=8
export GPIO_TEST_OFFSET=3 GPIO_TEST_EXPECT=1
# The daemon's API listens on the loopback.
ip link set lo up || fail "loopback"
export EDGESORTD_BIN=/bin/edgesortd-recorded-detections LINE_DIR=/line
FRAGMENT
TEST_ARGS="--ignored --test-threads 1 --nocapture" MEMORY=1G QEMU_TIMEOUT=${QEMU_TIMEOUT:-300} \
    scripts/vm/run.sh --name gpio-sim --setup "$SETUP" --modules "$VM_WORK/modules-configfs" \
    --add "$ADD" --tool "$TOOLS/edgesortd-recorded-detections" "$BINARY" "$LINE_TEST"

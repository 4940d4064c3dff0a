#!/bin/bash
# The GPIO backend against a real GPIO chip: builds gpio-sim for the test VMs'
# Debian 6.12 kernel (Debian does not build it), builds edgesort-gpio's
# gpio-sim test as a static binary, boots the kernel in qemu (scripts/vm/),
# creates an 8-line chip labelled edgesort-sim through configfs and runs the
# test there. About 1 min once the kernel packages are cached in target/vm
# (the first run downloads ~270 MB from Debian).
#
# Usage: scripts/gpio-sim/test.sh
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "$REPO"
MODULE=$(scripts/gpio-sim/build-module.sh | tail -1)
source scripts/vm/kernel.sh
vm_extract_modules "$VM_WORK/modules-configfs" configfs

BINARY=$(scripts/vm/test-binary.sh edgesort-gpio gpio_sim)

ADD=$(mktemp -d)
SETUP=$(mktemp)
trap 'rm -rf "$ADD" "$SETUP"' EXIT
mkdir -p "$ADD/lib"
cp "$MODULE" "$ADD/lib/gpio-sim-oot.ko"
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
FRAGMENT
TEST_ARGS="--ignored --test-threads 1 --nocapture" \
    scripts/vm/run.sh --name gpio-sim --setup "$SETUP" --modules "$VM_WORK/modules-configfs" \
    --add "$ADD" "$BINARY"

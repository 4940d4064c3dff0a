#!/bin/bash
# Boot Debian's 6.12 kernel in qemu with a busybox initramfs, load configfs + gpio-sim-oot,
# create a gpio-sim chip "edgesort-sim" (8 lines), test it, run extra test binaries, power off.
#
# Usage: ./run-vm.sh [TEST_BINARY...]
#   Each TEST_BINARY is copied to /test/ in the initramfs and run as
#       /test/NAME $TEST_ARGS
#   with env GPIO_SIM_CHIP=/dev/gpiochipN GPIO_SIM_SYSFS=/sys/devices/platform/gpio-sim.0/gpiochipN
#   GPIO_SIM_LABEL=edgesort-sim GPIO_SIM_LINES=8 GPIO_TEST_OFFSET=3 GPIO_TEST_EXPECT=1
#   (line 3 is pulled up before the tests run). A non-zero exit of any test => FAIL.
#   Dynamically linked binaries get their shared libs (per host ldd) copied in too.
# Env: ACCEL=tcg|kvm (default tcg), CPU=qemu -cpu model, QEMU_TIMEOUT=seconds (120)
# Exit status: 0 if the console shows "GPIO-SIM-TEST: PASS", 1 otherwise.
set -euo pipefail
# Work folder (downloads, unpacked kernel, module, initramfs): ignored by git.
SIM_WORK=${GPIO_SIM_WORK:-$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)/target/gpio-sim}
mkdir -p "$SIM_WORK" && cd "$SIM_WORK"
TOP=$PWD
KREL=$(cat kernel-release)                       # written by build-module.sh
VMLINUZ=root/boot/vmlinuz-$KREL
CONFIGFS=$(find root/lib/modules/$KREL -name 'configfs.ko*' | head -1)
MOD=module/gpio-sim-oot.ko
for f in "$VMLINUZ" "$CONFIGFS" "$MOD" /bin/busybox; do
    [ -e "$f" ] || { echo "missing $f (run ./build-module.sh)" >&2; exit 1; }
done

WORK=$TOP/initramfs
rm -rf "$WORK"; mkdir -p "$WORK"/{bin,sbin,dev,proc,sys,tmp,test,lib/modules}
cp /bin/busybox "$WORK/bin/busybox"            # busybox-static
case "$CONFIGFS" in
    *.xz) xz -dc "$CONFIGFS" > "$WORK/lib/modules/configfs.ko" ;;   # busybox insmod: plain .ko
    *)    cp "$CONFIGFS" "$WORK/lib/modules/configfs.ko" ;;
esac
cp "$MOD" "$WORK/lib/modules/"

# extra test binaries (+ shared libs for dynamic ones)
for t in "$@"; do
    cp "$t" "$WORK/test/"
    # static (musl / static-pie) binaries: ldd prints "statically linked" / "not a dynamic executable"
    libs=$(ldd "$t" 2>/dev/null | grep -oE '/[^ ]+' || true)
    if [ -n "$libs" ]; then
        echo "$libs" | while read -r lib; do
            mkdir -p "$WORK$(dirname "$lib")"
            cp -L "$lib" "$WORK$lib"
        done
    fi
done

cat > "$WORK/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
fail() { echo "GPIO-SIM-TEST: FAIL: $*"; poweroff -f; }
echo "== uname: $(uname -r)"
insmod /lib/modules/configfs.ko || fail "insmod configfs"
insmod /lib/modules/gpio-sim-oot.ko || fail "insmod gpio-sim-oot"
mount -t configfs none /sys/kernel/config || fail "mount configfs"
grep -q ' /sys/kernel/config ' /proc/mounts || fail "configfs not mounted"
C=/sys/kernel/config/gpio-sim/edgesort
mkdir $C && mkdir $C/bank0 || fail "configfs mkdir"
echo 8 > $C/bank0/num_lines
echo edgesort-sim > $C/bank0/label
echo 1 > $C/live || fail "live"
DEV=$(cat $C/dev_name); CHIP=$(cat $C/bank0/chip_name)
SYS=/sys/devices/platform/$DEV/$CHIP
echo "== gpio-sim device $DEV, chip $CHIP"
echo "== gpiodetect (from sysfs):"
for d in /sys/bus/gpio/devices/gpiochip*; do
    n=$(basename $d)
    # legacy sysfs (CONFIG_GPIO_SYSFS=y) puts gpiochipBASE/{label,base,ngpio} under the *parent*
    # device (/sys/devices/platform/gpio-sim.0/gpio/gpiochip512); fine with one bank per device
    g=$(ls -d $(readlink -f $d)/../gpio/gpiochip* 2>/dev/null | head -1)
    lbl="?"; [ -n "$g" ] && lbl="$(cat $g/label) base=$(cat $g/base) ngpio=$(cat $g/ngpio)"
    echo "   /dev/$n  [$lbl]  $(ls -l /dev/$n | awk '{print $1,$5,$6}')"
done
echo "== /sys/class/gpio:"; ls -l /sys/class/gpio | sed -n "s/.*\(gpiochip[0-9]* -> .*\)/   \1/p"
echo "== /sys/kernel/debug/gpio:"; cat /sys/kernel/debug/gpio
[ -c /dev/$CHIP ] || fail "/dev/$CHIP missing"
grep -q "edgesort-sim" /sys/kernel/debug/gpio || fail "label not found"
echo "== flip line 0 pull"
ok=1
echo pull-up > $SYS/sim_gpio0/pull;   v1=$(cat $SYS/sim_gpio0/value)
echo pull-down > $SYS/sim_gpio0/pull; v0=$(cat $SYS/sim_gpio0/value)
echo pull-up > $SYS/sim_gpio0/pull;   v2=$(cat $SYS/sim_gpio0/value)
echo "   pull-up -> $v1, pull-down -> $v0, pull-up -> $v2"
[ "$v1$v0$v2" = "101" ] || ok=0
echo pull-up > $SYS/sim_gpio3/pull
for t in /test/*; do
    [ -x "$t" ] || continue
    echo "== running $t /dev/$CHIP"
    GPIO_SIM_CHIP=/dev/$CHIP GPIO_SIM_SYSFS=$SYS GPIO_SIM_LABEL=edgesort-sim GPIO_SIM_LINES=8 \
    GPIO_TEST_OFFSET=3 GPIO_TEST_EXPECT=1 "$t" TEST_ARGS_HERE
    rc=$?; echo "   exit $rc"; [ $rc -eq 0 ] || ok=0
done
if [ $ok = 1 ]; then echo "GPIO-SIM-TEST: PASS"; else echo "GPIO-SIM-TEST: FAIL"; fi
poweroff -f
EOF
sed -i "s|TEST_ARGS_HERE|${TEST_ARGS:-}|" "$WORK/init"
chmod +x "$WORK/init"
(cd "$WORK" && find . | cpio -o -H newc --quiet | gzip -1) > initramfs.cpio.gz

ACCEL=${ACCEL:-}
if [ -z "$ACCEL" ]; then
    ACCEL=tcg   # KVM on this (nested) host fails: see report; opt in with ACCEL=kvm
fi
# qemu's default qemu64 CPU under KVM died with "KVM internal error ... emulation failure" on a BMI2
# instruction in the kernel decompressor, so use the host CPU model (kvm) / "max" (tcg).
if [ "$ACCEL" = kvm ]; then CPU=${CPU:-host}; else CPU=${CPU:-max}; fi
LOG=$TOP/vm-console.log
echo ">> booting $KREL with accel=$ACCEL cpu=$CPU (log: $LOG)"
start=$(date +%s.%N)
timeout "${QEMU_TIMEOUT:-120}" qemu-system-x86_64 -accel "$ACCEL" -cpu "$CPU" -m 512M -smp 1 \
    -kernel "$VMLINUZ" -initrd initramfs.cpio.gz \
    -append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init" \
    -nographic -no-reboot -nodefaults -serial stdio -monitor none < /dev/null | tee "$LOG" || true
end=$(date +%s.%N)
printf '>> VM boot-to-poweroff: %.1f s\n' "$(echo "$end - $start" | bc)"
grep -q 'GPIO-SIM-TEST: PASS' "$LOG"

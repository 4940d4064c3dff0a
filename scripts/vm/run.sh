#!/bin/bash
# Boot the shared Debian kernel (scripts/vm/kernel.sh) in qemu with a busybox
# initramfs, run a setup fragment, then each test binary, and power off.
#
# Usage: scripts/vm/run.sh --name NAME --setup FILE [--modules DIR] [--add DIR]
#                          [--tool FILE]... [BINARY...]
#   --setup FILE  shell code the VM's init sources after mounting /proc, /sys,
#                 /dev, debugfs and running depmod: it loads drivers and exports
#                 what the tests need; `fail REASON` ends the run as failed
#   --modules DIR a tree with lib/modules/$KREL/... (vm_extract_modules)
#   --add DIR     more files, copied over the initramfs root
#   --tool FILE   a program for the setup fragment, installed in /bin
#   BINARY        copied to /test and run as `/test/NAME $TEST_ARGS`; dynamically
#                 linked ones get their shared libraries (per the host's ldd)
# Env: TEST_ARGS, ACCEL=tcg|kvm (tcg: KVM is present here but fails),
#      CPU (qemu -cpu), MEMORY (default 512M), QEMU_TIMEOUT seconds (default 180)
# Exit status 0 when the console shows "VM-TEST NAME: PASS".
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source=kernel.sh
source "$HERE/kernel.sh"

NAME= SETUP= MODULES= ADD= TOOLS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --name) NAME=$2; shift 2 ;;
        --setup) SETUP=$2; shift 2 ;;
        --modules) MODULES=$2; shift 2 ;;
        --add) ADD=$2; shift 2 ;;
        --tool) TOOLS+=("$2"); shift 2 ;;
        --) shift; break ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ -n "$NAME" ] && [ -r "$SETUP" ] || { echo "usage: $0 --name NAME --setup FILE [...] [BINARY...]" >&2; exit 2; }

ROOT=$VM_WORK/initramfs-$NAME
rm -rf "$ROOT"; mkdir -p "$ROOT"/{bin,sbin,dev,proc,sys,tmp,test,etc,lib/modules}
cp /bin/busybox "$ROOT/bin/busybox"            # busybox-static
[ -z "$MODULES" ] || cp -a "$MODULES/lib/." "$ROOT/lib/"
[ -z "$ADD" ] || cp -a "$ADD/." "$ROOT/"
cp "$SETUP" "$ROOT/setup.sh"
# A binary and, when it is dynamically linked, the libraries the host's ldd names.
install_binary() {
    cp "$1" "$2"
    local lib
    for lib in $(ldd "$1" 2>/dev/null | grep -oE '/[^ ]+' || true); do
        mkdir -p "$ROOT$(dirname "$lib")"
        cp -L "$lib" "$ROOT$lib"
    done
}
for t in "${TOOLS[@]}"; do install_binary "$t" "$ROOT/bin/"; done
for t in "$@"; do install_binary "$t" "$ROOT/test/"; done

cat > "$ROOT/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
fail() { echo "VM-TEST $NAME: FAIL: \$*"; poweroff -f; }
echo "== uname: \$(uname -r)"
[ -d /lib/modules/\$(uname -r) ] && depmod
. /setup.sh
ok=1
for t in /test/*; do
    [ -x "\$t" ] || continue
    echo "== running \$t"
    "\$t" ${TEST_ARGS:-}
    rc=\$?; echo "   exit \$rc"; [ \$rc -eq 0 ] || ok=0
done
if [ \$ok = 1 ]; then echo "VM-TEST $NAME: PASS"; else echo "VM-TEST $NAME: FAIL"; fi
poweroff -f
INIT
chmod +x "$ROOT/init"
(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1) > "$VM_WORK/initramfs-$NAME.cpio.gz"
rm -rf "$ROOT"

ACCEL=${ACCEL:-tcg}
# qemu's default CPU under KVM died on a BMI2 instruction in the kernel's
# decompressor, so use the host's model (kvm) or "max" (tcg).
if [ "$ACCEL" = kvm ]; then CPU=${CPU:-host}; else CPU=${CPU:-max}; fi
LOG=$VM_WORK/console-$NAME.log
echo ">> booting $KREL (accel $ACCEL, cpu $CPU), console in $LOG"
start=$(date +%s.%N)
timeout "${QEMU_TIMEOUT:-180}" qemu-system-x86_64 -accel "$ACCEL" -cpu "$CPU" -m "${MEMORY:-512M}" \
    -smp 1 -kernel "$VMLINUZ" -initrd "$VM_WORK/initramfs-$NAME.cpio.gz" \
    -append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init" \
    -nographic -no-reboot -nodefaults -serial stdio -monitor none < /dev/null | tee "$LOG" || true
end=$(date +%s.%N)
printf '>> VM boot to power-off: %.1f s\n' "$(echo "$end - $start" | bc)"
grep -q "VM-TEST $NAME: PASS" "$LOG"

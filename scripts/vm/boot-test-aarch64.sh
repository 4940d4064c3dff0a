#!/bin/bash
# The first-boot flow of the .deb on an arm64 Debian box with systemd, booted
# four times under qemu-system-aarch64 (TCG) with Debian's arm64 6.12 kernel:
#
#   1. first boot: edgesort-provision.service runs once, reports no GPU, no
#      TensorRT and the CPU backend, exits 4 (a success for the unit), and
#      stamps the data disk (provision/cpu-backend.json); `ota recover`
#      makes slot a
#   2. the daemon is active (READY) and /status shows frames of the replay
#      clip processed, no stage down, no stage restarted
#   3. second boot: provisioning ends at the stamp ("nothing to do"): the
#      stamp, the status record and the slot state are left as they were,
#      and no engine or calibration is written
#   4. the stamp removed from the data disk, then the model changed (a
#      byte-different copy): provisioning runs again each time, the second
#      time under a new key, and the line serves the new model
#
# The rootfs (mmdebstrap, Debian bookworm arm64, systemd) is cached in
# target/vm/aarch64; the package is installed into a fresh copy of it with dpkg
# under qemu-user, as on a stock JetPack box. The data partition is a disk of
# its own (LABEL=edgesort-data on /var/lib/edgesort), read from the host with
# debugfs after each power-off. The guest's edgesort-vm-check.service waits for
# the line, prints what the checks read (lines "VMCHECK ...") and powers off.
#
# Usage: [DEB=path/to/edgesort_*_arm64.deb] scripts/vm/boot-test-aarch64.sh
# Env: CPU (qemu -cpu, default cortex-a57), MIN_FRAMES (default 2),
#      BOOT_TIMEOUT seconds per boot (default 1200)
# Exit status 0 when every check prints PASS. Root, binfmt_misc and ~2 GB of
# free disk; the first run downloads ~250 MB from deb.debian.org.
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "$REPO"
test_start=$(date +%s)
export VM_ARCH=arm64
# shellcheck source=scripts/vm/kernel.sh
source scripts/vm/kernel.sh
WORK=$VM_WORK/aarch64
mkdir -p "$WORK"

# --- the package -------------------------------------------------------------------------
if [ -z "${DEB:-}" ]; then
    DEB=$(find target -name 'edgesort_*_arm64.deb' -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)
fi
if [ -z "$DEB" ] || [ ! -r "$DEB" ]; then
    echo "no edgesort_*_arm64.deb under target/ (scripts/deb/build.sh makes it); DEB= names one" >&2
    exit 2
fi
dpkg-deb --info "$DEB" >/dev/null || { echo "$DEB is not a whole .deb (being rebuilt?)" >&2; exit 2; }
echo ">> package $DEB"

# --- host tools ----------------------------------------------------------------------------
need=()
for p in mmdebstrap arch-test e2fsprogs jq; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
[ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get "${APT[@]}" install -y -q --no-install-recommends "${need[@]}"
# mmdebstrap and dpkg's maintainer scripts run arm64 programs in a chroot.
scripts/register-qemu-aarch64.sh

# --- initramfs: just enough to mount the root disk ------------------------------------------
# Debian's arm64 kernel has virtio-blk and ext4 as modules. Three modules and
# a static busybox are ~2 MB and take no time; linux-image-arm64 with
# initramfs-tools in the rootfs would add ~400 MB and an update-initramfs run
# under qemu-user to every cold build.
vm_extract_modules "$VM_WORK/modules-arm64-boot" virtio_blk ext4 crc32c_generic
busybox_deb() { find "$VM_WORK/cache" -name 'busybox-static_*_arm64.deb' | sort | tail -1; }
[ -n "$(busybox_deb)" ] || (cd "$VM_WORK/cache" && apt-get "${APT_VM[@]}" download busybox-static)
BUSYBOX_DEB=$(busybox_deb)
INITRD=$WORK/initrd.cpio.gz
scratch=$(mktemp -d -p "$WORK")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/initrd"/{bin,dev,proc,sys,newroot}
dpkg-deb --fsys-tarfile "$BUSYBOX_DEB" | tar -xO ./bin/busybox > "$scratch/initrd/bin/busybox"
chmod 755 "$scratch/initrd/bin/busybox"
cp -a "$VM_WORK/modules-arm64-boot/lib" "$scratch/initrd/"
cat > "$scratch/initrd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
depmod
# ext4 asks the crypto API for crc32c, which would need a usermode helper.
modprobe crc32c_generic && modprobe ext4 && modprobe virtio_blk || echo "initrd: modprobe failed"
for _ in $(seq 50); do [ -b /dev/vda ] && break; sleep 0.1; done
mount -t ext4 -o rw /dev/vda /newroot || { echo "initrd: cannot mount /dev/vda"; poweroff -f; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
INIT
chmod 755 "$scratch/initrd/init"
(cd "$scratch/initrd" && find . | cpio -o -H newc --quiet | gzip -1) > "$INITRD"

# --- rootfs ----------------------------------------------------------------------------------
# Debian bookworm with systemd, the package's dependencies (adduser, udev)
# and kmod for the modprobe@ units edgesortd.service wants; no docs, man
# pages or locales. Rebuilt when this list changes.
ROOTFS_PACKAGES=systemd,systemd-sysv,udev,kmod,adduser
BASE=$WORK/rootfs-bookworm-$(echo "$ROOTFS_PACKAGES" | sha256sum | cut -c1-12).tar
if [ ! -e "$BASE" ]; then
    echo ">> building the arm64 rootfs (mmdebstrap, a few minutes)"
    rm -f "$WORK"/rootfs-bookworm-*.tar
    nice -n 19 mmdebstrap --mode=root --format=tar --variant=apt --architectures=arm64 \
        --include="$ROOTFS_PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        bookworm "$BASE.partial" http://deb.debian.org/debian
    mv "$BASE.partial" "$BASE"
fi

ROOT=$scratch/root
mkdir "$ROOT"
tar -xf "$BASE" -C "$ROOT"
echo ">> dpkg -i $(basename "$DEB") (arm64 maintainer scripts under qemu-user)"
cp "$DEB" "$ROOT/tmp/edgesort.deb"
# The postinst runs systemd-tmpfiles, which needs /proc, as on a box.
mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc"; rm -rf "$scratch"' EXIT
nice -n 19 chroot "$ROOT" dpkg -i /tmp/edgesort.deb
umount "$ROOT/proc"
trap 'rm -rf "$scratch"' EXIT
rm "$ROOT/tmp/edgesort.deb"
for unit in edgesort-provision.service edgesortd.service; do
    [ -L "$ROOT/etc/systemd/system/multi-user.target.wants/$unit" ] || { echo "the package did not enable $unit" >&2; exit 1; }
done

# The box's configuration from the package with the camera replaced: no
# camera in the VM, so a few frames of the demo clip replay as one at 4 fps
# (a TCG guest needs ~27 s per inference; the latest-frame policy drops the
# rest). $1: the model, or empty for the package's (the committed update
# slot's).
vm_config() {
    awk -v model="$1" '
        /^\[/ { section = $0; skip = (section == "[camera]" || section == "[camera.controls]") }
        section == "[camera]" && $0 == "[camera]" {
            print "[camera]"
            print "replay = \"/usr/share/edgesort/vm/clip\""
            print "replay_loop = true"
            print "fps = 4.0"
            print "width = 640"
            print "height = 360"
            print "formats = [\"YUYV\", \"NV12\", \"MJPG\"]"
            print "buffers = 4"
            print "stall_ms = 1000"
            print ""
        }
        skip { next }
        section == "[model]" && model != "" && /^path = / { print "path = \"" model "\""; next }
        { print }
    ' "$ROOT/etc/edgesort/line/edgesort.toml.box"
}
mv "$ROOT/etc/edgesort/line/edgesort.toml" "$ROOT/etc/edgesort/line/edgesort.toml.box"
vm_config "" > "$ROOT/etc/edgesort/line/edgesort.toml"
MODEL2=/usr/share/edgesort/vm/model-resaved.onnx
vm_config "$MODEL2" > "$scratch/edgesort-model2.toml"
if ! grep -q '^replay = ' "$ROOT/etc/edgesort/line/edgesort.toml" || ! grep -q "^path = \"$MODEL2\"" "$scratch/edgesort-model2.toml"; then
    echo "the package's edgesort.toml has no [camera] or [model] path to replace" >&2
    exit 1
fi

mkdir -p "$ROOT/usr/share/edgesort/vm/clip/frames"
cp tests/data/demo_clip/frames/00000[0-7].jpg "$ROOT/usr/share/edgesort/vm/clip/frames/"
# The same network with a doc_string appended (ModelProto field 6): a valid
# ONNX model whose bytes, and so whose sha256 and engine key, differ.
factory_model=$(find "$ROOT/usr/share/edgesort/factory/model" -name '*.onnx' | head -1)
{ cat "$factory_model"; printf '\x32\x0cvm-boot-test'; } > "$ROOT$MODEL2"
MODEL2_SHA=$(sha256sum "$ROOT$MODEL2" | cut -c1-64)

# No GPIO chip in the VM: simulated outputs, as on a PC.
mkdir -p "$ROOT/etc/systemd/system/edgesortd.service.d"
cat > "$ROOT/etc/systemd/system/edgesortd.service.d/vm.conf" <<'DROPIN'
[Service]
ExecStart=
ExecStart=/usr/bin/edgesortd --config /etc/edgesort/line/edgesort.toml --simulate-gpio
DROPIN
# The data partition; fsck.ext4 is not in the rootfs.
echo 'LABEL=edgesort-data /var/lib/edgesort ext4 defaults 0 0' >> "$ROOT/etc/fstab"

cat > "$ROOT/usr/local/sbin/edgesort-vm-check" <<'CHECK'
#!/bin/bash
# Waits until edgesortd has processed frames, prints what the host checks, and
# powers off. Every line the host reads starts with VMCHECK.
set -uo pipefail
say() { printf 'VMCHECK %s\n' "$*"; }
min_frames=$(sed -n 's/.*edgesort.vm_frames=\([0-9]*\).*/\1/p' /proc/cmdline)
config=/etc/edgesort/line/edgesort.toml
status=
for _ in $(seq 180); do
    if [ "$(systemctl show -P ActiveState edgesortd.service)" = active ]; then
        status=$(edgesort status --json --config "$config" 2>/dev/null | tr -d '\n')
        processed=$(grep -o '"frames": *{[^}]*}' <<<"$status" | grep -o '"processed": *[0-9]*' | grep -o '[0-9]*$')
        [ "${processed:-0}" -ge "${min_frames:-1}" ] && break
    fi
    sleep 5
done
# systemd's "Starting ..." message for a job (SD_MESSAGE_UNIT_STARTING).
say provision-starts "$(journalctl -b -u edgesort-provision.service -o export \
    | grep -c '^MESSAGE_ID=7d4958e842da4a758f6c1cdc7b36dcc5$')"
journalctl -b -u edgesort-provision.service -o cat | sed 's/^/VMCHECK provision-log /'
systemctl show edgesort-provision.service -p Result -p ExecMainStatus -p ActiveState \
    -p ExecMainStartTimestampMonotonic -p ExecMainExitTimestampMonotonic | sed 's/^/VMCHECK provision-unit /'
systemctl show edgesortd.service -p ActiveState -p SubState -p NRestarts -p Result | sed 's/^/VMCHECK edgesortd-unit /'
say data-mount "$(findmnt -n -o SOURCE,FSTYPE /var/lib/edgesort)"
say status-json "$status"
journalctl -b -u edgesortd.service -o cat | tail -n 20 | sed 's/^/VMCHECK edgesortd-log /'
say done
systemctl --no-block poweroff
CHECK
chmod 755 "$ROOT/usr/local/sbin/edgesort-vm-check"
cat > "$ROOT/etc/systemd/system/edgesort-vm-check.service" <<'UNIT'
[Unit]
Description=edgesort VM boot test: report to the console and power off
After=edgesortd.service edgesort-provision.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/edgesort-vm-check
StandardOutput=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
ln -s /etc/systemd/system/edgesort-vm-check.service "$ROOT/etc/systemd/system/multi-user.target.wants/"
# A login prompt on the console would interleave with the report.
ln -sf /dev/null "$ROOT/etc/systemd/system/serial-getty@ttyAMA0.service"

ROOT_IMG=$WORK/root.img DATA_IMG=$WORK/data.img
rm -f "$ROOT_IMG" "$DATA_IMG"
mkfs.ext4 -q -F -L rootfs -d "$ROOT" "$ROOT_IMG" "$(( $(du -sm "$ROOT" | cut -f1) + 300 ))M"
# Sparse; under 512 MiB free the daemon raises disk_low.
mkfs.ext4 -q -F -L edgesort-data "$DATA_IMG" 1G
rm -rf "$ROOT"
trap 'rm -rf "$scratch" "$ROOT_IMG" "$DATA_IMG"' EXIT
echo ">> rootfs and data disk ready after $(( $(date +%s) - test_start )) s"

# --- boots -----------------------------------------------------------------------------------
# cortex-a57 measured a little faster than max,pauth-impdef=on (inference
# 22-24 s against 27 s; 6 min 58 s against 7 min 8 s for the four boots), and
# like the Orin's A78AE it has no SVE for tract to pick.
CPU=${CPU:-cortex-a57}
boot() { # NAME: boots once, the console in $WORK/console-NAME.log
    local log=$WORK/console-$1.log start
    start=$(date +%s)
    echo ">> boot $1 (cpu $CPU, console in $log)"
    timeout "${BOOT_TIMEOUT:-1200}" nice -n 19 "$QEMU" -M virt -accel tcg,thread=multi -cpu "$CPU" -smp 2 -m 2048 \
        -kernel "$VMLINUZ" -initrd "$INITRD" \
        -append "console=ttyAMA0 panic=-1 loglevel=4 rdinit=/init edgesort.vm_frames=${MIN_FRAMES:-2}" \
        -drive if=none,id=root,format=raw,file="$ROOT_IMG" -device virtio-blk-pci,drive=root \
        -drive if=none,id=data,format=raw,file="$DATA_IMG" -device virtio-blk-pci,drive=data \
        -nographic -no-reboot -nodefaults -serial stdio -monitor none < /dev/null > "$log" || true
    echo ">> boot $1: $(( $(date +%s) - start )) s to power-off"
    grep -q 'VMCHECK done' "$log" || { echo "boot $1 did not finish its report; the console's tail:" >&2; tail -n 40 "$log" >&2; }
}
# The report's value for KEY, from boot NAME's console.
# journald prefixes the console copy with the time and the unit.
report() { sed -n "s/^.*edgesort-vm-check\[[0-9]*\]: VMCHECK $2 //p" "$WORK/console-$1.log" | tr -d '\r'; }
unit() { report "$1" "$2-unit" | sed -n "s/^$3=//p"; }
status_json() { report "$1" status-json | jq -c . 2>/dev/null || echo '{}'; }
data_file() { debugfs -R "cat $1" "$DATA_IMG" 2>/dev/null; }
data_has() { debugfs -R "stat $1" "$DATA_IMG" 2>&1 | grep -q '^Inode:'; }

failed=0
check() { # NAME DESCRIPTION EVIDENCE STATUS
    if [ "$4" = 0 ]; then echo "PASS $1: $2 [$3]"; else echo "FAIL $1: $2 [$3]"; failed=1; fi
}
# Provisioning ran once in boot $1 and the unit counted its exit 4 (no
# engine in service) as success; $2 is what its plan had to say: "settles"
# (no GPU, no TensorRT: the CPU backend, stamped) or "ends at the stamp".
provisioned_once() {
    local log; log=$(report "$1" provision-log)
    [ "$(report "$1" provision-starts)" = 1 ] &&
        grep -q '^  GPU:       none' <<<"$log" && grep -q '^  TensorRT:  absent' <<<"$log" &&
        [ "$(unit "$1" provision ExecMainStatus)" = 4 ] && [ "$(unit "$1" provision Result)" = success ] &&
        case $2 in
            settles) grep -q '^  1. stop: no GPU' <<<"$log" &&
                grep -q 'the line runs on the CPU backend (tract)' <<<"$log" &&
                grep -q '^  2. stamp key [0-9a-f]* as settled on the CPU backend' <<<"$log" ;;
            ends-at-stamp) grep -q '^  1. nothing to do: settled on the CPU backend (tract) at ' <<<"$log" ;;
        esac
}
provision_evidence() {
    local log; log=$(report "$1" provision-log)
    printf 'starts=%s exit=%s result=%s took=%ss; "%s"; "%s"' \
        "$(report "$1" provision-starts)" "$(unit "$1" provision ExecMainStatus)" "$(unit "$1" provision Result)" \
        "$(( ($(unit "$1" provision ExecMainExitTimestampMonotonic) - $(unit "$1" provision ExecMainStartTimestampMonotonic)) / 1000000 ))" \
        "$(grep -m1 '^  GPU:' <<<"$log" | sed 's/  */ /g; s/^ //' | cut -c1-40)..., $(grep -m1 '^  TensorRT:' <<<"$log" | sed 's/  */ /g; s/^ //' | cut -c1-30)..." \
        "$(grep -m1 '^  1\. ' <<<"$log" | sed 's/^ *//' | cut -c1-90)"
}
# The daemon of boot $1 is up under systemd and has processed frames, every
# stage running and none restarted.
line_healthy() {
    [ "$(unit "$1" edgesortd ActiveState)" = active ] && [ "$(unit "$1" edgesortd NRestarts)" = 0 ] &&
        status_json "$1" | jq -e --argjson min "${MIN_FRAMES:-2}" '.frames.processed >= $min
            and ([.stages[] | select(.state != "running" or .restarts > 0)] | length == 0)
            and ([.alarms[] | select(.kind == "stage_down")] | length == 0)' >/dev/null
}
line_evidence() {
    local s; s=$(status_json "$1")
    printf 'edgesortd %s/%s restarts=%s; /status: state=%s frames.processed=%s stages=%s alarms=%s backend=%s model=%s' \
        "$(unit "$1" edgesortd ActiveState)" "$(unit "$1" edgesortd SubState)" "$(unit "$1" edgesortd NRestarts)" \
        "$(jq -r .state <<<"$s")" "$(jq -r .frames.processed <<<"$s")" \
        "$(jq -r '[.stages[] | "\(.name):\(.state)/\(.restarts)"] | join(",")' <<<"$s")" \
        "$(jq -r '[.alarms[].kind] | join(",")' <<<"$s")" \
        "$(jq -r .engine.backend <<<"$s")" "$(jq -r '.engine.model_sha256 // "-" | .[0:16]' <<<"$s")"
}
# provision/status.json, the record `edgesort provision` keeps on the data disk.
record() { data_file /provision/status.json | jq -c '{state, detail: .detail[0:40], history: (.history | length)}'; }
record_is() { [ "$(record | jq -r .state)" = blocked ] && [ "$(record | jq -r .history)" = "$1" ]; }
# Nothing provisioned: no engine, calibrated model or stamp on the data disk.
nothing_provisioned() {
    ! data_has /provision/active.json &&
        ! debugfs -R 'ls /engines' "$DATA_IMG" 2>/dev/null | grep -q '\.engine' &&
        ! debugfs -R 'ls /calibration' "$DATA_IMG" 2>/dev/null | grep -q '\.onnx'
}
ota_history() { data_file /ota/state.json | jq -c '[.history[].event]'; }
# provision/cpu-backend.json: the stamp of a box settled on the CPU backend.
stamp() { data_file /provision/cpu-backend.json; }
stamp_key() { stamp | jq -r .key; }

boot 1
ota_state_1=$(data_file /ota/state.json | sha256sum)
stamp_1=$(stamp)
ok=0
{ provisioned_once 1 settles && [ "$(report 1 data-mount)" = "/dev/vdb ext4" ] && record_is 0 &&
    record | jq -r .detail | grep -q '^no GPU' && [ -n "$(stamp_key)" ] && nothing_provisioned &&
    [ "$(ota_history)" = '["initialized"]' ]; } || ok=1
check 1 "first boot: provisioning ran once, no GPU / no TensorRT, CPU backend, stamped on the data disk" \
    "$(provision_evidence 1); data disk $(report 1 data-mount): provision/cpu-backend.json key $(stamp_key | cut -c1-16), provision/status.json $(record), ota/state.json history $(ota_history)" "$ok"
ok=0; line_healthy 1 || ok=1
check 2 "the daemon is READY and processed the replay clip, no stage down" "$(line_evidence 1)" "$ok"

boot 2
ok=0
{ provisioned_once 2 ends-at-stamp && nothing_provisioned && record_is 0 && [ "$(stamp)" = "$stamp_1" ] &&
    [ "$(data_file /ota/state.json | sha256sum)" = "$ota_state_1" ] && line_healthy 2; } || ok=1
check 3 "second boot: provisioning ends at the stamp, nothing written again" \
    "$(provision_evidence 2); provision/cpu-backend.json $([ "$(stamp)" = "$stamp_1" ] && echo unchanged || echo changed), provision/status.json $(record); ota/state.json $([ "$(data_file /ota/state.json | sha256sum)" = "$ota_state_1" ] && echo unchanged || echo changed); $(line_evidence 2)" "$ok"

debugfs -w -R "rm /provision/cpu-backend.json" "$DATA_IMG" 2>/dev/null
! data_has /provision/cpu-backend.json || { echo "could not remove provision/cpu-backend.json" >&2; exit 1; }
boot 3
ok=0
{ provisioned_once 3 settles && nothing_provisioned && record_is 1 && [ "$(stamp_key)" = "$(jq -r .key <<<"$stamp_1")" ] &&
    line_healthy 3; } || ok=1
check 4a "stamp removed from the data disk: provisioning runs again and stamps the same key" \
    "$(provision_evidence 3); provision/cpu-backend.json key $(stamp_key | cut -c1-16); provision/status.json $(record); $(line_evidence 3)" "$ok"

chmod 644 "$scratch/edgesort-model2.toml"
printf 'rm /etc/edgesort/line/edgesort.toml\nwrite %s /etc/edgesort/line/edgesort.toml\n' "$scratch/edgesort-model2.toml" \
    | debugfs -w -f - "$ROOT_IMG" >/dev/null 2>&1
boot 4
ok=0
{ provisioned_once 4 settles && nothing_provisioned && record_is 2 &&
    [ "$(stamp_key)" != "$(jq -r .key <<<"$stamp_1")" ] &&
    report 4 provision-log | grep -q "^  model:     $MODEL2 (sha256 ${MODEL2_SHA:0:16})" &&
    [ "$(status_json 4 | jq -r .engine.model_sha256)" = "$MODEL2_SHA" ] && line_healthy 4; } || ok=1
check 4b "changed model: provisioning runs again under a new key, the line serves the new model" \
    "$(provision_evidence 4); $(report 4 provision-log | grep -m1 '^  model:' | sed 's/^ *//'), expected sha256 ${MODEL2_SHA:0:16}; provision/cpu-backend.json key $(stamp_key | cut -c1-16) (was $(jq -r .key <<<"$stamp_1" | cut -c1-16)); provision/status.json $(record); $(line_evidence 4)" "$ok"

echo ">> boot test: $(( $(date +%s) - test_start )) s in all"
exit "$failed"

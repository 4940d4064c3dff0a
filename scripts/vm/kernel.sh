#!/bin/bash
# Debian's 6.12 kernel for the test VMs, fetched once and shared by every VM
# test (gpio-sim, vivid, the aarch64 boot test). Source it; VM_ARCH=arm64
# before sourcing picks Debian's arm64 kernel (default amd64). It sets:
#   VM_WORK   the work folder (default target/vm; ignored by git)
#   KVER_DEB  the Debian package version, e.g. 6.12.117-1~deb12u1
#   KABI      e.g. 6.12.117+deb12;  KREL  e.g. 6.12.117+deb12-amd64
#   VMLINUZ   the kernel image
#   APT       apt-get options for the private package lists (bookworm,
#             -security, -backports; the system's sources are not touched),
#             for this machine's architecture: host tools
#   APT_VM    the same for VM_ARCH: the kernel and other guest packages
# and defines vm_download PACKAGE... (into $VM_WORK/cache) and
# vm_extract_modules DEST NAME... (modules with their dependencies, as a
# /lib/modules tree that busybox's depmod and modprobe use in the VM).
#
# Only the files a VM needs are unpacked: the image package holds ~400 MB of
# modules, and CI's disk is not large.
set -euo pipefail
VM_ARCH=${VM_ARCH:-amd64}
VM_WORK=${VM_WORK:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)/target/vm}
mkdir -p "$VM_WORK"/{apt/lists/partial,apt/cache/archives/partial,cache}
HOST_ARCH=$(dpkg --print-architecture)

cat > "$VM_WORK/apt/sources.list" <<'LIST'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-backports main
deb http://deb.debian.org/debian-security bookworm-security main
LIST
APT=(-o Dir::Etc::SourceList="$VM_WORK/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$VM_WORK/apt/lists" -o Dir::Cache="$VM_WORK/apt/cache"
     -o APT::Sandbox::User=root)
APT_VM=("${APT[@]}")
# A foreign architecture gets lists of its own: one `apt-get update` for both
# would make every amd64-only run carry (and refresh) the arm64 lists too.
if [ "$VM_ARCH" != "$HOST_ARCH" ]; then
    mkdir -p "$VM_WORK/apt/lists-$VM_ARCH/partial"
    APT_VM+=(-o Dir::State::Lists="$VM_WORK/apt/lists-$VM_ARCH"
             -o APT::Architecture="$VM_ARCH" -o APT::Architectures="$VM_ARCH")
fi
vm_update_lists() {
    local lists=$1; shift
    if [ ! -e "$lists/.stamp" ] || [ -n "$(find "$lists/.stamp" -mmin +1440)" ]; then
        apt-get "$@" update -q
        touch "$lists/.stamp"
    fi
}
vm_update_lists "$VM_WORK/apt/lists" "${APT[@]}"
[ "$VM_ARCH" = "$HOST_ARCH" ] || vm_update_lists "$VM_WORK/apt/lists-$VM_ARCH" "${APT_VM[@]}"

# --- host tools ----------------------------------------------------------------------------
# shellcheck disable=SC2034 # QEMU is for the scripts that source this one
case "$VM_ARCH" in
    amd64) QEMU_PKG=qemu-system-x86 QEMU=qemu-system-x86_64 ;;
    arm64) QEMU_PKG=qemu-system-arm QEMU=qemu-system-aarch64 ;;
    *) echo "VM_ARCH=$VM_ARCH: only amd64 and arm64 are known" >&2; exit 2 ;;
esac
vm_need=()
for p in xz-utils cpio busybox-static "$QEMU_PKG" bc binutils; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || vm_need+=("$p")
done
if [ ${#vm_need[@]} -gt 0 ]; then
    echo ">> installing host packages: ${vm_need[*]}"
    # Images that ship qemu-utils from bookworm-backports need qemu-system-* from there too:
    # bookworm's own qemu-system-common is older than that qemu-utils allows.
    vm_release=()
    dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q bpo && vm_release=(-t bookworm-backports)
    DEBIAN_FRONTEND=noninteractive apt-get "${APT[@]}" install -y -q --no-install-recommends \
        "${vm_release[@]}" "${vm_need[@]}"
fi

# --- kernel version ------------------------------------------------------------------------
if [ -z "${KVER_DEB:-}" ]; then
    KVER_DEB=$(apt-cache "${APT[@]}" policy linux-source-6.12 | awk '/Candidate:/{print $2}')
fi
# 6.12.117-1~deb12u1 -> 6.12.117+deb12
KABI=$(echo "$KVER_DEB" | sed -E 's/^([0-9]+\.[0-9]+\.[0-9]+)-.*/\1/')+deb12
KREL=$KABI-$VM_ARCH
echo ">> Debian kernel $KVER_DEB, release $KREL"

vm_download() {
    local p deb
    for p in "$@"; do
        deb=$(find "$VM_WORK/cache" -name "${p}_*${KVER_DEB//:/%3a}_*.deb" | head -1)
        [ -n "$deb" ] || (cd "$VM_WORK/cache" && apt-get "${APT_VM[@]}" download "$p=$KVER_DEB")
    done
}

IMAGE_PKG=linux-image-$KREL-unsigned
vm_download "$IMAGE_PKG"
IMAGE_DEB=$(find "$VM_WORK/cache" -name "${IMAGE_PKG}_*.deb" | head -1)
VMLINUZ=$VM_WORK/kernel/vmlinuz-$KREL
if [ ! -e "$VMLINUZ" ]; then
    mkdir -p "$VM_WORK/kernel"
    dpkg-deb --fsys-tarfile "$IMAGE_DEB" | tar -xO "./boot/vmlinuz-$KREL" > "$VMLINUZ.partial"
    mv "$VMLINUZ.partial" "$VMLINUZ"
fi

# vm_extract_modules DEST NAME...: NAME's .ko files and everything they
# depend on (their .modinfo "depends="; the package ships no modules.dep, its
# postinst makes one), decompressed, under DEST/lib/modules/$KREL/kernel/...;
# the VM's `depmod` (busybox) indexes them at boot. Busybox's modprobe would
# load a .ko.xz too, but only after the kernel refuses it and busybox unpacks
# it in memory; unpacked here, readelf can read the dependencies (the host's
# readelf reads any architecture's ELF; its objcopy does not). One pass
# over the package per level of dependencies; cached in DEST.
vm_extract_modules() {
    local dest=$1; shift
    local stamp
    stamp="$dest/.stamp-$KVER_DEB-$(echo "$*" | tr ' ' '+')"
    [ -e "$stamp" ] && return 0
    rm -rf "$dest"; mkdir -p "$dest/lib/modules/$KREL"
    local listing="$VM_WORK/cache/$IMAGE_PKG.modules"
    [ -s "$listing" ] || dpkg-deb -c "$IMAGE_DEB" | awk '{print $6}' | grep '\.ko' > "$listing"
    local wanted=("$@") seen=" " name path paths ko count=0
    while [ ${#wanted[@]} -gt 0 ]; do
        paths=()
        for name in "${wanted[@]}"; do
            name=${name//-/_}
            case "$seen" in *" $name "*) continue ;; esac
            seen+="$name "
            # file names use - and _ interchangeably
            path=$(grep -E "/${name//_/[-_]}\.ko(\.xz)?$" "$listing" | head -1)
            [ -n "$path" ] || { echo "module $name is not in $IMAGE_PKG" >&2; return 1; }
            paths+=("$path")
        done
        [ ${#paths[@]} -gt 0 ] || break
        dpkg-deb --fsys-tarfile "$IMAGE_DEB" | tar -x -C "$dest" "${paths[@]}"
        wanted=()
        for path in "${paths[@]}"; do
            ko=$dest/${path#./}
            case "$ko" in *.xz) xz -df "$ko"; ko=${ko%.xz} ;; esac
            count=$((count + 1))
            for name in $(readelf -p .modinfo "$ko" | sed -n 's/^ *\[ *[0-9a-f]*\]  depends=//p' | tr ',' ' '); do
                wanted+=("$name")
            done
        done
    done
    touch "$stamp"
    echo ">> $count modules for $* (with their dependencies) in $dest"
}

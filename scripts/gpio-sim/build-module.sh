#!/bin/bash
# Build gpio-sim (+ irq_sim) as one out-of-tree module for the test VMs'
# Debian 6.12 kernel (scripts/vm/kernel.sh): Debian builds neither. Idempotent;
# the headers, kbuild and source packages are cached beside the kernel in
# $VM_WORK and unpacked there, nothing is installed for them. Prints the
# module's path last.
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source=../vm/kernel.sh
source "$HERE/../vm/kernel.sh"

need=()
for p in gcc-12 make libelf-dev pahole bc; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo ">> installing host packages: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get "${APT[@]}" install -y -q --no-install-recommends "${need[@]}"
fi

vm_download "linux-headers-$KREL" "linux-headers-$KABI-common" "linux-kbuild-$KABI" linux-source-6.12
WORK=$VM_WORK/gpio-sim
mkdir -p "$WORK"
cd "$WORK"

# --- headers and kbuild, unpacked once per version ------------------------------------------
if [ ! -e "root/.stamp-$KVER_DEB" ]; then
    rm -rf root; mkdir root
    for n in linux-headers-$KREL linux-headers-$KABI-common linux-kbuild-$KABI; do
        dpkg -x "$VM_WORK/cache/${n}_"*.deb root
    done
    # The arch headers' Makefile includes the common one by absolute /usr/src path; repoint it.
    echo "include $WORK/root/usr/src/linux-headers-$KABI-common/Makefile" \
        > "root/usr/src/linux-headers-$KREL/Makefile"
    touch "root/.stamp-$KVER_DEB"
fi
KDIR=$WORK/root/usr/src/linux-headers-$KREL

# --- the two source files, from linux-source ------------------------------------------------
if [ ! -e "src/.stamp-$KVER_DEB" ]; then
    rm -rf src; mkdir src
    dpkg-deb --fsys-tarfile "$VM_WORK/cache/linux-source-6.12_"*"$(echo "$KVER_DEB" | sed 's/:/%3a/')"_all.deb \
      | tar -xO ./usr/src/linux-source-6.12.tar.xz | xz -dc -T0 \
      | tar -x -C src --strip-components=1 \
            linux-source-6.12/drivers/gpio/gpio-sim.c linux-source-6.12/kernel/irq/irq_sim.c
    touch "src/.stamp-$KVER_DEB"
fi

# --- module dir: copy + patch ---------------------------------------------------------------
mkdir -p module
cp src/drivers/gpio/gpio-sim.c module/gpio-sim.c
cp src/kernel/irq/irq_sim.c module/irq_sim.c
# irq_to_desc() is not exported to modules; generic_handle_irq() does the same thing here
# (looks up the desc and calls its flow handler, which irq_sim_domain_map set to handle_simple_irq).
sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' module/irq_sim.c
grep -q 'generic_handle_irq(irqnum);' module/irq_sim.c || { echo "patch failed" >&2; exit 1; }
cat > module/Kbuild <<'KBUILD'
obj-m := gpio-sim-oot.o
gpio-sim-oot-y := gpio-sim.o irq_sim.o
KBUILD

make -C "$KDIR" M="$WORK/module" modules -j"$(nproc)" >&2
strip --strip-debug module/gpio-sim-oot.ko
# vermagic and dependencies, without kmod on the host. Into a file: objcopy
# replaces its output by renaming, which would turn /dev/stdout into a file.
objcopy -O binary --only-section=.modinfo module/gpio-sim-oot.ko module/modinfo
tr '\0' '\n' < module/modinfo | grep -E '^(vermagic|depends|name)=' >&2
echo "$WORK/module/gpio-sim-oot.ko"

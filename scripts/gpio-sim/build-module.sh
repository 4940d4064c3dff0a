#!/bin/bash
# Build gpio-sim (+ irq_sim) as one out-of-tree module for Debian's 6.12 kernel.
# Idempotent: downloads are cached in ./cache, nothing is installed for the kernel
# packages (they are dpkg -x'ed into ./root). Host tools are apt-get installed if missing.
#
# Env overrides:
#   KVER_DEB  Debian package version, e.g. 6.12.117-1~deb12u1 (default: newest 6.12 in apt sources)
set -euo pipefail
# Work folder (downloads, unpacked kernel, module, initramfs): ignored by git.
SIM_WORK=${GPIO_SIM_WORK:-$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)/target/gpio-sim}
mkdir -p "$SIM_WORK" && cd "$SIM_WORK"
TOP=$PWD

# --- private apt config: bookworm + bookworm-security + bookworm-backports -------------
# (the 6.12 kernel is in bookworm-security as linux-*-6.12.*+deb12*, and in bookworm-backports
#  as 6.12.*+bpo; we don't touch the system's sources.list)
mkdir -p apt/lists/partial apt/cache/archives/partial cache
cat > apt/sources.list <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-backports main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
APT=(-o Dir::Etc::SourceList="$TOP/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$TOP/apt/lists" -o Dir::Cache="$TOP/apt/cache"
     -o APT::Sandbox::User=root)
if [ ! -e apt/lists/.stamp ] || [ -n "$(find apt/lists/.stamp -mmin +1440)" ]; then
    apt-get "${APT[@]}" update -q
    touch apt/lists/.stamp
fi

# --- host tools --------------------------------------------------------------------------
need=()
for p in gcc-12 make libelf-dev pahole xz-utils cpio busybox-static qemu-system-x86 bc; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo ">> installing host packages: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get "${APT[@]}" install -y -q --no-install-recommends "${need[@]}"
fi

# --- pick kernel version -----------------------------------------------------------------
if [ -z "${KVER_DEB:-}" ]; then
    KVER_DEB=$(apt-cache "${APT[@]}" policy linux-source-6.12 | awk '/Candidate:/{print $2}')
fi
# 6.12.117-1~deb12u1 -> 6.12.117+deb12 ; 6.12.95-1~bpo12+1 -> 6.12.95+deb12 as well
KABI=$(echo "$KVER_DEB" | sed -E 's/^([0-9]+\.[0-9]+\.[0-9]+)-.*/\1/')+deb12
KREL=$KABI-amd64
echo ">> Debian version $KVER_DEB, kernel release $KREL"
echo "$KREL" > kernel-release

pkgs=(linux-headers-$KREL=$KVER_DEB linux-headers-$KABI-common=$KVER_DEB
      linux-kbuild-$KABI=$KVER_DEB linux-image-$KREL-unsigned=$KVER_DEB
      linux-source-6.12=$KVER_DEB)
(
  cd cache
  for p in "${pkgs[@]}"; do
      n=${p%%=*}
      ls "${n}"_*"$(echo "${KVER_DEB}" | sed 's/:/%3a/')"_*.deb >/dev/null 2>&1 || apt-get "${APT[@]}" download "$p"
  done
)

# --- unpack headers/kbuild/image into ./root (once per version) ------------------------
if [ ! -e "root/.stamp-$KVER_DEB" ]; then
    rm -rf root; mkdir root
    for n in linux-headers-$KREL linux-headers-$KABI-common linux-kbuild-$KABI linux-image-$KREL-unsigned; do
        dpkg -x cache/"$n"_*.deb root
    done
    # The arch headers' Makefile includes the common one by absolute /usr/src path; repoint it.
    echo "include $TOP/root/usr/src/linux-headers-$KABI-common/Makefile" \
        > root/usr/src/linux-headers-$KREL/Makefile
    # we only need vmlinuz + configfs.ko from the image package; drop the other ~400 MB of modules
    find root/lib/modules/$KREL -name '*.ko*' ! -name 'configfs.ko*' -delete
    touch "root/.stamp-$KVER_DEB"
fi
KDIR=$TOP/root/usr/src/linux-headers-$KREL

# --- extract the two source files from linux-source ---------------------------------------
if [ ! -e "src/.stamp-$KVER_DEB" ]; then
    rm -rf src; mkdir src
    dpkg-deb --fsys-tarfile cache/linux-source-6.12_*"$(echo "${KVER_DEB}" | sed 's/:/%3a/')"_all.deb \
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
diff -u src/kernel/irq/irq_sim.c module/irq_sim.c > module/irq_sim.patch || true
cat > module/Kbuild <<'EOF'
obj-m := gpio-sim-oot.o
gpio-sim-oot-y := gpio-sim.o irq_sim.o
EOF

make -C "$KDIR" M="$TOP/module" modules -j"$(nproc)"
strip --strip-debug module/gpio-sim-oot.ko
ls -l module/gpio-sim-oot.ko
# (no kmod/modinfo needed on the host) show vermagic + deps from .modinfo
objcopy -O binary --only-section=.modinfo module/gpio-sim-oot.ko /dev/stdout | tr '\0' '\n' | grep -E '^(vermagic|depends|name)='

#!/usr/bin/env bash
# Registers qemu-aarch64-static with binfmt_misc, so the kernel hands arm64
# ELF files to qemu: binaries that tests start, and programs run in an arm64
# chroot (mmdebstrap, dpkg's maintainer scripts). F: the kernel opens qemu
# now, so it also runs inside containers and chroots without a copy of it
# there. Needs root; does nothing when the entry exists.
set -euo pipefail
binfmt=/proc/sys/fs/binfmt_misc
[ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
if [ ! -e "$binfmt/qemu-aarch64" ]; then
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
        >"$binfmt/register"
fi

SUMMARY = "edgesort box image: the sorting line on JetPack 6 (L4T R36)"
DESCRIPTION = "edgesort with TensorRT, CUDA and cuDNN, SWUpdate for base-OS \
               A/B updates, and the data partition /var/lib/edgesort that both \
               rootfs slots share."
SECTION = "images"
LICENSE = "MIT"

inherit core-image

IMAGE_FEATURES += "ssh-server-openssh"

IMAGE_INSTALL:append = " \
    edgesort \
    tensorrt-core \
    tensorrt-plugins \
    cuda-cudart \
    cudnn \
    swupdate \
    e2fsprogs-mke2fs \
"

# tegraflash: the package that initrd-flash and doflash.sh flash from.
# tar.gz: the rootfs that swupdate-image-tegra packs into the .swu.
IMAGE_FSTYPES += "tegraflash tar.gz"

# The data partition is NVIDIA's UDA partition (resized by this layer's
# tegra-storage-layout bbappend). Neither rootfs slot holds it and the .swu
# never writes it, so engines, events and the update slots survive an A/B
# update. systemd-makefs formats it once, on first boot, and leaves a
# partition holding a file system alone. It is mounted before
# systemd-tmpfiles-setup, so that tmpfiles.d/edgesort.conf sets the owner on
# the mounted file system rather than on the folder below it. nofail: a box
# whose data partition fails still boots to a shell and the network, and
# the units, which need the mount, say why they are not running.
EDGESORT_DATA_PARTLABEL ?= "UDA"
ROOTFS_POSTPROCESS_COMMAND += "edgesort_data_partition;"
edgesort_data_partition[doc] = "Mounts the data partition at /var/lib/edgesort, formatting it on first boot"
edgesort_data_partition() {
    printf '%s\n' "PARTLABEL=${EDGESORT_DATA_PARTLABEL} ${localstatedir}/lib/edgesort ext4 defaults,noatime,nofail,x-systemd.makefs,x-systemd.before=systemd-tmpfiles-setup.service 0 2" \
        >> ${IMAGE_ROOTFS}${sysconfdir}/fstab
}

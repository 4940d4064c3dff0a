SUMMARY = "edgesort: vision sorting line for Jetson Orin"
DESCRIPTION = "The edgesortd daemon and the edgesort CLI, their systemd units, \
               the box configuration and root's settings, the board pin maps, \
               the demo detector, the INT8 calibration stills, the factory \
               update slot and the demo clip."
SECTION = "applications"
# The binaries are Apache-2.0; the bundled detector carries Ultralytics'
# AGPL-3.0 notice in its ONNX metadata (README.md, "Bundled assets").
LICENSE = "Apache-2.0 & AGPL-3.0-only"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=75;endline=75;md5=2507bd5f0713f05419cd2f22fa06fe62"

# clang-native: the v4l crate generates its V4L2 bindings with bindgen.
# tensorrt-*, cuda-cudart: the headers the TensorRT shim compiles against
# (crates/tensorrt-sys/build.rs).
DEPENDS += "clang-native cuda-cudart tensorrt-core tensorrt-plugins"

PV = "0.1.0+git"

# The repository that holds this layer (four folders up), at the head of
# EDGESORT_BRANCH; a release build pins EDGESORT_SRCREV to its tag's commit.
EDGESORT_TOPDIR ??= "${@os.path.normpath(os.path.join(d.getVar('THISDIR'), '../../../..'))}"
EDGESORT_BRANCH ??= "main"
EDGESORT_SRCREV ??= "${AUTOREV}"
SRC_URI = "git://${EDGESORT_TOPDIR};protocol=file;branch=${EDGESORT_BRANCH}"
SRCREV = "${EDGESORT_SRCREV}"

S = "${WORKDIR}/git"

require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates systemd useradd

# crates/ota/fuzz has a Cargo.lock of its own for a workspace the image never
# builds; the crate list comes from the workspace's lock file alone, as
# scripts/yocto-crates-inc.py writes it.
CARGO_LOCK_SRC_DIR = "${WORKDIR}/cargo-lock"
do_update_crates[prefuncs] += "edgesort_workspace_lock"
edgesort_workspace_lock[doc] = "Gives do_update_crates the workspace's Cargo.lock alone"
edgesort_workspace_lock() {
    install -D -m 0644 ${S}/Cargo.lock ${CARGO_LOCK_SRC_DIR}/Cargo.lock
}

# The root package holds only the system tests; the box runs these two
# binaries, named so that edgesortd's test double
# (edgesortd-recorded-detections, for the gpio-sim VM test) is never built.
# require-tensorrt: no image ships without the TensorRT shim by accident.
CARGO_BUILD_FLAGS:append = " -p edgesort -p edgesortd --bin edgesort --bin edgesortd --features edgesort-tensorrt-sys/require-tensorrt"
# The CLI's default --config is then /etc/edgesort/line/edgesort.toml, and no
# path of the build machine is compiled in (crates/edgesort/src/main.rs).
export EDGESORT_PACKAGED = "1"
export TENSORRT_INCLUDE_DIR = "${STAGING_INCDIR}"
export CUDA_INCLUDE_DIR = "${STAGING_DIR_HOST}${prefix}/local/cuda-${CUDA_VERSION}/include"
export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"
export BINDGEN_EXTRA_CLANG_ARGS = "--sysroot=${RECIPE_SYSROOT}"

# Which board/pins map the box configuration names, per MACHINE.
EDGESORT_PINS ??= "orin-nano-devkit.toml"
EDGESORT_PINS:p3768-0000-p3767-0000 = "orin-nx-p3768.toml"
EDGESORT_PINS:jetson-agx-orin-devkit = "agx-orin-devkit.toml"

# The base-OS updater that `edgesort ota install` hands os/ payloads to; the
# payload's path is appended (crates/types/src/config/ota.rs). Through
# systemd-run: swupdate needs block devices, mounts, /boot and EFI variables,
# which edgesort-ota-install.service's sandbox withholds, so it runs in a
# transient unit of its own (docs/ota.md, "The installer's sandbox").
EDGESORT_OS_UPDATE_COMMAND ??= '["systemd-run", "--wait", "--pipe", "--quiet", "--collect", "--unit=edgesort-os-update", "swupdate", "-i"]'

USERADD_PACKAGES = "${PN}"
# edgesortd.service fails with 216/GROUP when a SupplementaryGroups= group is
# missing; video is in base-passwd, gpio and render may not be.
GROUPADD_PARAM:${PN} = "--system gpio; --system video; --system render"
USERADD_PARAM:${PN} = "--system --user-group --home-dir ${localstatedir}/lib/edgesort --no-create-home --shell ${base_sbindir}/nologin edgesort"

# edgesort-ota-install.service is started by the path unit only.
SYSTEMD_SERVICE:${PN} = "edgesortd.service edgesort-provision.service edgesort-ota-install.path"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/board/systemd/*.service ${S}/board/systemd/*.path ${D}${systemd_system_unitdir}/

    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${S}/board/udev/99-edgesort-gpio.rules ${D}${nonarch_base_libdir}/udev/rules.d/

    # The data partition's ownership, as the .deb sets it (shared file).
    install -D -m 0644 ${S}/packaging/deb/edgesort.tmpfiles ${D}${nonarch_libdir}/tmpfiles.d/edgesort.conf

    # The factory slot `edgesort ota recover --factory` turns into slot a on
    # first boot, and the only copy of the model, the calibration stills and
    # the pin maps on the image: the box configuration reads all three
    # through ota/current/, so that update packages can replace them. Plain
    # files only (links are refused), each inside one of the slot folders
    # (crates/ota/src/slots.rs, `init`).
    factory=${D}${datadir}/edgesort/factory
    install -d $factory/model $factory/calibration/images $factory/board/pins
    install -m 0644 ${S}/models/sorter_yolov8n_dynamic.onnx $factory/model/
    install -m 0644 ${S}/calibration/images/* $factory/calibration/images/
    install -m 0644 ${S}/board/pins/*.toml $factory/board/pins/

    # The clip `edgesort demo` and `edgesort bench pipeline` play on the box
    # (crates/edgesort/src/main.rs, BUNDLED_CLIP), as the .deb installs it:
    # the frames and their ground truth, nothing a run left beside them.
    demo=${D}${datadir}/edgesort/demo_clip
    install -d $demo/frames
    install -m 0644 ${S}/tests/data/demo_clip/frames/*.jpg $demo/frames/
    install -m 0644 ${S}/tests/data/demo_clip/tracks.json $demo/

    # The box configuration the .deb installs too (board/edgesort-box.toml),
    # with this image's board. The daemon saves PUT /config by renaming a
    # file into /etc/edgesort/line, its own folder; /etc/edgesort itself,
    # where root's system.toml lives, stays root's and not group-writable.
    pins="${localstatedir}/lib/edgesort/ota/current/board/pins/${EDGESORT_PINS}"
    config=${D}${sysconfdir}/edgesort/line/edgesort.toml
    install -d -m 0755 ${D}${sysconfdir}/edgesort
    install -d -m 0755 -o edgesort -g edgesort ${D}${sysconfdir}/edgesort/line
    sed -e "s|^board = \".*/pins/.*\"\$|board = \"$pins\"|" \
        ${S}/board/edgesort-box.toml > $config
    chmod 0644 $config
    # A sed that no longer matches would ship the wrong board silently.
    grep -qxF "board = \"$pins\"" $config
    test -f ${S}/board/pins/${EDGESORT_PINS}

    # Root's settings (the OTA commands, trusted keys, update folder), as the
    # .deb installs them, with this image's OS updater: root:root 0644, in
    # root's folder.
    system=${D}${sysconfdir}/edgesort/system.toml
    sed -e 's|^os_update_command = \[\]$|os_update_command = ${EDGESORT_OS_UPDATE_COMMAND}|' \
        ${S}/board/system.toml > $system
    chown root:root $system
    chmod 0644 $system
    grep -qxF 'os_update_command = ${EDGESORT_OS_UPDATE_COMMAND}' $system
}

# The configuration names one MACHINE's pin map.
PACKAGE_ARCH = "${MACHINE_ARCH}"

FILES:${PN} += "${systemd_system_unitdir} ${nonarch_base_libdir}/udev/rules.d ${nonarch_libdir}/tmpfiles.d"
CONFFILES:${PN} = "${sysconfdir}/edgesort/line/edgesort.toml ${sysconfdir}/edgesort/system.toml"

# Everything GPU-side is opened with dlopen at run time (the binaries start
# without it and say what is missing), so no shared-library dependency is
# recorded: name the libraries here. e2fsprogs-mke2fs: systemd-makefs formats
# the data partition on first boot (edgesort-image.bb).
RDEPENDS:${PN} += "cuda-cudart cuda-nvrtc cudnn e2fsprogs-mke2fs tegra-libraries-cuda tensorrt-core tensorrt-plugins"

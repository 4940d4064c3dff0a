#!/bin/bash
# Installs, upgrades, removes and purges the .deb from scripts/deb/build.sh
# in a Debian bookworm arm64 chroot under qemu-user, the way dpkg runs on a
# box, and prints one PASS or FAIL line per check; exits 1 on any FAIL.
#
#   scripts/deb/test-chroot.sh [path/to/edgesort_<version>_arm64.deb]
#
# Needs root (chroot, mounts) and binfmt_misc. The first run bootstraps the
# chroot with mmdebstrap from deb.debian.org (about 75 MB, 3 minutes) and
# keeps the tarball in target/deb-chroot; every run unpacks a fresh copy and
# removes it at the end.
#
# The upgrade is to a v2 made from the same package: same binaries, version
# bumped, and a changed default configuration, so that dpkg must choose
# between it and the box's edited file. Before installing, the package's
# listing (dpkg-deb --contents) is checked against every path the README,
# docs/ and the units name for a packaged box (scripts/deb/check-contents.py,
# the rule CI applies to the cargo-deb assets).
# ${Version} and the like below are dpkg-query's format, not the shell's.
# shellcheck disable=SC2016
set -euo pipefail

cd "$(dirname "$0")/../.."
deb=${1:-$(echo target/debian/edgesort_*_arm64.deb)}
work=target/deb-chroot
tarball=$work/bookworm-arm64.tar.gz
root=$work/root
data=/var/lib/edgesort
units=(edgesort-provision.service edgesortd.service edgesort-ota-install.path)
wants=/etc/systemd/system/multi-user.target.wants

if [ ! -f "$deb" ]; then
    echo "no package at $deb: run scripts/deb/build.sh first" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "needs root: it chroots and mounts" >&2
    exit 1
fi
started=$SECONDS

# qemu runs the chroot's arm64 programs.
# qemu-user-static: the interpreter that binfmt_misc entry names (F opens it
# at registration); arch-test: mmdebstrap's check of a foreign architecture,
# which --no-install-recommends would leave out.
missing=()
[ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
command -v arch-test >/dev/null || missing+=(arch-test)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
scripts/register-qemu-aarch64.sh

mkdir -p "$work"
if [ ! -f "$tarball" ]; then
    command -v mmdebstrap >/dev/null || apt-get install -y --no-install-recommends mmdebstrap
    # systemd and udev: the package enables units with deb-systemd-helper
    # and reloads udev rules; adduser: its postinst creates the user.
    nice -n 19 mmdebstrap --variant=minbase --architectures=arm64 \
        --include=systemd,udev,adduser bookworm "$work/partial.tar.gz" http://deb.debian.org/debian
    # mmdebstrap picks the output format from the name's extension: a name
    # ending in .partial would make it write a directory.
    mv "$work/partial.tar.gz" "$tarball"
fi

cleanup() {
    for mount in "$root$data" "$root/proc"; do
        if mountpoint -q "$mount"; then umount "$mount"; fi
    done
    rm -rf "$root" "$work/v0" "$work/v2"
}
trap cleanup EXIT
cleanup
# The logs stay for a look after a failure.
rm -rf "$work/logs"
mkdir -p "$root" "$work/logs"
tar -xzf "$tarball" -C "$root"
mount -t proc proc "$root/proc"
# The data partition: a file system of its own, as on a box.
mkdir -p "$root$data"
mount -t tmpfs -o size=64m edgesort-data "$root$data"

failures=0
pass() { echo "PASS $1"; }
fail() {
    echo "FAIL $1"
    failures=$((failures + 1))
}
check() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
in_root() { chroot "$root" "$@"; }
# A dpkg run passes when it succeeds within 5 minutes (a conffile prompt
# would wait for ever) and says nothing of warnings or errors.
dpkg_step() {
    local name=$1
    shift
    local log=$work/logs/$name.log
    local begun=$SECONDS
    if timeout 300 chroot "$root" env DEBIAN_FRONTEND=noninteractive dpkg "$@" \
        </dev/null >"$log" 2>&1 && ! grep -qiE 'warning|error' "$log"; then
        pass "$name ($((SECONDS - begun)) s)"
    else
        fail "$name ($((SECONDS - begun)) s)"
        sed 's/^/    /' "$log"
    fi
}
owner_mode() { [ "$(in_root stat -c '%U:%G %a' "$1")" = "$2" ]; }
units_enabled() {
    local unit
    for unit in "${units[@]}"; do
        [ -L "$root$wants/$unit" ] || return 1
        [ "$(in_root systemctl is-enabled "$unit")" = enabled ] || return 1
    done
}
no_enablement_left() {
    local unit
    for unit in "${units[@]}"; do
        [ ! -e "$root$wants/$unit" ] && [ ! -L "$root$wants/$unit" ] || return 1
    done
    ! grep -rqs edgesort "$root/var/lib/systemd/deb-systemd-helper-enabled"
}
installed_version() { in_root dpkg-query -W -f '${Version} ${db:Status-Abbrev}' edgesort; }
runs() { [ "$(in_root /usr/bin/edgesort --version)" = "edgesort ${1%-*}" ]; }
config_loads() { in_root edgesort gpio list --config /etc/edgesort/line/edgesort.toml >/dev/null; }
is_conffile() { in_root dpkg-query -W -f '${Conffiles}\n' edgesort | grep -q "$1 "; }
user_is_system() {
    local uid shell
    uid=$(in_root id -u edgesort)
    shell=$(in_root getent passwd edgesort | cut -d: -f7)
    [ "$uid" -lt 1000 ] && [ "$shell" = /usr/sbin/nologin ] && [ "$(in_root id -gn edgesort)" = edgesort ]
}
groups_exist() { in_root getent group gpio video render edgesort >/dev/null; }
calibration_stills() { [ "$(find "$root/usr/share/edgesort/factory/calibration/images" -name '*.jpg' | wc -l)" -eq 100 ]; }
# What a packaged `edgesort demo` plays: the 240 frames and their ground truth.
demo_clip() {
    [ "$(find "$root/usr/share/edgesort/demo_clip/frames" -name '*.jpg' | wc -l)" -eq 240 ] &&
        [ -f "$root/usr/share/edgesort/demo_clip/tracks.json" ] &&
        [ -z "$(find "$root/usr/share/edgesort/demo_clip" -maxdepth 1 -type f ! -name tracks.json)" ]
}
# Every path the README, docs/ and the units name for a packaged box is in
# the package's listing; the listing and the verdict stay in the logs.
documented_paths() {
    local log=$work/logs/contents.log
    scripts/deb/check-contents.py --deb "$deb" >"$log" 2>&1 || {
        grep -E '^(MISSING|ERROR|FAIL)' "$log" | sed 's/^/    /'
        return 1
    }
}
files_installed() {
    local file
    for file in /usr/bin/edgesort /usr/bin/edgesortd /etc/edgesort/line/edgesort.toml \
        /etc/edgesort/pins/orin-nano-devkit.toml /etc/edgesort/pins/orin-nx-p3768.toml \
        /etc/edgesort/pins/agx-orin-devkit.toml /lib/systemd/system/edgesortd.service \
        /lib/systemd/system/edgesort-provision.service /lib/systemd/system/edgesort-ota-install.path \
        /lib/systemd/system/edgesort-ota-install.service /lib/udev/rules.d/99-edgesort-gpio.rules \
        /usr/lib/tmpfiles.d/edgesort.conf /usr/share/edgesort/factory/model/sorter_yolov8n_dynamic.onnx \
        /usr/share/doc/edgesort/ota.md /usr/share/doc/edgesort/copyright; do
        [ -f "$root$file" ] || return 1
    done
}
# What both units' ExecStartPre does at first boot: slot a from the factory
# folder, committed, with the configured model and stills inside it.
factory_slot() {
    in_root edgesort ota recover --config /etc/edgesort/line/edgesort.toml \
        --factory /usr/share/edgesort/factory >"$work/logs/recover.log" 2>&1 &&
        [ -f "$root$data/ota/current/model/sorter_yolov8n_dynamic.onnx" ] &&
        [ -d "$root$data/ota/current/calibration/images" ] &&
        in_root edgesort ota status --verify --config /etc/edgesort/line/edgesort.toml \
            >>"$work/logs/recover.log" 2>&1
}
slot_committed() { grep -q '"committed"' "$root$data/ota/state.json"; }
edited='# edited on the box'
config_kept() { grep -qx "$edited" "$root/etc/edgesort/line/edgesort.toml"; }
v2_default_beside() { grep -qx "# edgesort $v2" "$root/etc/edgesort/line/edgesort.toml.dpkg-dist"; }
user_kept() { in_root getent passwd edgesort >/dev/null; }
data_emptied() { mountpoint -q "$root$data" && [ -z "$(ls -A "$root$data")" ]; }

v1=$(dpkg-deb --field "$deb" Version)
v2=${v1%-*}-$((${v1##*-} + 1))
cp "$deb" "$root/tmp/edgesort-v1.deb"
# v2: the same files, version bumped, and a changed default configuration.
dpkg-deb -R "$deb" "$work/v2"
sed -i "s/^Version: .*/Version: $v2/" "$work/v2/DEBIAN/control"
echo "# edgesort $v2" >>"$work/v2/etc/edgesort/line/edgesort.toml"
# Uncompressed: it lives for one run.
dpkg-deb -Znone --build "$work/v2" "$root/tmp/edgesort-v2.deb" >/dev/null
# v0: the layout before 0.1.0-2, the configuration in /etc/edgesort itself
# (which was root:edgesort 0775), no preinst.
v0=${v1%-*}-0
dpkg-deb -R "$deb" "$work/v0"
sed -i "s/^Version: .*/Version: $v0/" "$work/v0/DEBIAN/control"
mv "$work/v0/etc/edgesort/line/edgesort.toml" "$work/v0/etc/edgesort/edgesort.toml"
rmdir "$work/v0/etc/edgesort/line"
sed -i 's|^/etc/edgesort/line/edgesort.toml$|/etc/edgesort/edgesort.toml|' "$work/v0/DEBIAN/conffiles"
rm "$work/v0/DEBIAN/preinst"
dpkg-deb -Znone --build "$work/v0" "$root/tmp/edgesort-v0.deb" >/dev/null

echo "== contents of $(basename "$deb")"
check "every packaged-box path the README, docs and units name is in the package" documented_paths

echo "== $v0 (configuration in /etc/edgesort) upgraded to $v1 (in /etc/edgesort/line)"
dpkg_step install-v0 -i /tmp/edgesort-v0.deb
# As the old layout let the daemon: its PUT /config saved the file, and its
# group put a link where the new folder goes.
in_root chown root:edgesort /etc/edgesort
chmod 0775 "$root/etc/edgesort"
echo "$edited" >>"$root/etc/edgesort/edgesort.toml"
mkdir "$root/tmp/victim"
echo untouched >"$root/tmp/victim/file"
ln -s /tmp/victim "$root/etc/edgesort/line"
dpkg_step upgrade-v0-v1 -i /tmp/edgesort-v1.deb
check "the saved config moved to /etc/edgesort/line/edgesort.toml" config_kept
check "nothing left at /etc/edgesort/edgesort.toml" [ ! -e "$root/etc/edgesort/edgesort.toml" ]
check "the planted link was removed, not unpacked through: its target untouched" \
    eval '[ -d "$root/etc/edgesort/line" ] && [ ! -L "$root/etc/edgesort/line" ] && [ "$(ls "$root/tmp/victim")" = file ] && [ "$(cat "$root/tmp/victim/file")" = untouched ]'
check "/etc/edgesort root:root 755 again" owner_mode /etc/edgesort "root:root 755"
check "/etc/edgesort/line edgesort:edgesort 755" owner_mode /etc/edgesort/line "edgesort:edgesort 755"
check "the moved config loads with its pin map" config_loads
dpkg_step purge-v1 -P edgesort
rm -rf "$root/tmp/victim"

echo "== install $v1"
dpkg_step install-v1 -i /tmp/edgesort-v1.deb
check "version $v1 installed" [ "$(installed_version)" = "$v1 ii " ]
check "files: binaries, config, pin maps, units, udev rule, tmpfiles, model, docs" files_installed
check "100 calibration stills in the factory folder" calibration_stills
check "demo clip: 240 frames and tracks.json in /usr/share/edgesort/demo_clip, nothing else" demo_clip
check "/etc/edgesort/line/edgesort.toml is a conffile" is_conffile /etc/edgesort/line/edgesort.toml
check "/etc/edgesort/system.toml is a conffile" is_conffile /etc/edgesort/system.toml
check "/etc/edgesort/system.toml root:root 644" owner_mode /etc/edgesort/system.toml "root:root 644"
check "system user edgesort (nologin, group edgesort)" user_is_system
check "groups gpio, video, render, edgesort exist" groups_exist
check "$data edgesort:edgesort 750" owner_mode "$data" "edgesort:edgesort 750"
check "$data/ota root:root 755" owner_mode "$data/ota" "root:root 755"
check "/etc/edgesort root:root 755 (root's settings beside it)" owner_mode /etc/edgesort "root:root 755"
check "/etc/edgesort/line edgesort:edgesort 755 (PUT /config)" owner_mode /etc/edgesort/line "edgesort:edgesort 755"
check "units enabled: ${units[*]}" units_enabled
check "edgesort --version runs under qemu" runs "$v1"
check "the installed config loads with its pin map" config_loads
check "ota recover --factory makes slot a with model and stills" factory_slot

echo "== edit the config, upgrade to $v2 keeping it"
echo "$edited" >>"$root/etc/edgesort/line/edgesort.toml"
# Root's settings edited (so dpkg keeps them) and handed to the daemon's
# user, group- and world-writable: postinst must make them root's again.
echo "$edited" >>"$root/etc/edgesort/system.toml"
in_root chown edgesort:edgesort /etc/edgesort/system.toml
chmod 0666 "$root/etc/edgesort/system.toml"
dpkg_step upgrade-v2 -i --force-confold /tmp/edgesort-v2.deb
check "version $v2 installed" [ "$(installed_version)" = "$v2 ii " ]
check "edited config kept" config_kept
check "edited system.toml kept, root:root 644 again (postinst)" \
    eval 'grep -qx "$edited" "$root/etc/edgesort/system.toml" && owner_mode /etc/edgesort/system.toml "root:root 644"'
check "$v2's config beside it as edgesort.toml.dpkg-dist" v2_default_beside
check "units still enabled" units_enabled
check "edgesort --version runs" runs "$v2"
check "update slot still committed" slot_committed

echo "== remove"
dpkg_step remove -r edgesort
check "package in config-files state" [ "$(installed_version)" = "$v2 rc " ]
check "binaries gone" [ ! -e "$root/usr/bin/edgesort" ]
check "edited config kept" config_kept
check "data partition kept" slot_committed

echo "== purge"
# What a daemon killed while saving PUT /config leaves; dpkg knows nothing of it.
touch "$root/etc/edgesort/line/.partial-config"
dpkg_step purge -P edgesort
check "package gone" [ -z "$(in_root dpkg-query -W -f '${db:Status-Abbrev}' edgesort 2>/dev/null)" ]
check "/etc/edgesort gone (.dpkg-dist, daemon leftovers included)" [ ! -e "$root/etc/edgesort" ]
check "data partition emptied, its mount point kept" data_emptied
check "enablement links and deb-systemd-helper state gone" no_enablement_left
check "udev rule gone" [ ! -e "$root/lib/udev/rules.d/99-edgesort-gpio.rules" ]
check "user edgesort kept (policy)" user_kept

echo "== $((SECONDS - started)) s, $failures failed"
[ "$failures" -eq 0 ]

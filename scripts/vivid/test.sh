#!/bin/bash
# The V4L2 capture path against a real V4L2 driver: builds edgesort-capture's
# vivid test as a static binary, boots Debian's 6.12 kernel in qemu
# (scripts/vm/), loads the kernel's vivid test driver with one video capture
# node, and runs the test there. About 1 min once the kernel package is cached
# in target/vm (the first run downloads ~110 MB from Debian).
#
# Usage: [EDGESORT_BIN=target/debug/edgesort] scripts/vivid/test.sh
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "$REPO"
source scripts/vm/kernel.sh
vm_extract_modules "$VM_WORK/modules-vivid" vivid

BINARY=$(scripts/vm/test-binary.sh edgesort-capture vivid)

# The command line a technician uses, stripped: the debug build is ~600 MB.
# EDGESORT_BIN names one already built: `cargo test --workspace` builds it with
# the workspace's features, which `cargo build -p edgesort` would not reuse.
if [ -z "${EDGESORT_BIN:-}" ]; then
    cargo build -q -p edgesort
    EDGESORT_BIN=target/debug/edgesort
fi
TOOLS=$(mktemp -d)
SETUP=$(mktemp)
trap 'rm -rf "$SETUP" "$TOOLS"' EXIT
strip -o "$TOOLS/edgesort" "$EDGESORT_BIN"
mkdir -p "$TOOLS/add/etc/modprobe.d"
cp -r board "$TOOLS/add/board"
# One vivid instance with only a video capture node (node_types bit 0), its
# webcam input first: discrete sizes and frame intervals, like a UVC camera.
# In modprobe.d (busybox's modprobe reads it), so that a test which reloads
# the driver with a plain `modprobe vivid` gets the same device back.
echo "options vivid n_devs=1 node_types=0x1" > "$TOOLS/add/etc/modprobe.d/vivid.conf"
cat > "$SETUP" <<'FRAGMENT'
# The video capture node: vivid names it vivid-NNN-vid-cap.
vivid_node() {
    for node in /sys/class/video4linux/video*; do
        grep -q 'vid-cap' "$node/name" 2>/dev/null && echo "/dev/${node##*/}"
    done
}
modprobe vivid || fail "modprobe vivid"
export VIVID_VIDEO=$(vivid_node)
[ -n "$VIVID_VIDEO" ] && [ -c "$VIVID_VIDEO" ] || fail "no vivid capture node"
echo "== vivid capture node $VIVID_VIDEO: $(cat /sys/class/video4linux/${VIVID_VIDEO#/dev/}/name)"
# Unloading (with the modules only vivid used) and reloading gives it back.
modprobe -r vivid || fail "modprobe -r vivid"
[ ! -e "$VIVID_VIDEO" ] || fail "$VIVID_VIDEO still there after modprobe -r vivid"
modprobe vivid || fail "modprobe vivid, again"
[ "$(vivid_node)" = "$VIVID_VIDEO" ] || fail "the reloaded vivid has no $VIVID_VIDEO"
echo "   the same after modprobe -r vivid; modprobe vivid"

# The commissioning commands, on the bundled configuration (640x360, 60 fps).
echo "== edgesort camera list"
edgesort camera list --device $VIVID_VIDEO > /tmp/list || fail "camera list"
head -3 /tmp/list; grep -E '^    640x360: ' /tmp/list | head -1; grep -c '^    0x' /tmp/list
grep -q '^  YUYV (YUYV 4:2:2)$' /tmp/list || fail "camera list shows no YUYV"
grep -q 'Gain: 0..=255' /tmp/list || fail "camera list shows no gain control"
echo "== edgesort camera snap"
edgesort camera snap --device $VIVID_VIDEO --config /board/edgesort.toml --out /tmp/frame.jpg \
    || fail "camera snap"
[ "$(head -c 2 /tmp/frame.jpg | od -An -tx1 | tr -d ' ')" = ffd8 ] || fail "snap wrote no JPEG"
echo "   $(wc -c < /tmp/frame.jpg) bytes of JPEG"
echo "== edgesort camera stream"
edgesort camera stream --device $VIVID_VIDEO --config /board/edgesort.toml --seconds 3 \
    > /tmp/stream || fail "camera stream"
cat /tmp/stream
grep -q '^camera rate ' /tmp/stream || fail "camera stream measured no rate"
echo "== a missing device"
edgesort camera snap --device /dev/video99 --config /board/edgesort.toml --out /tmp/none.jpg \
    2> /tmp/missing && fail "snap of a missing device succeeded"
cat /tmp/missing
grep -q '^error: no camera at /dev/video99' /tmp/missing || fail "missing device not named"
FRAGMENT
TEST_ARGS="--ignored --test-threads 1 --nocapture" MEMORY=1G \
    scripts/vm/run.sh --name vivid --setup "$SETUP" --modules "$VM_WORK/modules-vivid" \
    --tool "$TOOLS/edgesort" --add "$TOOLS/add" "$BINARY"

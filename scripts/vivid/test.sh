#!/bin/bash
# The V4L2 capture path against a real V4L2 driver: builds edgesort-capture's
# vivid test as a static binary, boots Debian's 6.12 kernel in qemu
# (scripts/vm/), loads the kernel's vivid test driver with one video capture
# node, and runs the test there. Before it, the technician's commands: the
# CLI's `camera list|snap|stream`, then scripts/hw-selftest.sh's camera
# section while edgesortd streams from the same node (the self-test must stop
# the line first, and start it again). About 1 min once the kernel package
# is cached in target/vm (the first run downloads ~110 MB from Debian).
#
# Usage: [EDGESORT_BIN=target/debug/edgesort] [EDGESORTD_BIN=target/debug/edgesortd]
#        scripts/vivid/test.sh
# EDGESORTD_BIN defaults to the edgesortd beside EDGESORT_BIN.
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "$REPO"
source scripts/vm/kernel.sh
vm_extract_modules "$VM_WORK/modules-vivid" vivid

BINARY=$(scripts/vm/test-binary.sh edgesort-capture vivid)

# The command line a technician uses and the daemon, stripped: the debug
# builds are ~600 MB each. EDGESORT_BIN names one already built: `cargo test
# --workspace` builds both with the workspace's features, which `cargo build
# -p edgesort` would not reuse.
if [ -z "${EDGESORT_BIN:-}" ]; then
    cargo build -q -p edgesort -p edgesortd
    EDGESORT_BIN=target/debug/edgesort
fi
EDGESORTD_BIN=${EDGESORTD_BIN:-$(dirname "$EDGESORT_BIN")/edgesortd}
[ -x "$EDGESORTD_BIN" ] || { echo "no edgesortd at $EDGESORTD_BIN (set EDGESORTD_BIN)" >&2; exit 1; }
TOOLS=$(mktemp -d)
SETUP=$(mktemp)
trap 'rm -rf "$SETUP" "$TOOLS"' EXIT
strip -o "$TOOLS/edgesort" "$EDGESORT_BIN"
strip -o "$TOOLS/edgesortd" "$EDGESORTD_BIN"
# The self-test as a box runs it: bash (with the libraries the host's ldd
# names) through its #!/usr/bin/env line, and systemctl, which the VM has
# not: a stand-in that starts and stops edgesortd by pid (read it).
cp scripts/hw-selftest.sh "$TOOLS/hw-selftest.sh"
cp scripts/vivid/systemctl-standin.sh "$TOOLS/systemctl"
mkdir -p "$TOOLS/add/etc/modprobe.d" "$TOOLS/add/usr/bin" "$TOOLS/add/models"
ln -s /bin/busybox "$TOOLS/add/usr/bin/env"
cp -r board "$TOOLS/add/board"
# The daemon's configuration (board/edgesort.toml) reads ../models/.
cp models/sorter_yolov8n_dynamic.onnx "$TOOLS/add/models/"
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

# scripts/hw-selftest.sh's camera section on a box whose line runs: edgesortd
# streams from the vivid node (the demo configuration with the node as its
# camera, simulated ejectors), started and stopped through the systemctl
# stand-in as systemd would.
echo "== edgesortd holding $VIVID_VIDEO"
ip link set lo up || fail "ip link set lo up"
mkdir -p /var/lib/edgesort
# One vCPU under TCG, where the daemon only has to hold the camera: a
# 160 px model input (a stop waits for the frame in hand, and TCG's speed
# at tract's kernels differs several times between hosts), and no SCHED_FIFO ejector thread competing with the
# commands under test (the pins are simulated anyway).
sed -e "s|^replay = .*|device = \"$VIVID_VIDEO\"|" -e '/^replay_loop = /d' \
    -e 's|^input_size = .*|input_size = 160|' -e 's|^realtime_priority = .*|realtime_priority = 0|' \
    /board/edgesort.toml > /board/vivid.toml
grep -qx "device = \"$VIVID_VIDEO\"" /board/vivid.toml || fail "no camera.device in /board/vivid.toml"
grep -q '^replay' /board/vivid.toml && fail "/board/vivid.toml still replays a clip"
cat > /etc/edgesortd-standin.conf <<CONF
EXEC_START="edgesortd --config /board/vivid.toml --simulate-gpio --data-dir /tmp/edgesortd-data --bind 127.0.0.1:8099"
READY_URL=http://127.0.0.1:8099/
# Under TCG the debug daemon loads its model slowly, and its CPU detector
# finishes the frame in hand when told to stop: at 160 px that took 49 and
# 53 s on a CI-like host whose TCG ran a 320 px frame in over 3 minutes
# (where 10 s had been measured before).
START_TIMEOUT=180
STOP_TIMEOUT=180
CONF
# edgesortd logs each camera state change; "streaming" once its buffers are
# allocated, which is when another process's camera open answers EBUSY. Only
# the daemon's latest start counts.
streaming() {
    awk '/^-- systemctl \(stand-in\): starting/ { n = 0 } /state="streaming"/ { n++ }
        END { print n + 0 }' /var/log/edgesortd.log 2>/dev/null || echo 0
}
wait_streaming() {
    waited=0
    while [ "$(streaming)" = 0 ]; do
        [ $waited -lt 120 ] || { tail -n 20 /var/log/edgesortd.log; fail "edgesortd not streaming after 120 s"; }
        sleep 1; waited=$((waited + 1))
    done
    echo "   edgesortd streaming from $VIVID_VIDEO (${waited} s)"
}
# The CLI is turned away while the daemon streams, naming the cause.
camera_busy() {
    edgesort camera snap --config /board/vivid.toml --out /tmp/busy.jpg 2> /tmp/busy \
        && fail "camera snap succeeded while edgesortd streams"
    cat /tmp/busy
    grep -q "^error: camera $VIVID_VIDEO is busy" /tmp/busy || fail "camera snap did not say the camera is busy"
}
started=$(date +%s)
systemctl start edgesortd.service || { tail -n 20 /var/log/edgesortd.log; fail "systemctl start edgesortd.service"; }
first_pid=$(cat /run/edgesortd.pid)
echo "   ready in $(($(date +%s) - started)) s (pid $first_pid)"
wait_streaming
echo "== edgesort camera snap while edgesortd streams"
camera_busy

echo "== hw-selftest.sh --only camera (as root)"
started=$(date +%s)
hw-selftest.sh --only camera --config /board/vivid.toml --skip-engine --yes > /tmp/selftest.out 2>&1
rc=$?
cat /tmp/selftest.out
echo "   exit $rc after $(($(date +%s) - started)) s"
[ $rc = 0 ] || fail "hw-selftest.sh exited $rc"
report=$(ls /var/lib/edgesort/selftest-*.md)
[ -f "$report" ] || fail "no report in /var/lib/edgesort"
grep -q '^edgesortd was running: the line is stopped before the camera checks' "$report" \
    || { tail -n 30 /var/log/edgesortd.log; fail "the report does not say the line was stopped before the camera checks"; }
for command in "camera list" "camera stream" "camera snap"; do
    # The command's line, and its exit line after its output.
    awk -v command="\$ edgesort $command" 'index($0, command) == 1 { found = 1 }
        found && /^\(exit / { print; exit }' "$report" | grep -qx '(exit 0)' \
        || fail "hw-selftest: edgesort $command did not exit 0"
done
grep -q "^$VIVID_VIDEO: .*(driver vivid" "$report" || fail "hw-selftest: camera list shows no vivid camera"
grep -q '^camera rate ' "$report" || fail "hw-selftest: camera stream measured no rate"
[ "$(head -c 2 "${report%.md}-focus.jpg" | od -An -tx1 | tr -d ' ')" = ffd8 ] \
    || fail "hw-selftest: no focus JPEG beside the report"
grep -q 'busy' "$report" && fail "the report shows the camera busy"
grep -qx 'edgesortd started again: the line runs.' "$report" || fail "the report does not say edgesortd started again"
grep -qx 'All 3 commands exited 0.' "$report" || fail "the report's summary is not all commands exited 0"
echo "   report $report: line stopped before the camera checks, list/stream/snap exit 0, line started again"

echo "== edgesortd after the self-test"
systemctl is-active --quiet edgesortd.service || fail "edgesortd is not running after the self-test"
[ "$(cat /run/edgesortd.pid)" != "$first_pid" ] || fail "edgesortd was never restarted"
echo "   active again, pid $(cat /run/edgesortd.pid) (was $first_pid)"
wait_streaming
camera_busy
# The VM tests below need the camera.
systemctl stop edgesortd.service || fail "systemctl stop edgesortd.service"
edgesort camera snap --config /board/vivid.toml --out /tmp/free.jpg > /dev/null \
    || fail "camera snap after edgesortd stopped"
echo "   stopped; the camera is free again. What the systemctl stand-in did:"
grep '^-- systemctl (stand-in)' /var/log/edgesortd.log | sed 's/^-- systemctl (stand-in): /   /'
FRAGMENT
# The daemon's CPU detector and two debug binaries need more than 1 GiB.
TEST_ARGS="--ignored --test-threads 1 --nocapture" MEMORY=${MEMORY:-2G} QEMU_TIMEOUT=${QEMU_TIMEOUT:-600} \
    scripts/vm/run.sh --name vivid --setup "$SETUP" --modules "$VM_WORK/modules-vivid" \
    --tool "$TOOLS/edgesort" --tool "$TOOLS/edgesortd" --tool "$TOOLS/hw-selftest.sh" \
    --tool "$TOOLS/systemctl" --tool /bin/bash --add "$TOOLS/add" "$BINARY"

#!/usr/bin/env bash
# Hardware self-test for the first technician with a real box: GPU and
# TensorRT versions, the time this box takes to build its engine, the
# camera, and every ejector by a pulse the technician watches. It prints a
# Markdown report to paste into an issue, and keeps a copy on the data
# partition.
#
#   sudo scripts/hw-selftest.sh [--config FILE] [--skip-engine] [--pulse-ms MS] [--yes]
#
#   --config FILE   the box's configuration (default /etc/edgesort/edgesort.toml)
#   --skip-engine   do not time an engine build (it takes 5-10 minutes on an
#                   Orin Nano); the engine in service is still reported
#   --pulse-ms MS   length of each test pulse (default 20, at most the
#                   configuration's safety.max_pulse_ms)
#   --yes           do not ask whether each ejector fired (the report then
#                   says "not watched")
#
# The line stops for the GPIO part: the ejector pins belong to edgesortd
# while it runs. It is started again when the test ends, however it ends.
# The engine build goes to a scratch folder, so the engine in service and
# its stamp are left as they were.
set -euo pipefail

config=/etc/edgesort/edgesort.toml
time_engine=true
pulse_ms=20
ask=true
while [ $# -gt 0 ]; do
    case "$1" in
        --config) config=$2; shift 2 ;;
        --skip-engine) time_engine=false; shift ;;
        --pulse-ms) pulse_ms=$2; shift 2 ;;
        --yes) ask=false; shift ;;
        *) echo "usage: $0 [--config FILE] [--skip-engine] [--pulse-ms MS] [--yes]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "run it as root: it stops the line and opens the GPIO chips" >&2; exit 2; }
command -v edgesort >/dev/null || { echo "edgesort is not installed (no edgesort on PATH)" >&2; exit 2; }
[ -r "$config" ] || { echo "cannot read the configuration $config" >&2; exit 2; }

data_dir=/var/lib/edgesort
report=$data_dir/selftest-$(date -u +%Y%m%dT%H%M%SZ).md
scratch=$(mktemp -d "$data_dir/selftest.XXXXXX")
line_was_running=false
finish() {
    rm -rf "$scratch"
    if $line_was_running; then
        systemctl start edgesortd.service || echo "could not restart edgesortd: start it by hand" >&2
    fi
}
trap finish EXIT

# Each section's command and its output, verbatim, so a reader of the issue
# sees what the box said rather than a summary of it.
section() { printf '\n## %s\n' "$1" | tee -a "$report"; }
# A failing command is part of the report, not the end of the test; its
# status is left in $status for the caller.
status=0
record() {
    status=0
    printf '\n```\n$ %s\n' "$*" | tee -a "$report"
    "$@" 2>&1 | tee -a "$report" || status=${PIPESTATUS[0]}
    printf '(exit %s)\n```\n' "$status" | tee -a "$report"
}
note() { printf '%s\n' "$*" | tee -a "$report"; }

printf '# edgesort hardware self-test\n' | tee "$report"
note ""
note "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
note "- box: $(tr -d '\0' </proc/device-tree/model 2>/dev/null || echo unknown)"
note "- L4T: $(head -1 /etc/nv_tegra_release 2>/dev/null || echo 'no /etc/nv_tegra_release')"
note "- kernel: $(uname -r)"
note "- edgesort: $(edgesort --version)"
note "- configuration: $config"

section "GPU and TensorRT"
# The probe provisioning itself uses: GPU, compute capability, memory,
# TensorRT and CUDA versions, DLA cores, and the engine plan for this box.
record edgesort provision --dry-run --config "$config"
record edgesort status --config "$config"

section "Engine build time"
if $time_engine; then
    note "A full build into a scratch folder (calibration, build, validation):"
    started=$(date +%s)
    record edgesort provision --config "$config" --data-dir "$scratch"
    note "Wall time: $(($(date +%s) - started)) s"
else
    note "Skipped (--skip-engine)."
fi

section "Camera"
record edgesort camera list
record edgesort camera stream --config "$config" --seconds 10
record edgesort camera snap --config "$config" --out "${report%.md}-focus.jpg"

section "Ejectors"
if systemctl is-active --quiet edgesortd.service; then
    line_was_running=true
    note "edgesortd was running; stopped for the pulses, restarted at the end."
    systemctl stop edgesortd.service
fi
record edgesort gpio list --check --config "$config"
# `gpio list` marks each header pin the configuration wires to an ejector.
mapfile -t ejectors < <(edgesort gpio list --config "$config" |
    awk '/ejector "/ { match($0, /ejector "[^"]*"/); print $1, substr($0, RSTART + 9, RLENGTH - 10) }')
[ ${#ejectors[@]} -gt 0 ] || note "The configuration wires no ejector."
for ejector in "${ejectors[@]}"; do
    pin=${ejector%% *} lane=${ejector#* }
    while true; do
        record edgesort gpio pulse --config "$config" --pin "$pin" --ms "$pulse_ms"
        if [ "$status" != 0 ]; then
            note "- pin $pin ($lane): PULSE FAILED (exit $status, above)"
            break
        fi
        if ! $ask; then
            note "- pin $pin ($lane): pulsed, not watched"
            break
        fi
        read -r -p "Did the \"$lane\" ejector (pin $pin) fire? [y]es / [n]o / [r]epeat: " answer
        case "$answer" in
            y*) note "- pin $pin ($lane): fired"; break ;;
            n*) note "- pin $pin ($lane): DID NOT FIRE"; break ;;
        esac
    done
done

echo
echo "Report saved to $report: paste it into the issue."

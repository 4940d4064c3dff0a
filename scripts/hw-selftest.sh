#!/usr/bin/env bash
# Hardware self-test for the first technician with a real box: GPU and
# TensorRT versions, the time this box takes to build its engine, the
# camera, and every ejector by a pulse the technician watches. It prints a
# Markdown report to paste into an issue, and keeps a copy on the data
# partition.
#
#   sudo scripts/hw-selftest.sh [--config FILE] [--only SECTIONS] [--skip-engine]
#                               [--pulse-ms MS] [--yes]
#
#   --config FILE     the box's configuration (default /etc/edgesort/line/edgesort.toml)
#   --only SECTIONS   run only these sections, comma-separated, out of gpu,
#                     engine, camera and ejectors (default: all four, in that
#                     order)
#   --skip-engine     do not time an engine build (it takes 5-10 minutes on an
#                     Orin Nano); the engine in service is still reported
#   --pulse-ms MS     length of each test pulse (default 20, at most the
#                     configuration's safety.max_pulse_ms)
#   --yes             do not ask whether each ejector fired (the report then
#                     says "not watched")
#
# The line stops before the camera checks: edgesortd streams from the camera
# (a V4L2 capture node streams to one process at a time, so `camera stream`
# and `camera snap` would find it busy) and owns the ejector pins while it
# runs. It is started again when the test ends, however it ends. The GPU and
# engine sections run beside the line. The engine build goes to a scratch
# folder, so the engine in service and its stamp are left as they were.
#
# The report ends with every command that failed, or says that none did; the
# exit status is 0 either way once the report is written.
set -euo pipefail

config=/etc/edgesort/line/edgesort.toml
sections=gpu,engine,camera,ejectors
time_engine=true
pulse_ms=20
ask=true
while [ $# -gt 0 ]; do
    case "$1" in
        --config) config=$2; shift 2 ;;
        --only) sections=$2; shift 2 ;;
        --skip-engine) time_engine=false; shift ;;
        --pulse-ms) pulse_ms=$2; shift 2 ;;
        --yes) ask=false; shift ;;
        *) echo "usage: $0 [--config FILE] [--only gpu,engine,camera,ejectors] [--skip-engine] [--pulse-ms MS] [--yes]" >&2; exit 2 ;;
    esac
done
for wanted in ${sections//,/ }; do
    case "$wanted" in
        gpu | engine | camera | ejectors) ;;
        *) echo "--only: no section \"$wanted\" (gpu, engine, camera, ejectors)" >&2; exit 2 ;;
    esac
done
# Whether the section named $1 was asked for.
wants() { case ",$sections," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
[ "$(id -u)" = 0 ] || { echo "run it as root: it stops the line and opens the GPIO chips" >&2; exit 2; }
command -v edgesort >/dev/null || { echo "edgesort is not installed (no edgesort on PATH)" >&2; exit 2; }
[ -r "$config" ] || { echo "cannot read the configuration $config" >&2; exit 2; }

data_dir=/var/lib/edgesort
report=$data_dir/selftest-$(date -u +%Y%m%dT%H%M%SZ).md
scratch=$(mktemp -d "$data_dir/selftest.XXXXXX")
line_stopped=false
# Stops edgesortd, once, before the first section that needs what it holds
# (named in $1), and says so in the report.
stop_line() {
    $line_stopped && return 0
    if systemctl is-active --quiet edgesortd.service; then
        # Set first: whatever happens next, the end of the test starts it.
        line_stopped=true
        if systemctl stop edgesortd.service; then
            note "edgesortd was running: the line is stopped before $1 (edgesortd streams from the camera and owns the ejector pins), and started again when the test ends."
        else
            note "edgesortd was running and COULD NOT BE STOPPED: the camera and the ejector pins below may be busy."
            failed+=("\`systemctl stop edgesortd.service\`: failed")
        fi
    else
        note "edgesortd is not running: nothing holds the camera or the ejector pins."
    fi
}
# Starts the line again if this test stopped it; also run on any exit.
restart_line() {
    $line_stopped || return 0
    line_stopped=false
    if systemctl start edgesortd.service; then
        note "edgesortd started again: the line runs."
    else
        note "COULD NOT START edgesortd AGAIN: start it by hand (systemctl start edgesortd.service)."
        failed+=("\`systemctl start edgesortd.service\`: failed")
    fi
}
finish() {
    restart_line
    rm -rf "$scratch"
}
trap finish EXIT

# Each section's command and its output, verbatim, so a reader of the issue
# sees what the box said rather than a summary of it.
section() { printf '\n## %s\n' "$1" | tee -a "$report"; }
# A failing command is part of the report, not the end of the test; its
# status is left in $status for the caller.
status=0
commands=0
failed=()
record() {
    status=0
    commands=$((commands + 1))
    printf '\n```\n$ %s\n' "$*" | tee -a "$report"
    "$@" 2>&1 | tee -a "$report" || status=${PIPESTATUS[0]}
    printf '(exit %s)\n```\n' "$status" | tee -a "$report"
    [ "$status" = 0 ] || failed+=("\`$*\`: exit $status")
}
note() { printf '%s\n' "$*" | tee -a "$report"; }

printf '# edgesort hardware self-test\n' | tee "$report"
note ""
note "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
note "- box: $(tr -d '\0' 2>/dev/null </proc/device-tree/model || echo unknown)"
note "- L4T: $(head -1 /etc/nv_tegra_release 2>/dev/null || echo 'no /etc/nv_tegra_release')"
note "- kernel: $(uname -r)"
note "- edgesort: $(edgesort --version)"
note "- configuration: $config"
note "- sections: ${sections//,/, }"

if wants gpu; then
    section "GPU and TensorRT"
    # The probe provisioning itself uses: GPU, compute capability, memory,
    # TensorRT and CUDA versions, DLA cores, and the engine plan for this box.
    record edgesort provision --dry-run --config "$config"
    record edgesort status --config "$config"
fi

if wants engine; then
    section "Engine build time"
    if $time_engine; then
        note "A full build into a scratch folder (calibration, build, validation):"
        started=$(date +%s)
        record edgesort provision --config "$config" --data-dir "$scratch"
        note "Wall time: $(($(date +%s) - started)) s"
    else
        note "Skipped (--skip-engine)."
    fi
fi

if wants camera; then
    section "Camera"
    stop_line "the camera checks"
    record edgesort camera list
    record edgesort camera stream --config "$config" --seconds 10
    record edgesort camera snap --config "$config" --out "${report%.md}-focus.jpg"
fi

if wants ejectors; then
    section "Ejectors"
    stop_line "the pulses"
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
fi

if $line_stopped; then
    section "The line"
    restart_line
fi

section "Summary"
if [ ${#failed[@]} -eq 0 ]; then
    note "All $commands commands exited 0."
else
    note "${#failed[@]} of $commands commands failed:"
    for command in "${failed[@]}"; do note "- $command"; done
fi

echo
echo "Report saved to $report: paste it into the issue."

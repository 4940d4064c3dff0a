#!/bin/sh
# NOT systemd. A stand-in for `systemctl`, installed as /bin/systemctl in the
# VM of scripts/vivid/test.sh only: that VM boots a busybox initramfs with no
# init system, and scripts/hw-selftest.sh stops and starts the line through
# systemctl. It knows one unit, edgesortd.service, and the three verbs the
# self-test uses, each doing what systemd does for that unit
# (board/systemd/edgesortd.service), by the daemon's pid:
#
#   systemctl start edgesortd.service
#       starts the daemon in the background and returns once it serves its
#       status page (systemd's Type=notify start returns at READY=1, which
#       edgesortd sends just before it serves the API); fails if it exits
#       first or is not ready within START_TIMEOUT seconds
#   systemctl stop edgesortd.service
#       SIGTERM, then waits until the process has gone; SIGKILL after
#       STOP_TIMEOUT seconds (the unit's TimeoutStopSec=15), and then fails,
#       so that a test sees a daemon that does not stop in order
#   systemctl is-active [--quiet] edgesortd.service
#       exit 0 and "active" while the daemon runs, 3 and "inactive" if not
#
# /etc/edgesortd-standin.conf (sourced) gives the daemon's command line, the
# unit's ExecStart=, and the page that answers once it is ready:
#   EXEC_START="edgesortd --config /board/vivid.toml --bind 127.0.0.1:8099 ..."
#   READY_URL=http://127.0.0.1:8099/
#   START_TIMEOUT=90  STOP_TIMEOUT=15   (optional; systemd's and the unit's)
# The pid is kept in /run/edgesortd.pid and the daemon's output appended to
# /var/log/edgesortd.log (the journal's part).
set -u
CONF=/etc/edgesortd-standin.conf
PIDFILE=/run/edgesortd.pid
LOG=/var/log/edgesortd.log
START_TIMEOUT=90
STOP_TIMEOUT=15
# shellcheck source=/dev/null
. "$CONF" || { echo "systemctl (stand-in): cannot read $CONF" >&2; exit 1; }

# Whether the recorded pid is a live process. A daemon that has exited but
# not been reaped yet (its parent is the VM's /init shell) is a zombie, which
# `kill -0` would still find: read its state instead.
alive() {
    [ -s "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE")
    state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ]
}

start() {
    alive && return 0
    mkdir -p "$(dirname "$PIDFILE")" "$(dirname "$LOG")"
    echo "-- systemctl (stand-in): starting edgesortd.service: $EXEC_START" >>"$LOG"
    # shellcheck disable=SC2086 # EXEC_START is a command line, split as systemd would
    $EXEC_START >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    waited=0
    # Not wget's own -T: Debian bookworm's busybox-static wget crashes on it.
    while ! timeout 5 wget -q -O /dev/null "$READY_URL" 2>/dev/null; do
        if ! alive; then
            echo "systemctl (stand-in): edgesortd.service exited while starting; its last lines:" >&2
            tail -n 20 "$LOG" >&2
            return 1
        fi
        if [ "$waited" -ge "$START_TIMEOUT" ]; then
            echo "systemctl (stand-in): edgesortd.service not ready after $START_TIMEOUT s" >&2
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    echo "-- systemctl (stand-in): edgesortd.service ready (pid $(cat "$PIDFILE"), ${waited} s)" >>"$LOG"
}

stop() {
    alive || { rm -f "$PIDFILE"; return 0; }
    pid=$(cat "$PIDFILE")
    echo "-- systemctl (stand-in): stopping edgesortd.service (SIGTERM to $pid)" >>"$LOG"
    kill -TERM "$pid"
    waited=0
    while alive; do
        if [ "$waited" -ge "$STOP_TIMEOUT" ]; then
            echo "systemctl (stand-in): edgesortd.service still running $STOP_TIMEOUT s after SIGTERM: SIGKILL" >&2
            kill -KILL "$pid"
            rm -f "$PIDFILE"
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    rm -f "$PIDFILE"
    echo "-- systemctl (stand-in): edgesortd.service stopped (${waited} s)" >>"$LOG"
}

quiet=false
verb=
unit=
for arg in "$@"; do
    case "$arg" in
        --quiet | -q) quiet=true ;;
        start | stop | is-active) verb=$arg ;;
        edgesortd.service | edgesortd) unit=edgesortd.service ;;
        *) echo "systemctl (stand-in): only start, stop and is-active [--quiet] of edgesortd.service, not \"$arg\"" >&2; exit 1 ;;
    esac
done
if [ -z "$verb" ] || [ -z "$unit" ]; then
    echo "usage: systemctl start|stop|is-active [--quiet] edgesortd.service (stand-in)" >&2
    exit 1
fi

case "$verb" in
    start) start ;;
    stop) stop ;;
    is-active)
        if alive; then
            $quiet || echo active
        else
            $quiet || echo inactive
            exit 3
        fi
        ;;
esac

#!/bin/bash
# Checks the systemd units in board/systemd/ without installing them:
#  - `systemd-analyze verify` on every unit: unknown keys, values that do not
#    parse, missing dependencies. It exits 0 on most of these and only prints
#    them, so any output counts as a failure. Our binaries are not installed
#    here, so ExecStart's /usr/bin/edgesort* is swapped for /bin/true first.
#  - `systemd-analyze security --offline=true` on each service in CEILINGS:
#    fails if its exposure score rises above the unit's ceiling (in tenths:
#    20 is 2.0). Each ceiling sits 0.3 above the score the unit had when it
#    was last tightened (edgesortd 1.7, edgesort-provision 0.7,
#    edgesort-ota-install 2.1); loosening a setting means raising its
#    ceiling on purpose, in the same change.
#    systemd calls 4.9 and below OK and up to 6.9 MEDIUM; issue 23 asks for
#    no worse than MEDIUM.
# Needs systemd-analyze 250 or later (Debian 12 has 252). Exits 0 when all
# pass, 1 when a check fails, 2 when it cannot check.
set -euo pipefail
cd "$(dirname "$0")/.."

CEILINGS=(
    edgesortd.service=20
    edgesort-provision.service=10
    edgesort-ota-install.service=24
)
UNITS=(board/systemd/*.service board/systemd/*.path)

command -v systemd-analyze >/dev/null || { echo "check-unit: no systemd-analyze" >&2; exit 2; }
version=$(systemd-analyze --version | awk 'NR == 1 { print $2 }')
[ "${version%%[!0-9]*}" -ge 250 ] || { echo "check-unit: systemd $version is older than 250 (no --offline)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

# Copied together: a path unit is checked against the service it starts.
for unit in "${UNITS[@]}"; do
    sed -E 's#^(Exec[A-Za-z]+=[-@:+!]*)/usr/bin/edgesort[a-z]*#\1/bin/true#' "$unit" > "$work/$(basename "$unit")"
done
for unit in "${UNITS[@]}"; do
    name=$(basename "$unit")
    if out=$(systemd-analyze verify --man=no "$work/$name" 2>&1) && [ -z "$out" ]; then
        echo "ok    verify $name"
    else
        echo "FAIL  verify $name"
        printf '%s\n' "${out//$work\//board/systemd/}" | sed 's/^/      /'
        failed=1
    fi
done

for entry in "${CEILINGS[@]}"; do
    name=${entry%=*}
    ceiling=${entry#*=}
    unit=board/systemd/$name
    limit="$((ceiling / 10)).$((ceiling % 10))"
    if [ ! -f "$unit" ]; then
        echo "FAIL  security $name: no such unit"
        failed=1
    elif out=$(systemd-analyze security --offline=true --no-pager --threshold="$ceiling" "$unit" 2>&1); then
        echo "ok    security $name: $(printf '%s\n' "$out" | grep -o 'exposure level.*' || true) (limit $limit)"
    else
        echo "FAIL  security $name, limit $limit:"
        printf '%s\n' "$out" | grep -E '^✗|exposure level|rror' | sed -E 's/ {2,}/  /g; s/^/      /'
        failed=1
    fi
done
exit $failed

#!/usr/bin/env bash
# Checks the Yocto layer without building it (a build needs the Yocto and
# GitHub mirrors and about a day):
#   1. edgesort-crates.inc is what cargo-update-recipe-crates writes from
#      Cargo.lock (scripts/yocto-crates-inc.py --check);
#   2. every kas file passes kas's own loader: its config schema, the file
#      version, and the includes, resolved and merged as `kas build` does
#      (no repository is cloned);
#   3. oelint-adv finds nothing in meta-edgesort.
#
#   scripts/check-yocto.sh
#
# kas and oelint-adv are installed at pinned versions into a virtual
# environment under target/ (YOCTO_CHECK_VENV to put it elsewhere) on the
# first run; that needs PyPI. Python 3.11 or newer.
set -euo pipefail
cd "$(dirname "$0")/.."

KAS_VERSION=5.5
OELINT_VERSION=9.11.2
venv=${YOCTO_CHECK_VENV:-target/yocto-check-venv}

if ! "$venv/bin/python" -c "import kas, oelint_adv" 2>/dev/null ||
    [ "$("$venv/bin/kas" --version 2>&1 | awk '{print $2}')" != "$KAS_VERSION" ] ||
    [ "$("$venv/bin/oelint-adv" --version 2>&1 | awk '{print $2}')" != "$OELINT_VERSION" ]; then
    echo ">> installing kas $KAS_VERSION and oelint-adv $OELINT_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "kas==$KAS_VERSION" "oelint-adv==$OELINT_VERSION"
fi

echo ">> crates .inc against Cargo.lock"
python3 scripts/yocto-crates-inc.py --check

echo ">> kas files"
# kas looks for its work and build folders in the environment; nothing is
# written there by loading the configuration.
kas_scratch=$(mktemp -d)
trap 'rm -rf "$kas_scratch"' EXIT
for file in yocto/kas/*.yml; do
    KAS_WORK_DIR=$kas_scratch "$venv/bin/python" - "$file" <<'EOF'
import sys

from kas.context import create_global_context
from kas.includehandler import IncludeHandler
from kas.kas import kas_get_argparser

file = sys.argv[1]
create_global_context(kas_get_argparser().parse_args(["dump", file]))
# Raises on a schema violation, an unsupported file version or a missing
# include, naming the file.
config, missing = IncludeHandler([file], use_lock=False).get_config()
if missing:
    sys.exit(f"{file}: includes from repositories that are not defined: {missing}")
# common.yml is only ever included; every other file must name a board.
if not file.endswith("/common.yml"):
    for key in ("machine", "distro", "target"):
        if key not in config:
            sys.exit(f"{file}: no {key} once its includes are merged")
print(f"{file}: {config.get('machine', '(included only)')}, "
      f"{len(config['repos'])} repositories")
EOF
done

echo ">> oelint-adv $OELINT_VERSION"
# Suppressed, and why:
#   var.mandatoryvar.HOMEPAGE, var.suggestedvar.BUGTRACKER: the project has
#     no public home page or tracker to name.
#   var.suggestedvar.CVE_PRODUCT: no CVE database lists edgesort.
#   var.bbclassextend: the recipes are for the box only.
#   vars.inconspaces, vars.notneededspace: edgesort-crates.inc opens with
#     `SRC_URI += " \`, the format cargo-update-recipe-crates writes.
mapfile -t layer_files < <(find yocto/meta-edgesort -type f \
    \( -name '*.bb' -o -name '*.bbappend' -o -name '*.conf' \) | sort)
"$venv/bin/oelint-adv" --quiet --release scarthgap --relpaths \
    --constantmods=+yocto/oelint-constants.json \
    --suppress oelint.var.mandatoryvar.HOMEPAGE \
    --suppress oelint.var.suggestedvar.BUGTRACKER \
    --suppress oelint.var.suggestedvar.CVE_PRODUCT \
    --suppress oelint.var.bbclassextend \
    --suppress oelint.vars.inconspaces \
    --suppress oelint.vars.notneededspace \
    "${layer_files[@]}"
echo ">> meta-edgesort: ${#layer_files[@]} files, no findings"

#!/usr/bin/env python3
"""Checks that every path the README and the design notes name for a
packaged box is in the .deb.

    scripts/deb/check-contents.py              the package as cargo-deb builds it
    scripts/deb/check-contents.py --deb FILE   a built package (dpkg-deb --contents)

Without --deb the file list is computed from `[package.metadata.deb]` assets
in crates/edgesort/Cargo.toml, read through `cargo metadata` as cargo-deb
reads them, and expanded as cargo-deb expands them: paths relative to
crates/edgesort; a glob source gives one file per match (directories
skipped) in the destination folder, or under it with the path below the
glob's fixed part for `**`; a destination ending in `/` takes the source's
file name; `target/release/X` is a binary from scripts/cross-build.sh,
counted whether or not it has been built here. cargo-deb adds
usr/share/doc/edgesort/changelog.Debian.gz from `changelog`. No build, no
cargo-deb, no root: CI runs it (.ci/run). scripts/deb/test-chroot.sh runs it
with --deb on the real package, so one rule serves both.

The rule. A packaged-box path is an absolute path in README.md, docs/*.md
or the units in board/systemd/ (`file://` links included) that
  (a) lies in a folder of edgesort's own: /etc/edgesort, /usr/share/edgesort,
      /usr/share/doc/edgesort; or
  (b) lies in a system folder the package installs into (SYSTEM_FOLDERS)
      and has "edgesort" in its name, or is that folder itself (it must
      then hold a file of the package).
Besides, every systemd unit named edgesort*.service|path|timer|socket must
be in /lib/systemd/system/. A path is in the package when it is a file of
it, a folder holding one (a trailing `/` asks for a folder), or a glob
(`*.toml`) matching one. Not packaged-box paths: the data partition
/var/lib/edgesort (made on the box by the tmpfiles entry, postinst and the
daemon), device and run-time folders, other packages' files, and the
exclusions in EXCLUDED, each with its reason.

Prints one line per path with where it is named, and exits 0 when all are in
the package, 1 when one is not, 2 when it cannot check.
"""

import argparse
import fnmatch
import glob
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "edgesort"
# Where the paths are named: the README and the design notes, and the
# units the package installs (ExecStart=, Documentation= links).
DOCS = ["README.md", "docs/*.md", "board/systemd/*"]

# Folders that only edgesort's files live in: every path named under them is
# the package's.
OWN_FOLDERS = ["/etc/edgesort", "/usr/share/edgesort", "/usr/share/doc/edgesort"]
# Folders shared with the rest of the system that the package installs into:
# a path under them is ours when "edgesort" is in its name.
SYSTEM_FOLDERS = [
    "/usr/bin",
    "/usr/sbin",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/usr/lib/tmpfiles.d",
    "/lib/udev/rules.d",
    "/usr/lib/udev/rules.d",
    "/usr/share/lintian/overrides",
]
# Named for a packaged box, deliberately not in the package.
EXCLUDED = {
    "/usr/share/edgesort/ota-keys.toml": "the release team's public update keys are not in this "
    "repository; docs/deb.md (\"Update keys\") says the package ships no such file and that it "
    "is put on the box by hand",
}

# An absolute path: after the start of a line, a space, a quote, a bracket,
# `=` (unit settings) or `|` (tables); `file://` is dropped first.
PATH_RE = re.compile(r"(?:(?<=^)|(?<=[\s`\"'(\[=|<>]))(/[A-Za-z0-9_.*+@%-][A-Za-z0-9_.*+@%/-]*)")
UNIT_RE = re.compile(r"(?<![\w/.-])(edgesort[\w-]*\.(?:service|path|timer|socket))\b")


def fail(message):
    print(f"check-contents: {message}", file=sys.stderr)
    sys.exit(2)


def deb_assets():
    """The [package.metadata.deb] table, as cargo-deb reads it."""
    try:
        out = subprocess.run(
            ["cargo", "metadata", "--no-deps", "--offline", "--format-version", "1"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        fail(f"cargo metadata: {error}")
    for package in json.loads(out)["packages"]:
        if package["name"] == PACKAGE:
            return Path(package["manifest_path"]).parent, package["metadata"]["deb"]
    fail(f"no package {PACKAGE} in the workspace")


def files_from_assets():
    """Every file of the package as cargo-deb would build it, with notes."""
    crate, deb = deb_assets()
    files, notes, errors = set(), [], []
    for source, dest, _mode in deb["assets"]:
        if source.startswith("target/release/"):
            path = "/" + (dest + os.path.basename(source) if dest.endswith("/") else dest)
            files.add(path)
            notes.append(f"{path}: {source} of scripts/cross-build.sh, counted unbuilt")
            continue
        if glob.has_magic(source):
            matches = sorted(
                m for m in glob.glob(str(crate / source), recursive=True) if os.path.isfile(m)
            )
            if not matches:
                errors.append(f"asset {source} matches no file")
            fixed = str(crate / source.split("*")[0].rsplit("/", 1)[0])
            for match in matches:
                below = os.path.relpath(match, fixed) if "**" in source else os.path.basename(match)
                files.add("/" + dest.rstrip("/") + "/" + below)
            continue
        if not (crate / source).is_file():
            errors.append(f"asset {source} does not exist")
        files.add("/" + (dest + os.path.basename(source) if dest.endswith("/") else dest))
    if "changelog" in deb:
        files.add(f"/usr/share/doc/{PACKAGE}/changelog.Debian.gz")
    return files, notes, errors


def files_from_deb(deb):
    """Every file (and link) in a built package."""
    try:
        out = subprocess.run(
            ["dpkg-deb", "--contents", deb], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        fail(f"dpkg-deb --contents {deb}: {error}")
    files = set()
    for line in out.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6:
            continue
        name = fields[5].split(" -> ")[0]
        if name.endswith("/"):
            continue
        files.add("/" + name.removeprefix("./"))
    if not files:
        fail(f"{deb} lists no files")
    return files


def named_paths():
    """{path: [where named]} for every packaged-box path, and the units."""
    paths, units = {}, {}
    for pattern in DOCS:
        for doc in sorted(ROOT.glob(pattern)):
            for number, line in enumerate(doc.read_text().splitlines(), 1):
                where = f"{doc.relative_to(ROOT)}:{number}"
                for path in PATH_RE.findall(line.replace("file://", " ")):
                    path = path.rstrip(".")
                    if is_packaged(path):
                        paths.setdefault(path, []).append(where)
                for unit in UNIT_RE.findall(line):
                    units.setdefault(unit, []).append(where)
    return paths, units


def under(path, folder):
    return path == folder or path.rstrip("/") == folder or path.startswith(folder + "/")


def is_packaged(path):
    if any(under(path, folder) for folder in OWN_FOLDERS):
        return True
    for folder in SYSTEM_FOLDERS:
        if under(path, folder):
            return path.rstrip("/") == folder or "edgesort" in path[len(folder):]
    return False


def in_package(path, files):
    if glob.has_magic(path):
        return any(fnmatch.fnmatchcase(f, path) for f in files)
    if not path.endswith("/") and path in files:
        return True
    folder = path.rstrip("/") + "/"
    return any(f.startswith(folder) for f in files)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deb", help="check this built package instead of the cargo-deb assets")
    args = parser.parse_args()

    if args.deb:
        files = files_from_deb(args.deb)
        print(f">> {args.deb}: {len(files)} files (dpkg-deb --contents)")
        errors = []
    else:
        files, notes, errors = files_from_assets()
        print(f">> the package from crates/edgesort/Cargo.toml's cargo-deb assets: {len(files)} files")
        for note in notes:
            print(f"   {note}")
    missing = list(errors)

    paths, units = named_paths()
    print(f">> {len(paths)} packaged-box paths named in {' and '.join(DOCS)}")
    for path in sorted(paths):
        where = ", ".join(paths[path])
        if path in EXCLUDED:
            print(f"excluded {path} ({where}): {EXCLUDED[path]}")
        elif in_package(path, files):
            print(f"ok       {path} ({where})")
        else:
            print(f"MISSING  {path} ({where})")
            missing.append(path)
    print(f">> {len(units)} systemd units named, each in /lib/systemd/system/")
    for unit in sorted(units):
        path = f"/lib/systemd/system/{unit}"
        if path in files:
            print(f"ok       {path} ({', '.join(units[unit][:3])}{', ...' if len(units[unit]) > 3 else ''})")
        else:
            print(f"MISSING  {path} ({', '.join(units[unit])})")
            missing.append(path)

    for error in errors:
        print(f"ERROR    {error}")
    if missing:
        print(f"FAIL: {len(missing)} named but not in the package")
        return 1
    print("PASS: every packaged-box path the README and docs name is in the package")
    return 0


if __name__ == "__main__":
    sys.exit(main())

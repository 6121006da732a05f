#!/bin/bash
# Build the stepstone Debian package with dpkg's own tools (dpkg-deb, dpkg-shlibdeps):
#   packaging/build-deb.sh [OUT_DIR]        -> OUT_DIR/stepstone_<version>_<arch>.deb (dist/)
#
# The application gets a virtual environment of its own at /opt/stepstone, made by Debian's
# Python (DEB_PYTHON, default /usr/bin/python3; the service user can read nothing else), with
# every dependency from SERVER_LOCK by hash and then the project's wheel with --no-deps.
# PIP is the pip that installs into it (the development venv's, which has the locked
# setuptools that builds the project's wheel). Work files go to build/deb (WORK_DIR).
set -euo pipefail
umask 022
# Nothing from the caller's Python may leak into the venv (a PYTHONPATH holding the checkout
# would make pip think the project is already installed there).
unset PYTHONPATH PYTHONHOME PYTHONUSERBASE PYTHONSTARTUP PIP_TARGET PIP_PREFIX PIP_USER PIP_ROOT

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
OUT=$(realpath -m "${1:-$SRC/dist}")
PIP=${PIP:-$SRC/.venv/bin/pip}
DEB_PYTHON=${DEB_PYTHON:-/usr/bin/python3}
SERVER_LOCK=${SERVER_LOCK:-$SRC/requirements-server.lock}
WORK=$(realpath -m "${WORK_DIR:-$SRC/build/deb}")
DEB_COMPRESSION=${DEB_COMPRESSION:-xz}
DEB_COMPRESSION_LEVEL=${DEB_COMPRESSION_LEVEL:-}
MAINTAINER=${DEB_MAINTAINER:-Stepstone maintainers <stepstone@example.org>}
APP=/opt/stepstone

STAGE=$WORK/root
VENV=$STAGE$APP
cd "$SRC"

# The venv's python is a symlink to the interpreter: pin the minor version it was made with.
PY=$(readlink -f "$DEB_PYTHON")
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
ARCH=$(dpkg --print-architecture)
DEB=$OUT/stepstone_${VERSION}_${ARCH}.deb

rm -rf "$WORK"
mkdir -p "$STAGE/DEBIAN" "$WORK/wheel" "$OUT"

# 1. The virtual environment, its dependencies by hash, then the project itself.
"$PY" -m venv --without-pip "$VENV"
"$PIP" --python "$VENV/bin/python" install --quiet --no-compile --require-hashes --no-deps \
    -r "$SERVER_LOCK"
# The wheel is built from a copy of the files git knows (tracked or not ignored), so nothing
# stale in the checkout's build/ folder slips in; outside a git checkout, from the tree.
mkdir -p "$WORK/src"
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$SRC" ls-files -z --cached --others --exclude-standard \
        | (cd "$SRC" && tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null)
else
    (cd "$SRC" && tar --exclude=./build --exclude=./dist --exclude='./.venv*' -cf - .)
fi | tar -xf - -C "$WORK/src"
"$PIP" wheel --quiet --no-deps --no-build-isolation --wheel-dir "$WORK/wheel" "$WORK/src"
"$PIP" --python "$VENV/bin/python" install --quiet --no-compile --no-deps \
    "$WORK"/wheel/stepstone-*.whl

# 2. Make it live at /opt/stepstone: scripts and pyvenv.cfg name the staging path; the wheel's
# direct_url.json names the build folder. No bytecode: postinst compiles it (Debian's Python
# policy), prerm removes it.
grep -rlI --null "$VENV" "$VENV/bin" "$VENV/pyvenv.cfg" | xargs -0 -r sed -i "s|$VENV|$APP|g"
dist_info=$(echo "$VENV"/lib/python"$PYVER"/site-packages/stepstone-*.dist-info)
rm -f "$dist_info/direct_url.json"
sed -i '/direct_url\.json/d' "$dist_info/RECORD"
if grep -rqI "$WORK" "$VENV"; then
    echo "build-deb: the staging path is left in:" >&2
    grep -rlI "$WORK" "$VENV" >&2
    exit 1
fi
find "$VENV" -depth -type d -name __pycache__ -exec rm -rf {} +
# Modules that carry an unversioned `python` shebang (pkilint's bin/*.py: imported, never run
# as scripts) name Debian's python3, as Debian's Python policy asks.
grep -rlI --null --include='*.py' -E '^#! ?(/usr/bin/env )?python$' "$VENV/lib" \
    | xargs -0 -r sed -i -E '1s|^#! ?(/usr/bin/env )?python$|#!/usr/bin/python3|'
# Shared objects without their debugging symbols and not executable, as dh_strip and
# dh_fixperms do.
find "$VENV" -type f -name '*.so*' -exec strip --strip-unneeded \
    --remove-section=.comment --remove-section=.note {} + -exec chmod 0644 {} +

# 3. The rest of the file system.
install -d "$STAGE/usr/bin" "$STAGE/lib/systemd/system" "$STAGE/etc/default" \
    "$STAGE/usr/share/doc/stepstone/examples" "$STAGE/usr/share/lintian/overrides"
ln -s "$APP/bin/step" "$STAGE/usr/bin/step"
ln -s "$APP/bin/step-ca" "$STAGE/usr/bin/step-ca"
install -m 0644 "$HERE/stepstone.service" "$STAGE/lib/systemd/system/stepstone.service"
install -m 0644 "$HERE/stepstone.default" "$STAGE/etc/default/stepstone"
install -m 0644 "$HERE/README.md" "$STAGE/usr/share/doc/stepstone/README.md"
install -m 0644 "$HERE/debian/copyright" "$STAGE/usr/share/doc/stepstone/copyright"
install -m 0644 "$HERE"/dropins/*.conf "$STAGE/usr/share/doc/stepstone/examples/"
install -m 0644 "$HERE/debian/lintian-overrides" "$STAGE/usr/share/lintian/overrides/stepstone"
changed=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
printf 'stepstone (%s) unstable; urgency=medium\n\n  * Built from the Stepstone source tree (its git history is the changelog).\n\n -- %s  %s\n' \
    "$VERSION" "$MAINTAINER" "$changed" | gzip -9n > "$STAGE/usr/share/doc/stepstone/changelog.gz"

# 4. The control area: maintainer scripts, debconf template, conffiles, md5sums, control.
for script in postinst prerm postrm config; do
    install -m 0755 "$HERE/debian/$script" "$STAGE/DEBIAN/$script"
done
install -m 0644 "$HERE/debian/templates" "$STAGE/DEBIAN/templates"
echo /etc/default/stepstone > "$STAGE/DEBIAN/conffiles"
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' \
    | LC_ALL=C sort -z | xargs -0 md5sum) > "$STAGE/DEBIAN/md5sums"
chmod 0644 "$STAGE/DEBIAN/conffiles" "$STAGE/DEBIAN/md5sums"

# Shared-library dependencies of the compiled modules (the wheels' own copies of libraries
# live in *.libs folders beside them).
mkdir -p "$WORK/shlibs/debian"
printf 'Source: stepstone\n\nPackage: stepstone\nArchitecture: any\n' > "$WORK/shlibs/debian/control"
mapfile -d '' objects < <(find "$VENV" -type f -name '*.so*' -print0)
mapfile -d '' libdirs < <(find "$VENV" -type d -name '*.libs' -printf '-l%p\0')
shlibs=$(cd "$WORK/shlibs" && dpkg-shlibdeps -O --ignore-missing-info "${libdirs[@]}" \
    "${objects[@]}" 2>"$WORK/shlibdeps.log") || { cat "$WORK/shlibdeps.log" >&2; exit 1; }
shlibs=${shlibs#shlibs:Depends=}

size=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$ARCH|" -e "s|@SIZE@|$size|" \
    -e "s|@PYTHON@|python$PYVER|" -e "s|@SHLIBS@|$shlibs|" -e "s|@MAINTAINER@|$MAINTAINER|" \
    "$HERE/debian/control.in" > "$STAGE/DEBIAN/control"

dpkg-deb --root-owner-group -Z"$DEB_COMPRESSION" ${DEB_COMPRESSION_LEVEL:+-z"$DEB_COMPRESSION_LEVEL"} --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"

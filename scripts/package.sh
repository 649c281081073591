#!/usr/bin/env bash
# Build the Debian packages of debian/ into dist/ and check them with
# lintian.  Debian 12, as root (to install the build dependencies; with
# --no-deps any user who has them).  The tree is copied first, so the
# build leaves nothing in it but dist/.
#
#   bash scripts/package.sh [--no-deps] [--nocheck]
#
#   --no-deps   do not install the build dependencies
#   --nocheck   do not run the unit tests during the build
#
# Exits non-zero if the build fails or lintian reports an error.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

deps=1
check=1
for a in "$@"; do
  case $a in
    --no-deps) deps=0 ;;
    --nocheck) check=0 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown option $a (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$deps" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends \
    build-essential dpkg-dev debhelper lintian
  # Build-Depends of debian/control.
  apt-get build-dep -y -q "$src"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/commreg"
tar -C "$src" --exclude=./.git --exclude='./build*' --exclude=./dist \
  --exclude='./obj-*' --exclude=./debian/tmp --exclude=./debian/.debhelper \
  -cf - . | tar -C "$work/commreg" -xf -

jobs=$(nproc 2>/dev/null || echo 2)
opts="parallel=$jobs"
[ "$check" = 1 ] || opts="$opts nocheck"
echo "== dpkg-buildpackage ($opts)"
(cd "$work/commreg" && DEB_BUILD_OPTIONS="$opts" \
  dpkg-buildpackage -b -us -uc)

# dist/*.deb are the packages to install; the debug symbols go aside,
# to dist/dbgsym/, so that `apt install ./dist/*.deb` takes what runs.
mkdir -p dist/dbgsym
rm -f dist/*.deb dist/*.changes dist/*.buildinfo dist/dbgsym/*.deb
mv "$work"/*-dbgsym_*.deb dist/dbgsym/ 2>/dev/null || true
mv "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo dist/
ls -l dist dist/dbgsym

echo "== lintian"
# Errors fail; warnings, informational and pedantic tags are shown.
lintian --fail-on error --display-level '>=pedantic' --pedantic \
  dist/*.deb dist/dbgsym/*.deb
echo "lintian: no errors"

#!/usr/bin/env bash
# Install every Debian package commreg needs to build, test and run.
# Debian 12, as root.  Safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(
  build-essential cmake pkg-config clang
  libclang-rt-14-dev
  libevent-dev libinih-dev libssl-dev libcunit1-dev libjansson-dev openssl
  tcl8.6 tcl8.6-dev tcllib valgrind
  groff-base man-db
  dpkg-dev debhelper lintian adduser
  passwd util-linux procps iproute2
  dbus libdbus-1-dev
  systemd strace
)

apt-get update -q
apt-get install -y -q --no-install-recommends "${pkgs[@]}"

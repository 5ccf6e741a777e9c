#!/bin/sh
# Prepares this machine for ACBA: the Debian packages it needs (libguestfs for
# file-level recovery, with qemu's HTTP block driver and a kernel for its
# appliance) and the npm packages. Quick when everything is already there, so
# `npm start` and `npm test` run it every time.
#
# With the argument `test` it also installs Debian's Chromium, which the chat
# page's browser test drives; serving ACBA does not need a browser. With
# `bench` it installs restic and GNU time, which the backup benchmark runs.
set -eu
cd "$(dirname "$0")/.."

packages="libguestfs-tools libguestfs-xfs qemu-block-extra qemu-utils linux-image-amd64 openssl"
case "${1:-}" in
  "") ;;
  test) packages="$packages chromium gdisk fdisk" ;;
  bench) packages="$packages restic time" ;;
  *) echo "usage: sh scripts/setup.sh [test|bench]" >&2; exit 2 ;;
esac
missing=""
for package in $packages; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $package"
  fi
done
if [ -n "$missing" ]; then
  echo "acba setup: installing Debian packages:$missing"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "acba setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

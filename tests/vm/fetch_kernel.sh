#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Puts Debian's current amd64 kernel (the one linux-image-amd64 depends on)
# into DIR/boot, for run_in_vm.sh, unless one is there already. Downloads
# the package with apt-get (no install: nothing on this machine changes).
#
#   fetch_kernel.sh DIR
set -euo pipefail
dir=${1:?usage: fetch_kernel.sh DIR}
ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1 && exit 0
package=$(apt-cache depends linux-image-amd64 2>/dev/null |
  awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[[ -n $package ]] || {
  echo "fetch_kernel.sh: apt knows no linux-image-amd64 (run apt-get update)" >&2
  exit 1
}
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q "$package" >/dev/null 2>&1) || {
  echo "fetch_kernel.sh: apt-get download $package failed" >&2
  exit 1
}
dpkg-deb --fsys-tarfile "$work"/*.deb | tar -x -C "$dir" ./boot
ls "$dir"/boot/vmlinuz-* >/dev/null

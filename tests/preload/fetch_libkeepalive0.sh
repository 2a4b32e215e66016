#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Puts Debian's libkeepalive0 library into DIR (DIR/usr/lib/...), for the
# side-by-side test of the old variables (strace_test.cc), unless it is
# there already. Downloads the package with apt-get (no install: it
# conflicts with ours).
#
#   fetch_libkeepalive0.sh DIR
set -euo pipefail
dir=${1:?usage: fetch_libkeepalive0.sh DIR}
ls "$dir"/usr/lib/libkeepalive.so.0* >/dev/null 2>&1 && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q libkeepalive0 >/dev/null 2>&1) || {
  echo "fetch_libkeepalive0.sh: apt-get download libkeepalive0 failed" >&2
  exit 1
}
mkdir -p "$dir"
dpkg-deb -x "$work"/libkeepalive0_*.deb "$dir"
ls "$dir"/usr/lib/libkeepalive.so.0* >/dev/null

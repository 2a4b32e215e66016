#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `cmake --install` of this build into a staging directory (DESTDIR): every
# file lands where packaging/packaging.cmake says, under the directories
# GNUInstallDirs chose for this build. Touches nothing outside the stage.
#
# Needs: KEEPALIVE_BINARY_DIR.
source "$(dirname "$0")/lib.sh"
bounded_self 120 "$@"

: "${KEEPALIVE_BINARY_DIR:?}"
make_scratch
stage=$SCRATCH/stage

# The directories this build installs to (written by packaging.cmake).
dirs=$KEEPALIVE_BINARY_DIR/packaging/install-dirs.txt
[[ -f $dirs ]] || fail "$dirs is missing: packaging/packaging.cmake was not included"
dir_of() { sed -n "s/^$1=//p" "$dirs"; }
bindir=$(dir_of BINDIR)
libdir=$(dir_of LIBDIR)
libexecdir=$(dir_of LIBEXECDIR)
mandir=$(dir_of MANDIR)
docdir=$(dir_of DOCDIR)
[[ -n $bindir && -n $libdir && -n $mandir ]] || fail "cannot read $dirs"

DESTDIR=$stage timeout 100 cmake --install "$KEEPALIVE_BINARY_DIR" >"$SCRATCH/log" 2>&1 ||
  fail "cmake --install failed: $(cat "$SCRATCH/log")"
! grep -qi ldconfig "$SCRATCH/log" || fail "ldconfig must not run for a staged install"

expect_file() {
  [[ -f $stage$1 ]] || fail "not installed: $1 (installed: $(cd "$stage" && find . -type f | sort))"
}
expect_file "$bindir/keepalive-supervise"
[[ -x $stage$bindir/keepalive-supervise ]] || fail "keepalive-supervise is not executable"
for lib in libkeepalive libkeepalive_listen libkeepalive_socket; do
  expect_file "$libdir/$lib.so"
done
if [[ $(dir_of STATIC) == 1 ]]; then
  expect_file "$libexecdir/keepalive/keepalive-supervise-static"
  file -L "$stage$libexecdir/keepalive/keepalive-supervise-static" | grep -q 'statically linked' ||
    fail "the installed keepalive-supervise-static is not static"
fi
expect_file "$mandir/man1/keepalive-supervise.1.gz"
expect_file "$mandir/man7/libkeepalive.7.gz"
zcat "$stage$mandir/man1/keepalive-supervise.1.gz" | grep -q '^\.TH KEEPALIVE-SUPERVISE 1' ||
  fail "the installed man page is not keepalive-supervise(1)"
expect_file "$docdir/examples/Dockerfile"
expect_file "$docdir/examples/systemd/keepalive.conf"
expect_file "$docdir/examples/kubernetes/pod.yaml"

note "installed: $(cd "$stage" && find . -type f | sort | tr '\n' ' ')"
echo "PASS: install layout ($bindir, $libdir)"

#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds upstream's libkeepalive.so (github.com/msantos/libkeepalive, the
# library ours replaces) into DIR, for the benchmark's `upstream connect`
# row: ours against it in the same run. Pinned to one commit so that the
# comparison means the same thing from run to run, and with -O2 as ours
# (upstream's Makefile gives no -O). Needs git, make, cc and the network
# once (or SOURCE: any git repository holding that commit, a local mirror
# for instance); does nothing if DIR holds a build of that commit.
#
#   fetch_upstream.sh DIR [SOURCE]
set -euo pipefail
dir=${1:?usage: fetch_upstream.sh DIR [SOURCE]}
readonly URL=${2:-https://github.com/msantos/libkeepalive.git}
readonly COMMIT=f8e11672c3b17ea397ed27961fcf6d4160ffa6f6
[[ -f "$dir/libkeepalive.so" && "$(cat "$dir/COMMIT" 2>/dev/null)" == "$COMMIT" ]] &&
  exit 0
command -v git >/dev/null || {
  echo "fetch_upstream.sh: git is not installed" >&2
  exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! GIT_TERMINAL_PROMPT=0 git clone -q "$URL" "$work/src" 2>"$work/err" ||
  ! git -C "$work/src" checkout -q "$COMMIT" 2>>"$work/err"; then
  echo "fetch_upstream.sh: cannot fetch $URL at $COMMIT: $(tail -1 "$work/err")" >&2
  exit 1
fi
if ! make -C "$work/src" CC="${CC:-cc} -O2" libkeepalive >"$work/err" 2>&1; then
  echo "fetch_upstream.sh: building upstream's libkeepalive.so failed: $(tail -1 "$work/err")" >&2
  exit 1
fi
mkdir -p "$dir"
cp "$work/src/libkeepalive.so" "$dir/"
echo "$COMMIT" >"$dir/COMMIT"

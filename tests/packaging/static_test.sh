#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The static keepalive-supervise in a root made of busybox-static alone
# (unshare -m, /proc mounted inside, chroot): busybox's nc connects to a
# server outside the chroot (same network namespace) and the options are
# read back from outside the process, from the kernel.
#
# Needs: KEEPALIVE_SUPERVISE_STATIC, SOCKOPT_PROBE.
source "$(dirname "$0")/lib.sh"
bounded_self 60 "$@"

: "${KEEPALIVE_SUPERVISE_STATIC:?}" "${SOCKOPT_PROBE:?}"
STATIC=$KEEPALIVE_SUPERVISE_STATIC

# One file that needs nothing else.
file -L "$STATIC" | grep -q 'statically linked' ||
  fail "file(1) does not call $STATIC statically linked: $(file -L "$STATIC")"
ldd_out=$(ldd "$STATIC" 2>&1 || true)
grep -q 'not a dynamic executable' <<<"$ldd_out" ||
  fail "ldd lists libraries for $STATIC: $ldd_out"

require_root "chroot and mount"
require_namespaces --mount
make_scratch
root=$SCRATCH/root
make_busybox_root "$root"
cp "$STATIC" "$root/bin/keepalive-supervise-static"
note "root: $(cd "$root" && find . -type f | sort | tr '\n' ' ')"

start_server
# nc ends the connection at EOF on its input: give it a FIFO that we hold
# open for writing.
mkfifo "$SCRATCH/input"
exec 3<>"$SCRATCH/input"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin unshare --mount sh -c '
  mount -t proc proc "$1/proc" &&
  exec chroot "$1" /bin/keepalive-supervise-static -- /bin/busybox nc 127.0.0.1 "$2"
' sh "$root" "$SERVER_PORT" <&3 2>"$SCRATCH/stderr" &
sup=$!
STARTED_PIDS+=("$sup")

pid=$(client_pid "$SERVER_PORT") || fail "busybox nc did not connect; stderr: $(cat "$SCRATCH/stderr")"
[[ $(readlink "/proc/$pid/root") == "$root" ]] ||
  fail "pid $pid is not the chrooted nc (root $(readlink "/proc/$pid/root"))"
expect_default_options "$pid" "$SERVER_PORT"

# The server goes away; nc sees EOF and exits 0, and so does the supervisor.
kill "$SERVER_PID"
status=0
wait "$sup" || status=$?
[[ $status -eq 0 ]] || fail "supervisor exited $status; stderr: $(cat "$SCRATCH/stderr")"
[[ ! -s $SCRATCH/stderr ]] || fail "unexpected stderr: $(cat "$SCRATCH/stderr")"
echo "PASS: static keepalive-supervise in a busybox-only root"

#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keepalive-supervise under what container runtimes impose.
#
#   runtime_profile_test.sh deny-getfd    under a seccomp filter that fails
#       pidfd_getfd with EPERM (Docker's and containerd's default profiles
#       without CAP_SYS_PTRACE): busybox nc still gets the options in socket,
#       connect and listen modes, with exactly one stderr line saying
#       "degraded"
#   runtime_profile_test.sh nested        a seccomp listener already in place
#       (keepalive-supervise -- keepalive-supervise -- CMD): the inner one
#       exits 125 naming EBUSY; with --fail-open it runs CMD unsupervised,
#       with one warning, and CMD's status passes through
#
# Needs: KEEPALIVE_SUPERVISE, SOCKOPT_PROBE, DENY_SYSCALLS (the
# tests/helpers launcher) for deny-getfd.
source "$(dirname "$0")/lib.sh"
bounded_self 90 "$@"

: "${KEEPALIVE_SUPERVISE:?}" "${SOCKOPT_PROBE:?}"
SUP=$KEEPALIVE_SUPERVISE
BUSYBOX=/bin/busybox
make_scratch

# Exactly one line on stderr, and it contains PATTERN (grep -i).
expect_one_line() {
  local file=$1 pattern=$2 lines
  lines=$(wc -l <"$file")
  [[ $lines -eq 1 ]] || fail "expected exactly one line on stderr, got $lines:"$'\n'"$(cat "$file")"
  grep -qi -- "$pattern" "$file" || fail "stderr does not mention '$pattern': $(cat "$file")"
  note "stderr: $(cat "$file")"
}

# A loopback port nobody listens on (for nc -l).
free_port() {
  "$(python3_path)" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run_client LAUNCHER... : busybox nc as a client of a fresh server, under
# LAUNCHER (the command line up to the target); checks the options on nc's
# socket, then stops the server and checks the supervisor's status.
run_client() {
  local err=$SCRATCH/stderr.$RANDOM
  start_server
  mkfifo "$err.in"
  exec 3<>"$err.in"
  "$@" "$BUSYBOX" nc 127.0.0.1 "$SERVER_PORT" <&3 2>"$err" &
  local sup=$!
  STARTED_PIDS+=("$sup")
  local pid
  pid=$(client_pid "$SERVER_PORT") || fail "nc did not connect; stderr: $(cat "$err")"
  expect_default_options "$pid" "$SERVER_PORT"
  kill "$SERVER_PID"
  local status=0
  wait "$sup" || status=$?
  exec 3>&-
  [[ $status -eq 0 ]] || fail "exit status $status; stderr: $(cat "$err")"
  LAST_STDERR=$err
}

# run_server LAUNCHER... : busybox nc -l under LAUNCHER; a client connects
# and the options are checked on the connection nc accepted.
run_server() {
  local err=$SCRATCH/stderr.$RANDOM port
  port=$(free_port)
  mkfifo "$err.in"
  exec 3<>"$err.in"
  "$@" "$BUSYBOX" nc -l -p "$port" <&3 2>"$err" &
  local sup=$!
  STARTED_PIDS+=("$sup")
  local i
  for i in $(seq 200); do
    ss -tlnH "( sport = :$port )" | grep -q . && break
    sleep 0.05
  done
  exec 4<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect to nc -l; stderr: $(cat "$err")"
  local client server
  client=$(client_port "$port") || fail "no connection to port $port"
  server=$(server_pid "$port") || fail "no process accepted the connection on port $port"
  expect_default_options "$server" "$client"
  exec 4>&-  # nc sees EOF and exits
  local status=0
  wait "$sup" || status=$?
  exec 3>&-
  [[ $status -eq 0 ]] || fail "exit status $status; stderr: $(cat "$err")"
  LAST_STDERR=$err
}

case_deny_getfd() {
  [[ -x $BUSYBOX ]] || skip "$BUSYBOX is missing (Debian package busybox-static)"
  [[ -n ${DENY_SYSCALLS:-} ]] || skip "the deny_syscalls helper (tests/helpers) was not built"
  # The launcher really refuses pidfd_getfd: the supervisor's own probe says so.
  "$DENY_SYSCALLS" pidfd_getfd "$SUP" --check >"$SCRATCH/check" || true
  grep -q 'pidfd_getfd on the target (continue strategy): refused (Operation not permitted)' \
    "$SCRATCH/check" || fail "pidfd_getfd was not refused: $(cat "$SCRATCH/check")"

  note "control: socket mode without the profile says nothing"
  run_client "$SUP" --
  [[ ! -s $LAST_STDERR ]] || fail "unexpected stderr: $(cat "$LAST_STDERR")"

  note "socket mode, pidfd_getfd refused"
  run_client "$DENY_SYSCALLS" pidfd_getfd "$SUP" --
  expect_one_line "$LAST_STDERR" degraded

  note "connect mode, pidfd_getfd refused"
  run_client "$DENY_SYSCALLS" pidfd_getfd "$SUP" --mode connect --
  expect_one_line "$LAST_STDERR" degraded

  note "listen mode, pidfd_getfd refused"
  run_server "$DENY_SYSCALLS" pidfd_getfd "$SUP" --mode listen --
  expect_one_line "$LAST_STDERR" degraded

  note "--strategy continue, pidfd_getfd refused: a clear refusal"
  local status=0
  "$DENY_SYSCALLS" pidfd_getfd "$SUP" --strategy continue -- true \
    2>"$SCRATCH/continue" || status=$?
  [[ $status -eq 125 ]] || fail "expected 125, got $status"
  expect_one_line "$SCRATCH/continue" 'pidfd_getfd'
}

case_nested() {
  local status=0
  timeout 20 "$SUP" -- "$SUP" -- true 2>"$SCRATCH/nested" || status=$?
  [[ $status -eq 125 ]] || fail "nested supervisor: expected 125, got $status: $(cat "$SCRATCH/nested")"
  expect_one_line "$SCRATCH/nested" 'busy'
  grep -q -- '--fail-open' "$SCRATCH/nested" || fail "the message does not point to --fail-open"

  status=0
  timeout 20 "$SUP" -- "$SUP" --fail-open -- sh -c 'echo ran; exit 7' \
    >"$SCRATCH/out" 2>"$SCRATCH/open" || status=$?
  [[ $status -eq 7 ]] || fail "with --fail-open: expected the command's 7, got $status: $(cat "$SCRATCH/open")"
  grep -qx ran "$SCRATCH/out" || fail "the command did not run"
  expect_one_line "$SCRATCH/open" 'WITHOUT keepalive options'
  grep -qi busy "$SCRATCH/open" || fail "the warning does not say why"
}

case ${1:-} in
  deny-getfd) case_deny_getfd ;;
  nested) case_nested ;;
  *) fail "usage: runtime_profile_test.sh deny-getfd|nested" ;;
esac
echo "PASS: $1"

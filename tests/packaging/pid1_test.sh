#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keepalive-supervise's init duties, as a container entrypoint needs them.
#
#   pid1_test.sh orphans        PID 1 of a pid namespace reaps orphans
#   pid1_test.sh sigterm        SIGTERM from outside the namespace reaches a
#                               target that handles it; exit 0 passes through
#   pid1_test.sh killed         a target killed by a signal: exit 128+N
#   pid1_test.sh init           --init outside a pid namespace: a subreaper
#   pid1_test.sh signal-group   -g: signals reach the child's whole group
#
# Needs: KEEPALIVE_SUPERVISE (the supervisor to test).
source "$(dirname "$0")/lib.sh"
bounded_self 60 "$@"

: "${KEEPALIVE_SUPERVISE:?}"
SUP=$KEEPALIVE_SUPERVISE
make_scratch
cd "$SCRATCH"

# Runs the supervisor as PID 1 of a new pid namespace, in the background;
# sets NS_PID (unshare's pid; killing it kills the namespace).
start_as_pid1() {
  unshare --pid --fork --kill-child --mount-proc "$SUP" "$@" &
  NS_PID=$!
  STARTED_PIDS+=("$NS_PID")
}

# The host pid of the supervisor started by start_as_pid1: unshare's child.
supervisor_host_pid() {
  local i pid
  for i in $(seq 100); do
    pid=$(ps -o pid= --ppid "$NS_PID" | tr -d ' ' | head -n 1)
    [[ -n $pid ]] && { echo "$pid"; return 0; }
    sleep 0.05
  done
  fail "no supervisor under unshare (pid $NS_PID)"
}

wait_for_file() {
  local i
  for i in $(seq 200); do
    [[ -e $1 ]] && return 0
    sleep 0.05
  done
  fail "$1 did not appear: the target did not start"
}

# Waits for a background pid; sets STATUS to its exit status.
wait_status() {
  STATUS=0
  wait "$1" || STATUS=$?
}

# The target of the reaping tests: makes orphans of two kinds (still running
# when orphaned, and already exited: a zombie handed to the reaper) and
# checks that the running ones now belong to EXPECTED_PARENT ("parent": the
# target's own parent). The intermediate parents are foreground commands, so
# the orphans were handed over before they returned. Then it lets them
# exit and, while the target itself still runs, waits for all of them to be
# gone: a zombie nobody reaps stays forever. With a second argument, no
# zombie at all may remain in sight. Exit 0 when all holds, 3 when not
# reparented, 4 when one is left. (Bounded by counts, not clocks: sh has
# none.)
ORPHAN_TARGET='
  expected=$1
  [ "$expected" = parent ] && expected=$PPID
  field_of() {
    while read -r key value; do
      [ "$key" = "$2:" ] && { echo "$value"; return; }
    done < /proc/$1/status
  } 2>/dev/null
  for i in 1 2 3 4 5; do
    (sh -c "n=0; while [ ! -e release ] && [ \$n -lt 600 ]; do sleep 0.05; n=\$((n + 1)); done" >/dev/null 2>&1 &
     echo $! >> running)
    (sh -c "exit 0" >/dev/null 2>&1 & echo $! >> exited)
  done
  for p in $(cat running); do
    ppid=$(field_of $p PPid)
    [ "$ppid" = "$expected" ] || { echo "orphan $p has parent $ppid, not $expected"; exit 3; }
  done
  touch release
  n=0
  while :; do
    left=""
    for p in $(cat running exited); do
      [ "$(field_of $p PPid)" = "$expected" ] && left="$left $p"
    done
    [ -z "$left" ] && break
    n=$((n + 1))
    if [ $n -ge 50 ]; then
      for p in $left; do echo "orphan $p left behind: $(field_of $p State)"; done
      exit 4
    fi
    sleep 0.1
  done
  n=0
  while [ -n "$2" ]; do
    zombies=$(grep -l "^State:[[:space:]]*Z" /proc/[0-9]*/status 2>/dev/null | wc -l)
    [ "$zombies" -eq 0 ] && break
    n=$((n + 1))
    [ $n -lt 30 ] || { echo "zombies in the namespace: $zombies"; exit 4; }
    sleep 0.1
  done
  echo "orphans: $(cat running exited | wc -l), all reaped"
  exit 0
'

case_orphans() {
  require_namespaces --pid --fork --mount-proc
  # In its own pid namespace every zombie visible is ours to worry about.
  start_as_pid1 -- sh -c "$ORPHAN_TARGET" target 1 check-all-zombies
  wait_status "$NS_PID"
  [[ $STATUS -eq 0 ]] || fail "as PID 1: target reported $STATUS (see above)"
}

case_sigterm() {
  require_namespaces --pid --fork --mount-proc
  start_as_pid1 -- sh -c '
    trap "echo got-term; exit 0" TERM
    touch ready
    while :; do sleep 0.1; done' >out
  wait_for_file ready
  # From the parent namespace: for PID 1 of a namespace the kernel drops
  # signals it has no handler for, so this only works because the
  # supervisor takes them through its signalfd.
  kill -TERM "$(supervisor_host_pid)"
  wait_status "$NS_PID"
  [[ $STATUS -eq 0 ]] || fail "expected exit 0 after a handled SIGTERM, got $STATUS"
  grep -qx got-term out || fail "the target's handler did not run: $(cat out)"
}

case_killed() {
  require_namespaces --pid --fork --mount-proc
  # Killed by the forwarded SIGTERM (no handler): 128 + 15.
  start_as_pid1 -- sh -c 'touch ready; exec sleep 30'
  wait_for_file ready
  sleep 0.2  # past the exec
  kill -TERM "$(supervisor_host_pid)"
  wait_status "$NS_PID"
  [[ $STATUS -eq 143 ]] || fail "expected 143 (SIGTERM), got $STATUS"
  # Killed by itself with SIGKILL: 128 + 9.
  start_as_pid1 -- sh -c 'kill -KILL $$'
  wait_status "$NS_PID"
  [[ $STATUS -eq 137 ]] || fail "expected 137 (SIGKILL), got $STATUS"
}

case_init() {
  # "parent": the supervisor, the target's $PPID.
  local status=0
  timeout 20 "$SUP" --init -- sh -c "$ORPHAN_TARGET" target parent || status=$?
  [[ $status -eq 0 ]] || fail "with --init: target reported $status (see above)"
  # Without --init the orphans go elsewhere: the check above means something.
  rm -f running exited release
  status=0
  timeout 20 "$SUP" -- sh -c "$ORPHAN_TARGET" target parent >/dev/null || status=$?
  # The orphans that went elsewhere may go; wait for them to.
  touch release
  local p i
  for p in $(cat running); do
    for i in $(seq 100); do [[ -e /proc/$p ]] || break; sleep 0.1; done
  done
  [[ $status -eq 3 ]] || fail "without --init the orphans should not be ours (got $status)"
}

case_signal_group() {
  local flag
  for flag in -g none; do
    rm -f ready1 ready2 events
    local args=()
    [[ $flag == -g ]] && args=(-g)
    # The child gives the grandchild time to record a SIGTERM: until it has
    # (10 s at most) with -g, one second without (the window in which a
    # wrongly sent one would show).
    GROUP=${args[*]} "$SUP" "${args[@]}" -- sh -c '
      sh -c "trap \"echo grandchild-term >> events; exit 0\" TERM
             touch ready2
             while :; do sleep 0.1; done" &
      gc=$!
      settle() {
        if [ -z "$GROUP" ]; then sleep 1; return; fi
        n=0
        until grep -qx grandchild-term events 2>/dev/null || [ $n -ge 100 ]; do
          sleep 0.1; n=$((n + 1))
        done
      }
      trap "echo child-term >> events; settle; kill -KILL $gc 2>/dev/null; exit 0" TERM
      touch ready1
      while :; do sleep 0.1; done' &
    local sup=$!
    STARTED_PIDS+=("$sup")
    wait_for_file ready1
    wait_for_file ready2
    kill -TERM "$sup"
    wait_status "$sup"
    [[ $STATUS -eq 0 ]] || fail "($flag) expected exit 0, got $STATUS"
    grep -qx child-term events || fail "($flag) the child got no SIGTERM"
    if [[ $flag == -g ]]; then
      grep -qx grandchild-term events ||
        fail "with -g the grandchild in the child's group got no SIGTERM"
    else
      ! grep -qx grandchild-term events ||
        fail "without -g only the child should get the signal"
    fi
  done
}

case ${1:-} in
  orphans) case_orphans ;;
  sigterm) case_sigterm ;;
  killed) case_killed ;;
  init) case_init ;;
  signal-group) case_signal_group ;;
  *) fail "usage: pid1_test.sh orphans|sigterm|killed|init|signal-group" ;;
esac
echo "PASS: $1"

# SPDX-License-Identifier: Apache-2.0
# Shared by the packaging tests (sourced by bash). CTest passes the paths of
# the built programs in the environment (see CMakeLists.txt). Each test is
# bounded twice: by its own deadline (bounded_self, which still runs the
# clean-up) and by the ctest TIMEOUT. Exit 77 means skipped, with the reason
# printed.
set -euo pipefail

readonly TEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SKIPPED=77

note() { echo "-- $*"; }
skip() { echo "SKIP: $*"; exit "$SKIPPED"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# Re-runs the calling script under `timeout SECONDS` once. timeout's SIGTERM
# is trapped below, so the EXIT clean-up still runs.
bounded_self() {
  local seconds=$1
  shift
  if [[ -z ${KEEPALIVE_TEST_BOUNDED:-} ]]; then
    export KEEPALIVE_TEST_BOUNDED=1
    exec timeout -k 10 "$seconds" bash "$0" "$@"
  fi
}

# Processes the test started, killed by pid on exit; then the clean-up
# commands, last registered first.
STARTED_PIDS=()
CLEANUPS=()
add_cleanup() { CLEANUPS=("$*" "${CLEANUPS[@]}"); }
run_cleanups() {
  local pid cmd
  for pid in "${STARTED_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${STARTED_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for cmd in "${CLEANUPS[@]}"; do eval "$cmd" || true; done
}
trap run_cleanups EXIT
trap 'echo "FAIL: interrupted (time bound reached?)" >&2; exit 1' TERM INT

# A private scratch directory, removed on exit.
make_scratch() {
  SCRATCH=$(mktemp -d /tmp/keepalive-packaging.XXXXXX)
  add_cleanup "rm -rf '$SCRATCH'"
}

# Debian's python3 (python3-yaml is installed for it), else the first one.
python3_path() {
  if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else command -v python3; fi
}

require_root() {
  [[ $(id -u) -eq 0 ]] || skip "needs root ($*)"
}

# Starts hold_server.py; sets SERVER_PID and SERVER_PORT.
start_server() {
  local out="$SCRATCH/server.$RANDOM"
  "$(python3_path)" "$TEST_DIR/hold_server.py" "$@" >"$out" &
  SERVER_PID=$!
  STARTED_PIDS+=("$SERVER_PID")
  local i
  for i in $(seq 200); do
    [[ -s $out ]] && break
    sleep 0.05
  done
  SERVER_PORT=$(head -n 1 "$out")
  [[ $SERVER_PORT =~ ^[0-9]+$ ]] || fail "hold_server.py did not start"
}

# Prints the pid of the one process holding the established TCP connection
# that the ss filter FILTER selects, waiting up to 10 s for it. One process
# alone must hold it: an emulating supervisor closes its copy of a socket
# just after handing it over, and the target may already have connected by
# then; and an accepted connection has no holder until accept() returns.
connection_holder() {
  local filter=$1 i found
  for i in $(seq 200); do
    found=$(ss -tnpH state established "$filter" 2>/dev/null |
            grep -o 'pid=[0-9]*' | sort -u || true)
    if [[ -n $found && $(wc -l <<<"$found") -eq 1 ]]; then
      echo "${found#pid=}"
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# The pid of the client of 127.0.0.1:PORT (its peer is the server).
client_pid() { connection_holder "( dst 127.0.0.1:$1 )"; }

# The pid of the server that accepted a connection on PORT.
server_pid() { connection_holder "( sport = :$1 )"; }

# Prints the local port of the client side of an established connection to
# 127.0.0.1:PORT, waiting up to 10 s.
client_port() {
  local port=$1 i local_addr
  for i in $(seq 200); do
    local_addr=$(ss -tnH state established "( dst 127.0.0.1:$port )" 2>/dev/null |
                 awk 'NR == 1 { print $3 }')
    if [[ -n $local_addr ]]; then
      echo "${local_addr##*:}"
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# The user timeout keepalive derives: (idle + intvl * cnt) * 1000.
derived_user_timeout() { echo $(( ($1 + $2 * $3) * 1000 )); }

# expect_options PID PORT KEEPIDLE KEEPCNT KEEPINTVL USER_TIMEOUT
# Reads the options of PID's TCP socket whose local or peer port is PORT
# from the kernel (sockopt_probe, from outside the process) and compares.
expect_options() {
  local pid=$1 port=$2 got line
  got=$(timeout 15 "$SOCKOPT_PROBE" "$pid" "$port" 5000) ||
    fail "sockopt_probe found no TCP socket on port $port in pid $pid"
  for line in "SO_KEEPALIVE 1" "TCP_KEEPIDLE $3" "TCP_KEEPCNT $4" \
              "TCP_KEEPINTVL $5" "TCP_USER_TIMEOUT $6"; do
    grep -qx "$line" <<<"$got" ||
      fail "pid $pid, port $port: expected '$line'; the kernel says:"$'\n'"$got"
  done
  note "pid $pid port $port: $(tr '\n' ' ' <<<"$got")"
}

# The defaults: 15 s idle, 9 probes, 15 s apart, 150000 ms user timeout.
expect_default_options() { expect_options "$1" "$2" 15 9 15 150000; }

# make_busybox_root DIR [--applets]
# A root file system made of busybox-static alone (plus an empty /proc and
# /tmp); with --applets also its applet links (/bin/sh, /bin/nc, ...), as in
# the busybox image.
make_busybox_root() {
  local root=$1
  [[ -x /bin/busybox ]] || skip "/bin/busybox is missing (Debian package busybox-static)"
  file -L /bin/busybox | grep -q 'statically linked' ||
    skip "/bin/busybox is not the static one (Debian package busybox-static)"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,proc,tmp}
  cp /bin/busybox "$root/bin/busybox"
  if [[ ${2:-} == --applets ]]; then
    chroot "$root" /bin/busybox --install -s
  fi
}

# Whether this kernel and these permissions allow the namespaces asked for
# (e.g. "--pid --fork --mount-proc"); skips with the reason otherwise.
require_namespaces() {
  local err
  if ! err=$(timeout 10 unshare "$@" true 2>&1); then
    skip "unshare $* refused here: $err"
  fi
}

#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The dead-peer demo (packaging/dev.sh demo): two copies of a static client
# connect to a server on loopback, one bare and one under
# keepalive-supervise --keepidle 1 --keepintvl 1 --keepcnt 2; then the path
# is black-holed with nftables, as a NAT or firewall that forgot the
# connection would. The supervised client learns within about 3 s; the bare
# one would wait for hours. Runs inside a private network namespace
# (unshare -n), so nothing on the machine is touched.
#
#   demo_dead_peer.sh BUILD_DIR     (as root)
# Exit 0 when the story was told, 1 when it went otherwise, 77 when this
# machine cannot tell it (no network namespaces or nftables), with one line
# saying why.
set -euo pipefail
BUILD=${1:?usage: demo_dead_peer.sh BUILD_DIR}
CLIENT=$BUILD/tests/helpers/raw_tcp            # static, raw syscalls
SUPERVISE=$BUILD/supervisor/keepalive-supervise
PROBE=$BUILD/tests/helpers/sockopt_probe

unavailable() { echo "dead-peer demo skipped: $*"; exit 77; }
[[ $EUID -eq 0 ]] || unavailable "it needs root (a network namespace and nftables)"
command -v nft >/dev/null || unavailable "nft is missing (Debian package nftables)"
if [[ ${KEEPALIVE_DEMO_IN_NETNS:-} != 1 ]]; then
  unshare -n true 2>/dev/null ||
    unavailable "network namespaces are not available here (unshare -n failed)"
  KEEPALIVE_DEMO_IN_NETNS=1 exec unshare -n "$0" "$@"
fi

ip link set lo up
dir=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# One server port per client; the servers accept and stay silent.
bare_port=7001 kept_port=7002
for port in $bare_port $kept_port; do
  nc -l 127.0.0.1 "$port" </dev/null >/dev/null &
  pids+=($!)
done
for _ in $(seq 100); do
  [[ $(ss -Htln | wc -l) -ge 2 ]] && break
  sleep 0.05
done

"$CLIENT" connect $bare_port --read >"$dir/bare" 2>&1 &
bare=$!
pids+=($bare)
"$SUPERVISE" --keepidle 1 --keepintvl 1 --keepcnt 2 -- \
  "$CLIENT" connect $kept_port --read >"$dir/kept" 2>&1 &
kept=$!
pids+=($kept)
for _ in $(seq 100); do
  grep -q '^connected' "$dir/bare" && grep -q '^connected' "$dir/kept" && break
  sleep 0.05
done
grep -q '^connected' "$dir/kept" || { echo "the supervised client never connected: $(cat "$dir/kept")"; exit 1; }
kept_client=$(awk '/^connected/ { print $4 }' "$dir/kept")
bare_client=$(awk '/^connected/ { print $4 }' "$dir/bare")

echo
echo "Two copies of a static client (raw syscalls, no libc wrappers) hold an"
echo "idle connection to a server on loopback, in a private network namespace:"
echo "  bare:       raw_tcp connect $bare_port --read"
echo "  supervised: keepalive-supervise --keepidle 1 --keepintvl 1 --keepcnt 2 -- raw_tcp connect $kept_port --read"
echo
printf '  %-17s %-10s %s\n' option bare supervised
paste <("$PROBE" "$bare_client" $bare_port 5000) \
      <("$PROBE" "$kept_client" $kept_port 5000) |
  awk '{ printf "  %-17s %-10s %s\n", $1, $2, $4 }'

# The black hole: every packet of both connections dropped, both ways.
nft -f - <<NFT
table inet keepalive_demo {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport { $bare_port, $kept_port } drop
    tcp sport { $bare_port, $kept_port } drop
  }
}
NFT
start=$(date +%s.%N)
echo
echo "Now the path drops every packet (nftables), as a NAT or firewall that"
echo "forgot the connection does. Waiting for the supervised client..."
for _ in $(seq 200); do
  kill -0 "$kept" 2>/dev/null || break
  sleep 0.05
done
end=$(date +%s.%N)
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
status=0
wait "$kept" || status=$?
echo
if kill -0 "$bare" 2>/dev/null && (( status != 0 )); then
  echo "  supervised: gave up after ${elapsed} s: $(grep read-error "$dir/kept" || true)" \
    "(110 is ETIMEDOUT: the kernel closed the dead connection)"
  echo "  bare:       still waiting after ${elapsed} s; with the system's defaults"
  echo "              it would wait for hours (no keepalive on an idle socket)"
  echo
  exit 0
fi
echo "  unexpected: supervised exit status $status after ${elapsed} s; bare" \
  "$(kill -0 "$bare" 2>/dev/null && echo still running || echo ended)"
cat "$dir/kept"
exit 1

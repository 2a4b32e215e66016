#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Set up, build, demonstrate and test keepalive on a Debian 12 machine.
#
#   packaging/dev.sh build   install missing dependencies, configure, build
#   packaging/dev.sh demo    build, then show a static client under
#                            keepalive-supervise give up on a dead peer in
#                            3 s while the bare one hangs, and the options
#                            libkeepalive.so gives netcat
#   packaging/dev.sh demo agent   build, then run a runc container handed
#                            to keepalive-agent and show its socket's options
#   packaging/dev.sh test    build, then clang-tidy, the whole test suite,
#                            then the engine's suites under ASan and UBSan
#   packaging/dev.sh lint    build, then clang-tidy (19) with .clang-tidy
#                            over common/ supervisor/ agent/ preload/
#   packaging/dev.sh tsan    the engine's suites under ThreadSanitizer
#                            (build-tsan/; about 30 minutes on 2 cores)
#   packaging/dev.sh fuzz [SECONDS]   build, then run each fuzz target
#                            for SECONDS (default 60; tests/fuzz/)
#   packaging/dev.sh soak    build, then run the soak tests' long form (a
#                            million trapped calls, 10,000 containers under
#                            one agent, stop storms; about 10 minutes)
#   packaging/dev.sh bench   build, then benchmark every mode
#                            against bare; prints a table, writes a chart
#                            (with upstream's libkeepalive.so beside ours
#                            when it can be fetched: KEEPALIVE_UPSTREAM_GIT
#                            names another repository than GitHub's)
#
# Missing packages are installed with apt-get when run as root; otherwise
# the one apt-get line to run is printed. The build goes to build/ in the
# repository, with warnings as errors when CI=true. Works from any directory.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
readonly BUILD="$REPO/build"
# Everything the build and the tests use, by Debian package name.
PACKAGES=(
  cmake g++ make pkg-config libgtest-dev libseccomp-dev libboost-dev
  netcat-openbsd strace nftables iproute2
  busybox-static util-linux procps dpkg-dev man-db groff-base file python3
  python3-yaml nginx nlohmann-json3-dev libsystemd-dev runc crun
  clang-19 libclang-rt-19-dev clang-tidy-19 golang-go
)
# gcc -m32 -static, for the 32-bit test program (tests/helpers/drop32.c);
# qemu and cpio, to run the kernel-bound suites inside Debian's own kernel,
# where 32-bit code runs (tests/vm/).
if [[ "$(dpkg --print-architecture 2>/dev/null)" == amd64 ]]; then
  PACKAGES+=(gcc-multilib qemu-system-x86 cpio)
fi
readonly PACKAGES
# What the benchmark needs on top (gnuplot draws its chart).
readonly BENCH_PACKAGES=(python3 gnuplot-nox)
# Upper bound for the whole test run; each test also has its own timeout.
readonly TEST_TIMEOUT_SECONDS=1800

log() { printf 'dev.sh: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

usage() {
  sed -n '3,26s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

# Installs those of the named packages that are missing.
install_dependencies() {
  command -v dpkg-query >/dev/null ||
    die "dpkg-query not found; on a non-Debian system install: $*"
  local missing=() package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null |
      grep -q 'install ok installed' || missing+=("$package")
  done
  ((${#missing[@]} == 0)) && return 0
  if ((EUID != 0)); then
    log "missing build dependencies; run as root, then run dev.sh again:"
    echo "apt-get install -y ${missing[*]}"
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # Packages install services (nginx starts one on port 80): the tests run
  # their own, so invoke-rc.d is told to start none, through a policy-rc.d
  # that exists only for the install when the machine has none.
  local policy=/usr/sbin/policy-rc.d status=0
  if [[ -e $policy ]]; then
    apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
  else
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
    rm -f "$policy"
  fi
  return "$status"
}

build() {
  install_dependencies "${PACKAGES[@]}"
  local werror=OFF
  [[ "${CI:-}" == true ]] && werror=ON
  cmake -S "$REPO" -B "$BUILD" -DKEEPALIVE_WERROR="$werror"
  cmake --build "$BUILD" -j "$(nproc)"
}

# --- demo --------------------------------------------------------------------

DEMO_PIDS=()

stop_demo_processes() {
  local pid
  for pid in "${DEMO_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  DEMO_PIDS=()
}

# A loopback port nobody uses right now (and not $1).
free_port() {
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    if [[ "$port" != "${1:-}" && -z "$(ss -Htan "sport = :$port")" ]]; then
      echo "$port"
      return 0
    fi
  done
  die "no free loopback port found"
}

# Starts `nc -l` on $1 and waits until it listens.
start_server() {
  local port=$1
  nc -l 127.0.0.1 "$port" </dev/null >/dev/null &
  DEMO_PIDS+=($!)
  for _ in $(seq 100); do
    [[ -n "$(ss -Htln "sport = :$port")" ]] && return 0
    sleep 0.05
  done
  die "the demo server never listened on port $port"
}

meaning() {
  case "$1" in
    SO_KEEPALIVE) echo "send keepalive probes on an idle connection" ;;
    TCP_KEEPIDLE) echo "seconds idle before the first probe" ;;
    TCP_KEEPCNT) echo "unanswered probes before the connection is dropped" ;;
    TCP_KEEPINTVL) echo "seconds between probes" ;;
    TCP_USER_TIMEOUT) echo "ms data may stay unacknowledged (0: ~15 min of retries)" ;;
    TCP_SYNCNT) echo "SYN retransmissions before connect() fails" ;;
    TCP_DEFER_ACCEPT) echo "listening sockets: seconds to wait for data" ;;
    TCP_MAXSEG) echo "maximum segment size, bytes" ;;
    TCP_WINDOW_CLAMP) echo "receive window limit, bytes" ;;
    *) echo "" ;;
  esac
}

demo() {
  build
  # The main job: a static client under keepalive-supervise notices a dead
  # peer in seconds; the same client bare does not.
  local status=0 told
  told=$(mktemp)
  # (set -e would end the group at a failure before its status is kept.)
  { "$REPO/packaging/demo_dead_peer.sh" "$BUILD" && echo 0 >"$told.status" ||
      echo $? >"$told.status"; } | tee "$told"
  status=$(cat "$told.status")
  case $status in
    0 | 77) ;;
    *) rm -f "$told" "$told.status"; die "the dead-peer demo did not go as it should (status $status)" ;;
  esac
  echo "Second part: the preload library, for dynamically linked programs."
  demo_preload
  # The outcome once more, last, where the eye lands.
  if (( status == 0 )); then
    echo "In short, when the path to the peer died:"
    sed -n '/^  supervised: gave up/,$p' "$told"
  fi
  rm -f "$told" "$told.status"
}

demo_preload() {
  local library="$BUILD/preload/libkeepalive.so"
  local probe="$BUILD/tests/helpers/sockopt_probe"
  local port plain_port with without
  trap stop_demo_processes EXIT
  trap 'exit 130' INT TERM  # so that the EXIT trap runs on ^C too
  port=$(free_port)
  plain_port=$(free_port "$port")
  start_server "$port"
  start_server "$plain_port"

  # Two clients, with and without the library. Debian's nc keeps its
  # connection open after EOF on stdin.
  LD_PRELOAD="$library" nc 127.0.0.1 "$port" </dev/null >/dev/null &
  DEMO_PIDS+=($!)
  with=$("$probe" "$!" "$port" 5000)
  nc 127.0.0.1 "$plain_port" </dev/null >/dev/null &
  DEMO_PIDS+=($!)
  without=$("$probe" "$!" "$plain_port" 5000)

  echo
  echo "Two netcat clients on loopback, read from outside by sockopt_probe:"
  echo "  with:    LD_PRELOAD=$library nc 127.0.0.1 $port"
  echo "  without: nc 127.0.0.1 $plain_port"
  echo
  printf '  %-17s %-8s %-8s %s\n' option with without meaning
  local name value default
  while read -r name value; do
    default=$(awk -v n="$name" '$1 == n { print $2 }' <<<"$without")
    printf '  %-17s %-8s %-8s %s\n' "$name" "$value" "$default" \
      "$(meaning "$name")"
  done <<<"$with"
  echo
  echo "ss -tnoi shows the keepalive timer on the connection with the library:"
  ss -tnoi "dport = :$port" | sed 's/^/  /'
  echo
  stop_demo_processes
  trap - EXIT INT TERM
}

# A runc container whose profile (keepalive-agent profile) hands it to a
# keepalive-agent started here; its socket's options read from outside.
demo_agent() {
  build
  [[ $EUID -eq 0 ]] || die "demo agent runs runc and the agent: run it as root"
  local probe="$BUILD/tests/helpers/sockopt_probe"
  local agent="$BUILD/agent/keepalive-agent"
  local dir port line pid
  dir=$(mktemp -d /tmp/keepalive-demo.XXXXXX)
  trap 'stop_demo_processes; runc --root "$dir/state" delete --force keepalive-demo >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
  trap 'exit 130' INT TERM
  port=$(free_port)
  start_server "$port"

  "$agent" --socket "$dir/agent.sock" --keepidle 30 -v 2>"$dir/agent.log" &
  DEMO_PIDS+=($!)
  for _ in $(seq 100); do
    [[ -S $dir/agent.sock ]] && break
    sleep 0.05
  done

  mkdir -p "$dir/bundle/rootfs"
  cp "$BUILD/tests/helpers/raw_tcp" "$dir/bundle/rootfs/raw_tcp"
  runc spec --bundle "$dir/bundle"
  "$agent" profile --socket "$dir/agent.sock" --metadata "--keepcnt=4" \
    >"$dir/profile.json"
  # The container: the static client, in the host's network namespace (to
  # reach the demo server) and pid namespace (for sockopt_probe).
  python3 - "$dir/bundle/config.json" "$dir/profile.json" "$port" <<'PYTHON'
import json, sys
path, profile, port = sys.argv[1:]
config = json.load(open(path))
config["process"]["terminal"] = False
config["process"]["args"] = ["/raw_tcp", "connect", port]
config["linux"]["namespaces"] = [
    ns for ns in config["linux"]["namespaces"]
    if ns["type"] not in ("network", "pid")]
config["linux"]["seccomp"] = json.load(open(profile))
json.dump(config, open(path, "w"), indent=2)
PYTHON
  mkfifo "$dir/stdin"
  runc --root "$dir/state" run --bundle "$dir/bundle" keepalive-demo \
    <"$dir/stdin" >"$dir/container.out" 2>&1 &
  DEMO_PIDS+=($!)
  exec 8>"$dir/stdin"  # holds the container's stdin open
  for _ in $(seq 200); do
    line=$(grep -m1 '^connected' "$dir/container.out" || true)
    [[ -n $line ]] && break
    sleep 0.05
  done
  [[ -n $line ]] || die "the container never connected: $(cat "$dir/container.out")"
  pid=$(awk '{ print $4 }' <<<"$line")

  echo
  echo "A runc container whose seccomp profile (keepalive-agent profile"
  echo "--metadata '--keepcnt=4') hands connect() to keepalive-agent --keepidle 30:"
  echo
  sed 's/^/  /' "$dir/agent.log"
  echo
  echo "Its socket, read from outside by sockopt_probe:"
  local name value
  while read -r name value; do
    printf '  %-17s %-8s %s\n' "$name" "$value" "$(meaning "$name")"
  done < <("$probe" "$pid" "$port" 5000)
  echo
  exec 8>&-
  stop_demo_processes
  runc --root "$dir/state" delete --force keepalive-demo >/dev/null 2>&1 || true
  rm -rf "$dir"
  trap - EXIT INT TERM
}

# --- test --------------------------------------------------------------------

run_tests() {
  build
  lint
  # Debian's kernel for tests/vm (downloaded, not installed).
  if [[ "$(dpkg --print-architecture 2>/dev/null)" == amd64 ]]; then
    "$REPO/tests/vm/fetch_kernel.sh" "$BUILD/vm-kernel" ||
      log "no kernel for the VM tests: supervisor.vm.debian12_kernel skips"
  fi
  # Debian's libkeepalive0, to compare the old variables side by side
  # (downloaded, not installed: it conflicts with our package).
  "$REPO/tests/preload/fetch_libkeepalive0.sh" "$BUILD/libkeepalive0" ||
    log "no libkeepalive0: StraceTest.OldVariablesDoWhatLibkeepalive0Did skips"
  timeout --kill-after=30 "$TEST_TIMEOUT_SECONDS" \
    ctest --test-dir "$BUILD" --output-on-failure --timeout 300 \
    -j "${CTEST_PARALLEL_LEVEL:-$(nproc)}"
  sanitized_tests
}

# clang-tidy over the product's sources, with the compile commands of the
# build (tests/lint/run_clang_tidy.sh): about a minute on 2 cores.
lint() {
  log "clang-tidy over common/, supervisor/, agent/, preload/"
  "$REPO/tests/lint/run_clang_tidy.sh" "$REPO" "$BUILD"
}

# The engine's suites built with ThreadSanitizer (KEEPALIVE_SANITIZE=thread)
# in build-tsan/: the serving thread, the event loop, the agent. Too slow
# for every run (about 12 minutes of build and 10 of tests on 2 cores).
tsan_tests() {
  log "the ThreadSanitizer build and its tests"
  sanitizer_run "$REPO/build-tsan" thread 'supervisor|agent' 'vm|fuzz|soak'
}

# The engine's suites again, built with AddressSanitizer and
# UndefinedBehaviorSanitizer (KEEPALIVE_SANITIZE) in build-sanitize/: the
# supervisor, the agent and the option model, where a memory error would
# hide. The preload and packaging suites run only in the plain build.
sanitized_tests() {
  log "the sanitizer build (ASan + UBSan) and its tests"
  sanitizer_run "$REPO/build-sanitize" ON 'common|supervisor|agent' 'vm|fuzz'
}

# Builds the tree in DIR with -DKEEPALIVE_SANITIZE=VALUE and runs the tests
# labelled LABELS but not EXCLUDED; a sanitizer's report fails its test.
sanitizer_run() {
  local dir="$1" value="$2" labels="$3" excluded="$4" werror=OFF
  [[ "${CI:-}" == true ]] && werror=ON
  cmake -S "$REPO" -B "$dir" -DKEEPALIVE_SANITIZE="$value" \
    -DKEEPALIVE_WERROR="$werror" >/dev/null
  cmake --build "$dir" -j "$(nproc)" >/dev/null
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    timeout --kill-after=30 "$TEST_TIMEOUT_SECONDS" \
    ctest --test-dir "$dir" --output-on-failure --timeout 300 \
    -L "$labels" -LE "$excluded" \
    -j "${CTEST_PARALLEL_LEVEL:-$(nproc)}"
}

# --- bench -------------------------------------------------------------------

bench() {
  build
  install_dependencies "${BENCH_PACKAGES[@]}"
  # Upstream's library, for the `upstream connect` row; the bench runs
  # without that row (and says so) when it cannot be had (no git, no
  # network).
  if "$REPO/tests/bench/fetch_upstream.sh" "$BUILD/upstream-libkeepalive" \
    ${KEEPALIVE_UPSTREAM_GIT:+"$KEEPALIVE_UPSTREAM_GIT"}; then
    export KEEPALIVE_BENCH_UPSTREAM="$BUILD/upstream-libkeepalive"
  fi
  cmake --build "$BUILD" --target bench
  log "table above; results.csv and chart.png in $BUILD/bench"
}

case "${1:-}" in
  build) build ;;
  demo)
    case "${2:-}" in
      "") demo ;;
      agent) demo_agent ;;
      *) usage ;;
    esac ;;
  test) run_tests ;;
  lint)
    build
    lint ;;
  tsan)
    build
    tsan_tests ;;
  bench) bench ;;
  fuzz)
    build
    "$REPO/tests/fuzz/run_fuzz.sh" "$REPO" "$BUILD" "${2:-60}" ;;
  soak)
    build
    KEEPALIVE_SOAK=long ctest --test-dir "$BUILD" -L soak \
      --output-on-failure --verbose ;;
  *) usage ;;
esac

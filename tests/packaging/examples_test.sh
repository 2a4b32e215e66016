#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The examples in packaging/examples/, run as far as they can run here.
#
#   examples_test.sh dockerfile   the image's files (COPY) and environment
#       (ENV) are reproduced in a busybox-only root, and its exact argv
#       (ENTRYPOINT + CMD) runs there as PID 1 of a pid namespace, under a
#       filter refusing pidfd_getfd as Docker's default profile does; the
#       options it declares are read back on the application's socket
#   examples_test.sh systemd      the drop-in's ExecStart= command line runs
#       with its Environment= in a private network namespace (its port is
#       fixed); a real client connects and the options are read back on the
#       accepted connection; SIGTERM (systemctl stop) gives a status the
#       drop-in counts as success
#   examples_test.sh kubernetes   the pod parses as YAML; the app's command
#       starts with the path the init container copies the binary to, and
#       the init container copies it from where the Dockerfile puts it
#   examples_test.sh kubernetes-agent   the DaemonSet's ConfigMap holds
#       the profile keepalive-agent-profile.json holds, which is what
#       `keepalive-agent profile` prints (the runc and crun tests run with
#       its output); the agent listens where the profile points, in the
#       host's pid namespace
#
# Needs: KEEPALIVE_SUPERVISE, KEEPALIVE_SUPERVISE_STATIC, SOCKOPT_PROBE,
# KEEPALIVE_AGENT (kubernetes-agent),
# KEEPALIVE_SOURCE_DIR; DENY_SYSCALLS if built.
source "$(dirname "$0")/lib.sh"
bounded_self 90 "$@"

: "${KEEPALIVE_SOURCE_DIR:?}" "${SOCKOPT_PROBE:?}"
EXAMPLES=$KEEPALIVE_SOURCE_DIR/packaging/examples
PY=$(python3_path)

# read_example KIND PATH: fills COPIES (src dest pairs), ENVS (KEY=VALUE),
# SUCCESS (statuses) and ARGV from example_files.py.
read_example() {
  local fields=() i=0
  mapfile -d '' fields < <("$PY" "$TEST_DIR/example_files.py" "$1" "$2"; echo -n "status$?")
  [[ ${fields[-1]} == status0 ]] || fail "cannot read $2"
  unset 'fields[-1]'
  COPIES=() ENVS=() SUCCESS=() ARGV=()
  while (( i < ${#fields[@]} )); do
    case ${fields[i]} in
      copy) COPIES+=("${fields[i+1]}" "${fields[i+2]}"); i=$((i + 3)) ;;
      env) ENVS+=("${fields[i+1]}"); i=$((i + 2)) ;;
      success) SUCCESS+=("${fields[i+1]}"); i=$((i + 2)) ;;
      argv) ARGV=("${fields[@]:i+1}"); break ;;
      *) fail "unexpected field ${fields[i]}" ;;
    esac
  done
  (( ${#ARGV[@]} > 0 )) || fail "no command line in $2"
}

# The value of VAR in ENVS (last one wins), else DEFAULT.
env_value() {
  local var=$1 value=$2 pair
  for pair in "${ENVS[@]}"; do
    [[ ${pair%%=*} == "$var" ]] && value=${pair#*=}
  done
  echo "$value"
}

expect_declared_options() {
  local idle cnt intvl
  idle=$(env_value TCP_KEEPIDLE 15)
  cnt=$(env_value TCP_KEEPCNT 9)
  intvl=$(env_value TCP_KEEPINTVL 15)
  expect_options "$1" "$2" "$idle" "$cnt" "$intvl" \
    "$(env_value TCP_USER_TIMEOUT "$(derived_user_timeout "$idle" "$intvl" "$cnt")")"
}

case_dockerfile() {
  : "${KEEPALIVE_SUPERVISE_STATIC:?}"
  require_root "chroot and mount"
  require_namespaces --pid --fork --mount --mount-proc
  read_example dockerfile "$EXAMPLES/Dockerfile"
  note "image argv: ${ARGV[*]}"
  make_scratch
  local root=$SCRATCH/root i
  make_busybox_root "$root" --applets   # what FROM busybox provides
  for (( i = 0; i < ${#COPIES[@]}; i += 2 )); do
    [[ ${COPIES[i]} == keepalive-supervise-static ]] ||
      fail "COPY of an unknown build-context file: ${COPIES[i]}"
    mkdir -p "$root$(dirname "${COPIES[i+1]}")"
    cp "$KEEPALIVE_SUPERVISE_STATIC" "$root${COPIES[i+1]}"
  done
  [[ -x $root${ARGV[0]} ]] || fail "the ENTRYPOINT ${ARGV[0]} is not what COPY installed"

  start_server
  # docker run -e UPSTREAM_HOST=... -e UPSTREAM_PORT=... IMAGE
  ENVS+=("UPSTREAM_HOST=127.0.0.1" "UPSTREAM_PORT=$SERVER_PORT")
  local profile=()
  if [[ -n ${DENY_SYSCALLS:-} ]]; then
    profile=("$DENY_SYSCALLS" pidfd_getfd)  # Docker's default profile
  else
    note "deny_syscalls not built: running without the Docker-like profile"
  fi
  mkfifo "$SCRATCH/input"
  exec 3<>"$SCRATCH/input"
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "${ENVS[@]}" "${profile[@]}" \
    unshare --pid --fork --kill-child --mount --mount-proc="$root/proc" \
    chroot "$root" "${ARGV[@]}" <&3 2>"$SCRATCH/stderr" &
  local ns=$!
  STARTED_PIDS+=("$ns")

  local pid sup
  pid=$(client_pid "$SERVER_PORT") || fail "the image's command did not connect; stderr: $(cat "$SCRATCH/stderr")"
  expect_declared_options "$pid" "$SERVER_PORT"
  sup=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$pid/status")
  [[ $(awk '/^NSpid:/ { print $NF }' "/proc/$sup/status") == 1 ]] ||
    fail "the entrypoint (pid $sup) is not PID 1 of the container's namespace"
  [[ $(readlink "/proc/$sup/exe") == "$root${ARGV[0]}" ]] ||
    fail "pid $sup is not the ENTRYPOINT: $(readlink "/proc/$sup/exe")"

  kill "$SERVER_PID"
  local status=0
  wait "$ns" || status=$?
  [[ $status -eq 0 ]] || fail "the container exited $status; stderr: $(cat "$SCRATCH/stderr")"
  if (( ${#profile[@]} > 0 )); then
    if [[ $(wc -l <"$SCRATCH/stderr") -ne 1 ]] || ! grep -q 'degraded' "$SCRATCH/stderr"; then
      fail "expected one 'degraded' line under the Docker-like profile: $(cat "$SCRATCH/stderr")"
    fi
  fi
  note "stderr: $(cat "$SCRATCH/stderr")"
}

case_systemd() {
  : "${KEEPALIVE_SUPERVISE:?}"
  require_root "a private network namespace"
  require_namespaces --net
  # The example's port is fixed: give it a network namespace of its own.
  if [[ -z ${KEEPALIVE_TEST_NETNS:-} ]]; then
    export KEEPALIVE_TEST_NETNS=1
    exec unshare --net bash "$0" systemd
  fi
  ip link set lo up

  read_example systemd "$EXAMPLES/systemd/keepalive.conf"
  note "ExecStart: ${ARGV[*]}"
  [[ ${ARGV[0]} == /usr/bin/keepalive-supervise ]] ||
    fail "ExecStart= should run the installed /usr/bin/keepalive-supervise"
  local server_path
  server_path=$(for (( i = 1; i < ${#ARGV[@]}; i++ )); do
                  [[ ${ARGV[i]} == -- ]] && { echo "${ARGV[i+1]}"; break; }
                done)
  [[ -x $server_path ]] || skip "the example's service $server_path is not installed here"
  # The binary under test stands in for the installed one.
  ARGV[0]=$KEEPALIVE_SUPERVISE
  local port
  port=$(grep -o '[0-9]\+$' <<<"${ARGV[-1]}") || fail "no port at the end of ExecStart="

  make_scratch
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "${ENVS[@]}" "${ARGV[@]}" >"$SCRATCH/stdout" 2>"$SCRATCH/stderr" &
  local sup=$!
  STARTED_PIDS+=("$sup")
  local i
  for i in $(seq 200); do
    ss -tlnH "( sport = :$port )" | grep -q . && break
    sleep 0.05
  done
  exec 4<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect; stderr: $(cat "$SCRATCH/stderr")"
  local client server
  client=$(client_port "$port") || fail "no connection to port $port"
  server=$(server_pid "$port") || fail "no process accepted the connection on port $port"
  expect_declared_options "$server" "$client"
  exec 4>&-

  kill -TERM "$sup"  # systemctl stop
  local status=0
  wait "$sup" || status=$?
  [[ " 0 ${SUCCESS[*]} " == *" $status "* ]] ||
    fail "stopped with SIGTERM, the service exited $status, not in SuccessExitStatus=${SUCCESS[*]}"
  note "stopped: status $status"
}

case_kubernetes() {
  local fields=() status=0
  mapfile -d '' fields < <("$PY" "$TEST_DIR/example_files.py" kubernetes \
    "$EXAMPLES/kubernetes/pod.yaml"; echo -n "status$?")
  status=${fields[-1]#status}
  [[ $status -eq 77 ]] && skip "PyYAML is missing for $PY (Debian package python3-yaml)"
  [[ $status -eq 0 ]] || fail "the pod example does not hold together"
  # The init container copies from where the Dockerfile's COPY puts it.
  local src=${fields[1]}
  read_example dockerfile "$EXAMPLES/Dockerfile"
  [[ ${COPIES[1]} == "$src" ]] ||
    fail "the init container copies $src; the Dockerfile installs ${COPIES[1]}"
}

case_kubernetes_agent() {
  make_scratch
  : "${KEEPALIVE_AGENT:?}"
  "$PY" -c 'import yaml' 2>/dev/null ||
    skip "PyYAML is missing for $PY (Debian package python3-yaml)"
  "$KEEPALIVE_AGENT" profile >"$SCRATCH/generated.json" ||
    fail "keepalive-agent profile failed"
  "$PY" - "$EXAMPLES/kubernetes" "$SCRATCH/generated.json" <<'PYTHON' ||
import json, sys, yaml
folder, generated = sys.argv[1], sys.argv[2]
def fail(message):
    print(f"examples_test.sh: {message}", file=sys.stderr)
    sys.exit(1)
docs = list(yaml.safe_load_all(open(f"{folder}/agent-daemonset.yaml")))
kinds = {d["kind"]: d for d in docs}
shipped = json.load(open(f"{folder}/keepalive-agent-profile.json"))
expected = json.load(open(generated))
if shipped != expected:
    fail("keepalive-agent-profile.json is not what keepalive-agent profile prints")
config = kinds["ConfigMap"]["data"]["keepalive-agent-profile.json"]
if json.loads(config) != expected:
    fail("the DaemonSet's ConfigMap holds another profile")
spec = kinds["DaemonSet"]["spec"]["template"]["spec"]
if not spec.get("hostPID"):
    fail("the agent must run in the host's pid namespace (hostPID)")
argv = spec["containers"][0]["command"]
if argv[argv.index("--socket") + 1] != expected["listenerPath"]:
    fail("the agent listens elsewhere than the profile's listenerPath")
PYTHON
    fail "the Kubernetes agent example does not hold together"
  note "profile, ConfigMap and generator agree"
}

case ${1:-} in
  dockerfile) case_dockerfile ;;
  kubernetes-agent) case_kubernetes_agent ;;
  systemd) case_systemd ;;
  kubernetes) case_kubernetes ;;
  *) fail "usage: examples_test.sh dockerfile|systemd|kubernetes|kubernetes-agent" ;;
esac
echo "PASS: $1"

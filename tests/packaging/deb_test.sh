#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# THIS TEST MUTATES THE MACHINE: it installs the keepalive .deb with dpkg and
# removes it again (always, on failure too). It skips when not root, when
# libkeepalive0 (which the package conflicts with) or a keepalive package
# is already installed.
#
# It configures a separate build (CMAKE_INSTALL_PREFIX=/usr, no tests) in a
# fixed directory under the main build, so that later runs are incremental,
# runs `cpack -G DEB` there, checks the package's metadata, installs it,
# runs both modes from the installed paths (LD_PRELOAD=libkeepalive.so by
# bare name; /usr/bin/keepalive-supervise -- busybox nc) and reads the
# options back from the kernel, checks `man -w`, then `dpkg -r` and checks
# that every file it had installed is gone.
#
# Needs: KEEPALIVE_SOURCE_DIR, KEEPALIVE_BINARY_DIR, SOCKOPT_PROBE.
source "$(dirname "$0")/lib.sh"
bounded_self 840 "$@"

: "${KEEPALIVE_SOURCE_DIR:?}" "${KEEPALIVE_BINARY_DIR:?}" "${SOCKOPT_PROBE:?}"
require_root "dpkg -i"
for tool in dpkg-deb dpkg-shlibdeps cpack; do
  command -v "$tool" >/dev/null || skip "$tool is missing (Debian package dpkg-dev / cmake)"
done
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == *" installed" ]]; }
installed libkeepalive0 && skip "libkeepalive0 is installed; the package conflicts with it"

make_scratch
deb_build=$KEEPALIVE_BINARY_DIR/deb-build
note "building the package in $deb_build"
timeout 300 cmake -S "$KEEPALIVE_SOURCE_DIR" -B "$deb_build" \
  -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=Release \
  -DKEEPALIVE_BUILD_TESTS=OFF >"$SCRATCH/configure.log" 2>&1 ||
  fail "configure failed: $(tail -n 30 "$SCRATCH/configure.log")"
timeout 400 cmake --build "$deb_build" -j2 >"$SCRATCH/build.log" 2>&1 ||
  fail "build failed: $(tail -n 30 "$SCRATCH/build.log")"
rm -f "$deb_build"/keepalive_*.deb
(cd "$deb_build" && timeout 200 cpack -G DEB) >"$SCRATCH/cpack.log" 2>&1 ||
  fail "cpack failed: $(tail -n 30 "$SCRATCH/cpack.log")"
debs=("$deb_build"/keepalive_*_"$(dpkg --print-architecture)".deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || fail "cpack made no single .deb: ${debs[*]}"
deb=${debs[0]}
note "package: $deb"

# --- Metadata ----------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == keepalive ]] || fail "Package: $(field Package)"
depends=$(field Depends)
# libsystemd0: keepalive-agent's fd store and socket activation.
for dep in libc6 libsystemd0; do
  grep -q "\b$dep" <<<"$depends" || fail "Depends lacks $dep: $depends"
done
# The C++ runtime and libseccomp are linked into keepalive-supervise
# (start-up) and keepalive-agent; Boost is used for its headers only.
for dep in libboost libstdc++ libseccomp; do
  grep -q "\b$dep" <<<"$depends" && fail "Depends has $dep: $depends"
done
[[ $(field Conflicts) == libkeepalive0 ]] || fail "Conflicts: $(field Conflicts)"
# The libraries go to the multiarch directory, so no file is taken over
# from libkeepalive0: no Replaces.
[[ -z $(field Replaces) ]] || fail "Replaces without a file clash: $(field Replaces)"
dpkg-deb -e "$deb" "$SCRATCH/control"
grep -qx 'activate-noawait ldconfig' "$SCRATCH/control/triggers" ||
  fail "no ldconfig trigger"
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
libdir=/usr/lib/$multiarch
contents=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')
for path in /usr/bin/keepalive-supervise \
            "$libdir/libkeepalive.so" "$libdir/libkeepalive_listen.so" \
            "$libdir/libkeepalive_socket.so" \
            /usr/libexec/keepalive/keepalive-supervise-static \
            /usr/share/man/man1/keepalive-supervise.1.gz \
            /usr/share/man/man7/libkeepalive.7.gz \
            /usr/bin/keepalive-agent \
            /usr/share/man/man8/keepalive-agent.8.gz \
            /usr/lib/systemd/system/keepalive-agent.service \
            /usr/lib/systemd/system/keepalive-agent.socket \
            /usr/share/doc/keepalive/copyright \
            /usr/share/doc/keepalive/examples/Dockerfile; do
  grep -qx "$path" <<<"$contents" || fail "the package lacks $path"
done

# --- Install (removed again on any exit from here on) --------------------------
# Other runs of this test (other build directories) install the same
# package: one at a time, machine-wide.
exec 9>/run/lock/keepalive-deb-test.lock
flock -w 400 9 || fail "another run of this test held /run/lock/keepalive-deb-test.lock for 400 s"
installed keepalive && skip "a keepalive package is already installed; remove it first"

# dpkg DPKG-ARGS...: dpkg, waiting up to 120 s for its lock if another
# dpkg or apt-get holds it.
dpkg_waiting() {
  local i out
  for i in $(seq 120); do
    if out=$(dpkg "$@" 2>&1); then
      echo "$out"
      return 0
    fi
    grep -q 'lock' <<<"$out" || { echo "$out"; return 1; }
    sleep 1
  done
  echo "$out"
  return 1
}
# Purged, not just removed: the maintainer scripts would keep the package
# known to dpkg as "config-files".
remove_package() {
  if dpkg-query -W keepalive >/dev/null 2>&1; then
    dpkg_waiting --purge keepalive >/dev/null || echo "WARNING: dpkg --purge keepalive failed" >&2
  fi
}
add_cleanup remove_package
dpkg_waiting -i "$deb" >"$SCRATCH/dpkg-i.log" ||
  fail "dpkg -i failed: $(cat "$SCRATCH/dpkg-i.log")"
installed keepalive || fail "keepalive is not installed after dpkg -i"
dpkg -L keepalive >"$SCRATCH/files"
note "installed $(wc -l <"$SCRATCH/files") paths"

# (/lib is /usr/lib on a merged-/usr system: the cache may name either.)
ldconfig -p | grep -Eq "libkeepalive.so .*=> (/usr)?/lib/$multiarch/libkeepalive.so$" ||
  fail "the loader's cache does not list $libdir/libkeepalive.so: $(ldconfig -p | grep keepalive)"

start_server
mkfifo "$SCRATCH/input"
exec 3<>"$SCRATCH/input"

note "LD_PRELOAD=libkeepalive.so (bare name) with a dynamically linked client"
client=(/usr/bin/python3 -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sys.stdin.read()')
if [[ -x /bin/nc.openbsd ]]; then client=(/bin/nc.openbsd); fi
file -L "${client[0]}" | grep -q 'dynamically linked' || fail "${client[0]} is not dynamic"
env -i PATH=/usr/bin:/bin LD_PRELOAD=libkeepalive.so \
  "${client[@]}" 127.0.0.1 "$SERVER_PORT" <&3 2>"$SCRATCH/preload.err" &
preload_pid=$!
STARTED_PIDS+=("$preload_pid")
pid=$(client_pid "$SERVER_PORT") || fail "the client did not connect: $(cat "$SCRATCH/preload.err")"
grep -Eq "(/usr)?/lib/$multiarch/libkeepalive.so$" "/proc/$pid/maps" ||
  fail "libkeepalive.so is not mapped in the client: $(cat "$SCRATCH/preload.err")"
expect_default_options "$pid" "$SERVER_PORT"
kill "$preload_pid"
wait "$preload_pid" 2>/dev/null || true
[[ ! -s $SCRATCH/preload.err ]] || fail "the preloaded client said: $(cat "$SCRATCH/preload.err")"

note "/usr/bin/keepalive-supervise -- busybox nc"
[[ -x /bin/busybox ]] || fail "/bin/busybox is missing (Debian package busybox-static)"
env -i PATH=/usr/bin:/bin /usr/bin/keepalive-supervise -- \
  /bin/busybox nc 127.0.0.1 "$SERVER_PORT" <&3 2>"$SCRATCH/supervise.err" &
sup=$!
STARTED_PIDS+=("$sup")
# The first client may still be closing: wait for busybox's connection.
busybox=$(readlink -f /bin/busybox)
for i in $(seq 200); do
  pid=$(client_pid "$SERVER_PORT") || true
  [[ -n $pid && $(readlink "/proc/$pid/exe") == "$busybox" ]] && break
  sleep 0.05
done
[[ $(readlink "/proc/$pid/exe") == "$busybox" ]] ||
  fail "busybox nc did not connect: $(cat "$SCRATCH/supervise.err")"
expect_default_options "$pid" "$SERVER_PORT"
kill "$SERVER_PID"
status=0
wait "$sup" || status=$?
[[ $status -eq 0 ]] || fail "keepalive-supervise exited $status: $(cat "$SCRATCH/supervise.err")"

note "the static supervisor"
/usr/libexec/keepalive/keepalive-supervise-static --version | grep -q '^keepalive-supervise ' ||
  fail "keepalive-supervise-static --version"

note "man pages"
[[ $(man -w keepalive-supervise) == /usr/share/man/man1/keepalive-supervise.1.gz ]] ||
  fail "man -w keepalive-supervise: $(man -w keepalive-supervise 2>&1)"
[[ $(man -w 7 libkeepalive) == /usr/share/man/man7/libkeepalive.7.gz ]] ||
  fail "man -w 7 libkeepalive: $(man -w 7 libkeepalive 2>&1)"
LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings keepalive-supervise 2>"$SCRATCH/man.err" |
  grep -q 'keepalive-supervise' || fail "man keepalive-supervise renders nothing"
[[ ! -s $SCRATCH/man.err ]] || fail "man keepalive-supervise warns: $(cat "$SCRATCH/man.err")"
[[ $(man -w 8 keepalive-agent) == /usr/share/man/man8/keepalive-agent.8.gz ]] ||
  fail "man -w 8 keepalive-agent: $(man -w 8 keepalive-agent 2>&1)"

note "the agent and its units"
/usr/bin/keepalive-agent --version | grep -q '^keepalive-agent ' ||
  fail "keepalive-agent --version"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /usr/lib/systemd/system/keepalive-agent.socket \
    /usr/lib/systemd/system/keepalive-agent.service >"$SCRATCH/verify.log" 2>&1 ||
    fail "systemd-analyze verify: $(cat "$SCRATCH/verify.log")"
fi

# --- Remove --------------------------------------------------------------------
dpkg_waiting -r keepalive >"$SCRATCH/dpkg-r.log" ||
  fail "dpkg -r failed: $(cat "$SCRATCH/dpkg-r.log")"
! installed keepalive || fail "keepalive is still installed"
left=()
while read -r path; do
  if [[ -d $path && ! -L $path ]]; then
    # Directories stay only when something else still uses them.
    [[ -n $(ls -A "$path") ]] || left+=("$path (empty directory)")
  elif [[ -e $path || -L $path ]]; then
    left+=("$path")
  fi
done <"$SCRATCH/files"
(( ${#left[@]} == 0 )) || fail "left behind by dpkg -r: ${left[*]}"
[[ ! -e /usr/libexec/keepalive && ! -e /usr/share/doc/keepalive ]] ||
  fail "the package's own directories were left behind"
! ldconfig -p | grep -q "libkeepalive" ||
  fail "the loader's cache still lists libkeepalive after removal"
echo "PASS: the .deb builds, installs, works from the installed paths and removes cleanly"

#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs built test programs inside Debian 12's own kernel (6.1, IA32
# emulation on) under qemu with TCG, so that no KVM is needed: there the
# 32-bit system call interface works, whatever the machine's own kernel
# allows, and the suites meet a kernel without PIDFD_THREAD (6.9),
# SYNC_WAKE_UP (6.6) or io_uring setsockopt (6.7).
#
#   run_in_vm.sh KERNEL_DIR BUILD_DIR PROGRAM:GTEST_FILTER...
#
# KERNEL_DIR holds boot/vmlinuz-* (fetch_kernel.sh puts it there). The
# initramfs holds busybox-static, the build's supervisor, its test helpers
# and the named programs (tests/supervisor/PROGRAM), at the paths they were
# built with, with the libraries ldd names. Exits 0 when every program
# passed, 1 when one failed, 77 (skipped) when qemu or the kernel is
# missing. Environment: REQUIRED="TEST..." names tests (as gtest prints
# them) that must pass there, not skip; SUPERVISE=FILE stands in for the build's
# supervisor (to see a test fail against another version); EXTRA="FILE..."
# takes more programs along; SCRIPT=FILE appends shell commands to the
# VM's run.
set -euo pipefail

(($# >= 3)) || {
  echo "usage: run_in_vm.sh KERNEL_DIR BUILD_DIR PROGRAM:FILTER..." >&2
  exit 2
}
kernel_dir=$1 build=$2
shift 2
runs=("$@")

skip() {
  echo "SKIPPED: $*"
  exit 77
}
command -v qemu-system-x86_64 >/dev/null ||
  skip "qemu-system-x86_64 not installed (Debian: qemu-system-x86)"
command -v cpio >/dev/null || skip "cpio not installed"
busybox=$(command -v busybox) || skip "busybox not installed"
kernel=$(ls "$kernel_dir"/boot/vmlinuz-* 2>/dev/null | head -1) ||
  skip "no kernel in $kernel_dir (packaging/dev.sh test fetches it)"
[[ -n $kernel ]] ||
  skip "no kernel in $kernel_dir (packaging/dev.sh test fetches it)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,usr/bin,proc,sys,dev,tmp,etc,lib64}
cp "$busybox" "$root/bin/busybox"
for tool in $("$root/bin/busybox" --list); do
  [[ $tool == busybox ]] || ln -sf /bin/busybox "$root/bin/$tool"
done
ln -sf /bin/busybox "$root/usr/bin/env"
printf '%s\n' "root:x:0:0:root:/:/bin/sh" "nobody:x:65534:65534::/:/bin/sh" \
  >"$root/etc/passwd"
printf '%s\n' "root:x:0:" "nogroup:x:65534:" >"$root/etc/group"

# A file and the shared libraries it needs, at their own paths.
take() {
  local file=$1 lib
  mkdir -p "$root$(dirname "$file")"
  cp -L "$file" "$root$file"
  { ldd "$file" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } |
    while read -r lib; do
      [[ -e $root$lib ]] || take "$lib"
    done
}
take "$build/supervisor/keepalive-supervise"
for f in "$build"/tests/helpers/*; do
  [[ -f $f && -x $f ]] && take "$f"
done
for run in "${runs[@]}"; do take "$build/tests/supervisor/${run%%:*}"; done
for f in ${EXTRA:-}; do take "$f"; done
if [[ -n ${SUPERVISE:-} ]]; then
  take "$SUPERVISE"
  cp -L "$SUPERVISE" "$root$build/supervisor/keepalive-supervise"
fi
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"

{
  echo '#!/bin/sh'
  echo 'mount -t proc proc /proc; mount -t sysfs sys /sys'
  # /tmp stays the initramfs's own (writable) directory: a build under
  # /tmp lives there.
  echo 'mount -t devtmpfs dev /dev; chmod 1777 /tmp'
  echo 'mkdir -p /sys/fs/cgroup; mount -t cgroup2 cgroup2 /sys/fs/cgroup'
  echo 'ip link set lo up'
  echo 'echo "vm: kernel $(uname -r)"'
  echo "cd $build/tests/supervisor || poweroff -f"
  echo 'status=0'
  for run in "${runs[@]}"; do
    echo "echo 'vm: running ${run}'"
    echo "./${run%%:*} --gtest_filter='${run#*:}' --gtest_color=no || status=1"
  done
  [[ -z ${SCRIPT:-} ]] || cat "$SCRIPT"
  echo 'echo "vm: done status=$status"'
  echo 'poweroff -f'
} >"$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"

# TCG: a few times slower than the machine itself; every program bounds its
# own waits, and this bounds the whole run.
timeout --kill-after=10 900 qemu-system-x86_64 -accel tcg -cpu max \
  -m 2048 -smp 2 -nographic -no-reboot -kernel "$kernel" \
  -initrd "$work/initrd.gz" \
  -append "console=ttyS0 panic=-1 quiet rdinit=/init" </dev/null |
  tee "$work/console.log" | grep -v '^\s*$' || true
grep -q 'vm: done status=0' "$work/console.log" || exit 1
# A test that skipped inside the VM did not do what the VM is for.
for name in ${REQUIRED:-}; do
  grep -q "^\[       OK \] $name " "$work/console.log" || {
    echo "run_in_vm.sh: $name did not pass inside the VM (skipped?)"
    exit 1
  }
done

// SPDX-License-Identifier: Apache-2.0
// A cgroup of the test's own for the fault soak tests: one to freeze and
// thaw (cgroup v2's cgroup.freeze, or the v1 freezer) or one with a memory
// limit (v1 memory.limit_in_bytes, or v2 memory.max). It is made below the
// cgroup the test runs in, so every limit above it still holds, and the
// supervisor goes in before it starts its command: the command is then in
// the supervisor's cgroups, as emulation requires.
//
// These machines mount a hybrid hierarchy (v1 controllers, cgroup2 on
// /sys/fs/cgroup/unified); the box finds the mounts in
// /proc/self/mountinfo, so a pure v2 machine works too.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace keepalive::tests {

class CgroupBox {
 public:
  enum class Kind { kFreezerV2, kFreezerV1, kMemory };

  // Makes a box of `kind`; nullptr with `why` set when this machine or this
  // process cannot (no such hierarchy mounted, mkdir refused, ...).
  static std::unique_ptr<CgroupBox> make(Kind kind, std::string* why);

  CgroupBox(const CgroupBox&) = delete;
  CgroupBox& operator=(const CgroupBox&) = delete;
  // Thaws the box, kills what is left in it and removes it.
  ~CgroupBox();

  // "cgroup v2 freezer /sys/fs/cgroup/unified/keepalive-soak-123", ...
  std::string describe() const;
  // The argv that moves itself into the box and then executes `argv`.
  std::vector<std::string> enter(const std::vector<std::string>& argv) const;
  // The processes in the box.
  std::vector<pid_t> processes() const;

  // Freezer boxes: asks the kernel to freeze (thaw) every task in the box.
  bool freeze();
  bool thaw();
  // Whether the kernel reports the box frozen within `bound`.
  bool wait_frozen(std::chrono::microseconds bound);

  // Memory boxes: the limit, in bytes; the most the box has used; how many
  // times the OOM killer killed in it. False or -1 when unreadable.
  bool limit_memory(long long bytes, std::string* why);
  long long peak_memory() const;
  long long oom_kills() const;

 private:
  CgroupBox(Kind kind, bool v2, std::string dir)
      : kind_(kind), v2_(v2), dir_(std::move(dir)) {}
  bool write(const std::string& file, const std::string& value,
             std::string* why = nullptr) const;
  std::string read(const std::string& file) const;

  Kind kind_;
  bool v2_;
  std::string dir_;
};

}  // namespace keepalive::tests

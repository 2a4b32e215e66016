// SPDX-License-Identifier: Apache-2.0
#include "tests/soak/cgroup_box.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

namespace keepalive::tests {
namespace {

struct Hierarchy {
  std::string mount;  // where it is mounted ("" if nowhere)
  std::string own;    // the cgroup this process is in, below `mount`
};

std::vector<std::string> words_of(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

bool has_item(const std::string& list, const std::string& item,
              char separator) {
  std::istringstream in(list);
  for (std::string part; std::getline(in, part, separator);) {
    if (part == item) return true;
  }
  return false;
}

// The hierarchy holding `controller` ("" for cgroup v2): its mount from
// /proc/self/mountinfo and this process's cgroup from /proc/self/cgroup.
Hierarchy find_hierarchy(const std::string& controller) {
  Hierarchy found;
  std::string root;
  std::ifstream mounts("/proc/self/mountinfo");
  for (std::string line; std::getline(mounts, line);) {
    std::vector<std::string> w = words_of(line);
    size_t dash = 0;
    while (dash < w.size() && w[dash] != "-") ++dash;
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT ... - TYPE SOURCE SUPEROPTIONS
    if (dash < 5 || dash + 3 >= w.size()) continue;
    const std::string& type = w[dash + 1];
    const std::string& options = w[dash + 3];
    bool match = controller.empty()
                     ? type == "cgroup2"
                     : type == "cgroup" && has_item(options, controller, ',');
    if (match && found.mount.empty()) {
      found.mount = w[4];
      root = w[3];
    }
  }
  std::ifstream cgroups("/proc/self/cgroup");
  for (std::string line; std::getline(cgroups, line);) {
    size_t first = line.find(':');
    size_t second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    bool match = controller.empty()
                     ? line.substr(0, first) == "0" && controllers.empty()
                     : has_item(controllers, controller, ',');
    if (match) found.own = line.substr(second + 1);
  }
  // A mount of a subtree (root "/a") shows cgroup "/a/b" as "b" below it.
  if (root != "/" && found.own.starts_with(root)) {
    found.own = found.own.substr(root.size());
  }
  if (found.own == "/") found.own = "";
  return found;
}

std::string unique_name() {
  static std::atomic<int> made{0};
  return "keepalive-soak-" + std::to_string(getpid()) + "-" +
         std::to_string(++made);
}

}  // namespace

std::unique_ptr<CgroupBox> CgroupBox::make(Kind kind, std::string* why) {
  bool v2 = kind == Kind::kFreezerV2;
  Hierarchy hierarchy;
  if (kind == Kind::kFreezerV1) {
    hierarchy = find_hierarchy("freezer");
  } else if (kind == Kind::kMemory) {
    hierarchy = find_hierarchy("memory");
    if (hierarchy.mount.empty()) {
      // Pure cgroup v2: the memory controller must be on for children of
      // this process's cgroup.
      hierarchy = find_hierarchy("");
      v2 = true;
      std::ifstream control(hierarchy.mount + hierarchy.own +
                            "/cgroup.subtree_control");
      std::string controllers((std::istreambuf_iterator<char>(control)),
                              std::istreambuf_iterator<char>());
      std::vector<std::string> on = words_of(controllers);
      if (!hierarchy.mount.empty() &&
          std::find(on.begin(), on.end(), "memory") == on.end()) {
        *why = "the cgroup v2 memory controller is not enabled below " +
               hierarchy.mount + hierarchy.own +
               " (cgroup.subtree_control: " + controllers + ")";
        return nullptr;
      }
    }
  } else {
    hierarchy = find_hierarchy("");
  }
  const char* what = kind == Kind::kMemory     ? "memory"
                     : kind == Kind::kFreezerV1 ? "cgroup v1 freezer"
                                                : "cgroup v2";
  if (hierarchy.mount.empty()) {
    *why = std::string("no ") + what + " hierarchy is mounted here";
    return nullptr;
  }
  std::string dir = hierarchy.mount + hierarchy.own + "/" + unique_name();
  if (mkdir(dir.c_str(), 0755) != 0) {
    *why = "cannot make a " + std::string(what) + " cgroup: mkdir " + dir +
           ": " + strerror(errno);
    return nullptr;
  }
  std::unique_ptr<CgroupBox> box(new CgroupBox(kind, v2, dir));
  // A v2 freezer box needs cgroup.freeze (Linux 5.2).
  if (kind == Kind::kFreezerV2 && access((dir + "/cgroup.freeze").c_str(),
                                         W_OK) != 0) {
    *why = dir + "/cgroup.freeze: " + strerror(errno) +
           " (cgroup v2 freezing needs Linux 5.2)";
    return nullptr;
  }
  return box;
}

CgroupBox::~CgroupBox() {
  if (kind_ != Kind::kMemory) thaw();
  if (v2_) write("cgroup.kill", "1");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (rmdir(dir_.c_str()) != 0 &&
         std::chrono::steady_clock::now() < deadline) {
    for (pid_t pid : processes()) kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string CgroupBox::describe() const {
  const char* what = kind_ == Kind::kMemory ? " memory "
                     : v2_                  ? " freezer (cgroup.freeze) "
                                            : " freezer (freezer.state) ";
  return std::string(v2_ ? "cgroup v2" : "cgroup v1") + what + dir_;
}

std::vector<std::string> CgroupBox::enter(
    const std::vector<std::string>& argv) const {
  std::vector<std::string> full = {"/bin/sh", "-c",
                                   "echo $$ > \"$0\" && exec \"$@\"",
                                   dir_ + "/cgroup.procs"};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

std::vector<pid_t> CgroupBox::processes() const {
  std::vector<pid_t> pids;
  std::ifstream in(dir_ + "/cgroup.procs");
  for (pid_t pid; in >> pid;) pids.push_back(pid);
  return pids;
}

bool CgroupBox::freeze() {
  return v2_ ? write("cgroup.freeze", "1") : write("freezer.state", "FROZEN");
}

bool CgroupBox::thaw() {
  return v2_ ? write("cgroup.freeze", "0") : write("freezer.state", "THAWED");
}

bool CgroupBox::wait_frozen(std::chrono::microseconds bound) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  for (;;) {
    std::string state = v2_ ? read("cgroup.events") : read("freezer.state");
    if (v2_ ? state.find("frozen 1") != std::string::npos
            : state == "FROZEN\n") {
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

bool CgroupBox::limit_memory(long long bytes, std::string* why) {
  return write(v2_ ? "memory.max" : "memory.limit_in_bytes",
               std::to_string(bytes), why);
}

long long CgroupBox::peak_memory() const {
  std::string text = read(v2_ ? "memory.peak" : "memory.max_usage_in_bytes");
  return text.empty() ? -1 : atoll(text.c_str());
}

long long CgroupBox::oom_kills() const {
  std::istringstream in(read(v2_ ? "memory.events" : "memory.oom_control"));
  for (std::string key; in >> key;) {
    long long value = -1;
    in >> value;
    if (key == "oom_kill") return value;
  }
  return -1;
}

bool CgroupBox::write(const std::string& file, const std::string& value,
                      std::string* why) const {
  std::string path = dir_ + "/" + file;
  std::ofstream out(path);
  out << value << std::flush;
  if (!out) {
    if (why != nullptr) *why = "write " + path + ": " + strerror(errno);
    return false;
  }
  return true;
}

std::string CgroupBox::read(const std::string& file) const {
  std::ifstream in(dir_ + "/" + file);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

}  // namespace keepalive::tests

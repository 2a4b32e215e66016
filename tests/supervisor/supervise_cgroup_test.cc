// SPDX-License-Identifier: Apache-2.0
// A socket takes its cgroup from its creator, and nftables' "socket
// cgroupv2" match (like cgroup BPF programs) judges it by that. A command
// that moves itself into cgroup `box`, where a rule drops its traffic to a
// port, must stay blocked under the supervisor: emulation would create the
// socket in the supervisor's cgroup and let it through, so the supervisor
// must leave such a call to the kernel.
//
// The body needs a private network namespace (for the rule) and cgroup2
// mounted on /sys/fs/cgroup (where nft resolves the path): the test re-runs
// itself under `unshare -n -m`, and the inner run mounts cgroup2 there in
// its private mount namespace unless it already is.
#include <errno.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

constexpr const char* kInnerVariable = "SUPERVISE_CGROUP_TEST_INNER";
constexpr const char* kNft = "/usr/sbin/nft";
constexpr const char* kCgroupRoot = "/sys/fs/cgroup";
constexpr long kCgroup2Magic = 0x63677270;  // CGROUP2_SUPER_MAGIC

bool is_cgroup2(const char* path) {
  struct statfs fs {};
  return statfs(path, &fs) == 0 && fs.f_type == kCgroup2Magic;
}

class CgroupFirewall : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces and nft";
    if (access(kNft, X_OK) != 0) {
      GTEST_SKIP() << kNft << " is missing (Debian package nftables)";
    }
  }
  void run_outside();
  void run_inside();
};

void CgroupFirewall::run_outside() {
  rerun_in_namespaces({"-n", "-m", "--propagation", "private"},
                      kInnerVariable, 40s);
}

void CgroupFirewall::run_inside() {
  ASSERT_TRUE(bring_up_loopback()) << strerror(errno);
  // nft resolves "socket cgroupv2" paths under /sys/fs/cgroup only.
  if (!is_cgroup2(kCgroupRoot) &&
      mount("none", kCgroupRoot, "cgroup2", 0, nullptr) != 0) {
    GTEST_SKIP() << "cannot mount cgroup2 on " << kCgroupRoot << ": "
                 << strerror(errno);
  }
  std::string name = "keepalive-box-" + std::to_string(getpid());
  std::string dir = std::string(kCgroupRoot) + "/" + name;
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0) << dir << ": " << strerror(errno);
  Listener server;
  std::string port = std::to_string(server.port());
  for (const std::string& command :
       {std::string("add table inet keepalive_test"),
        std::string("add chain inet keepalive_test o { type filter hook "
                    "output priority 0; }"),
        "add rule inet keepalive_test o socket cgroupv2 level 1 \"" + name +
            "\" tcp dport " + port + " drop"}) {
    Outcome nft = run({kNft, command});  // nft joins its arguments
    ASSERT_EQ(nft.shell_status(), 0) << command << ": " << nft.err;
  }
  // The command moves itself into the box, then connects.
  std::vector<std::string> boxed = {"/bin/sh", "-c",
                                    "echo $$ > " + dir +
                                        "/cgroup.procs && exec " +
                                        raw_tcp_path() + " connect " + port};
  struct Run {
    const char* name;
    std::vector<std::string> argv;
  };
  for (const Run& r :
       {Run{"bare", boxed},
        Run{"emulate", supervised({"--strategy", "emulate"}, boxed)},
        Run{"auto", supervised({"--strategy", "auto"}, boxed)}}) {
    SCOPED_TRACE(r.name);
    Child target(r.argv);
    const bool supervised_run = std::string(r.name) != "bare";
    // The supervisor says it leaves the socket to the kernel before the
    // connect is made.
    if (supervised_run) {
      EXPECT_TRUE(target.wait_for_output("other cgroups", 10s))
          << target.transcript();
    }
    // The rule drops the SYN: the connect hangs in its retries.
    EXPECT_FALSE(target.wait_line("connected", 1500ms))
        << "the firewall rule did not apply\n"
        << target.transcript();
    EXPECT_FALSE(server.accept(100ms).valid());
    target.signal_group(SIGKILL);
    target.wait_exit(5s);
    if (supervised_run) {
      EXPECT_EQ(count_of(target.err(), "other cgroups"), 1u)
          << target.transcript();
    }
  }
  rmdir(dir.c_str());
}

TEST_F(CgroupFirewall, BoxedCommandStaysBlocked) {
  if (getenv(kInnerVariable) == nullptr) {
    run_outside();
  } else {
    run_inside();
  }
}

}  // namespace
}  // namespace keepalive::tests

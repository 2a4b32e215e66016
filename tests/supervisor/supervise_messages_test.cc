// SPDX-License-Identifier: Apache-2.0
// What keepalive-supervise says when the command cannot run for want of
// something outside it (a script's interpreter, a program's loader, /proc):
// one line naming what is missing, and the exit status a shell would give.
// Runs the real binary.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/common/scratch_dir.h"
#include "tests/support/process.h"

namespace keepalive::tests {
namespace {

const std::string kSupervise = KEEPALIVE_SUPERVISE;
const std::string kNoSuchFile = "No such file or directory";

using MessagesTest = ScratchDirTest;

TEST_F(MessagesTest, ScriptWithAMissingInterpreterIs126BadInterpreter) {
  const std::string script = path("script");
  std::ofstream(script) << "#!/usr/bin/keepalive-nope -x\necho ran\n";
  ASSERT_EQ(chmod(script.c_str(), 0755), 0);
  Outcome r = run({kSupervise, "--", script, "arg"});
  EXPECT_EQ(r.exit_code(), 126) << r.err;
  EXPECT_EQ(r.err, "keepalive-supervise: " + script +
                       ": /usr/bin/keepalive-nope: bad interpreter: " +
                       kNoSuchFile + "\n");
  EXPECT_EQ(r.out, "");

  // Found through PATH, it is named as the user typed it.
  Outcome found = run({"env", "PATH=" + dir_, kSupervise, "--", "script"});
  EXPECT_EQ(found.exit_code(), 126) << found.err;
  EXPECT_EQ(found.err, "keepalive-supervise: script: /usr/bin/keepalive-nope: "
                       "bad interpreter: " +
                           kNoSuchFile + "\n");
}

TEST_F(MessagesTest, AMissingCommandIsStill127NotFound) {
  Outcome r = run({kSupervise, "--", path("absent")});
  EXPECT_EQ(r.exit_code(), 127) << r.err;
  EXPECT_EQ(r.err,
            "keepalive-supervise: " + path("absent") + ": command not found\n");
}

TEST_F(MessagesTest, ACommandNameIsQuotedOnOneLine) {
  const std::string name = path("a\nkeepalive-supervise: forged");
  Outcome r = run({kSupervise, "--", name});
  EXPECT_EQ(r.exit_code(), 127) << r.err;
  EXPECT_EQ(r.err, "keepalive-supervise: " + path("a") +
                       "\\nkeepalive-supervise: forged: command not found\n");
}

// A copy of a dynamic program whose PT_INTERP names a loader that does not
// exist, patched in place (same length, so nothing else moves).
TEST_F(MessagesTest, ProgramWithAMissingLoaderIs126BadElfInterpreter) {
  const std::string loader = "/lib64/ld-linux-x86-64.so.2";
  const std::string missing = "/lib64/ld-missing-loader.so";
  ASSERT_EQ(loader.size(), missing.size());
  std::ifstream in("/bin/true", std::ios::binary);
  std::string image((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  size_t at = image.find(loader + '\0');
  if (at == std::string::npos) {
    GTEST_SKIP() << "/bin/true does not name " << loader
                 << " as its loader (not an x86-64 glibc system)";
  }
  image.replace(at, loader.size(), missing);
  const std::string program = path("program");
  std::ofstream(program, std::ios::binary) << image;
  ASSERT_EQ(chmod(program.c_str(), 0755), 0);

  Outcome r = run({kSupervise, "--", program});
  EXPECT_EQ(r.exit_code(), 126) << r.err;
  EXPECT_EQ(r.err, "keepalive-supervise: " + program + ": " + missing +
                       ": bad ELF interpreter (the program's loader is "
                       "missing): " +
                       kNoSuchFile + "\n");
}

// In a mount namespace of its own, /proc hidden under an empty tmpfs.
TEST_F(MessagesTest, WithoutProcItSaysProcMustBeMountedAndExits125) {
  Outcome probe = run({"unshare", "-m", "true"});
  if (probe.exit_code() != 0) {
    GTEST_SKIP() << "cannot make a mount namespace here: " << probe.err;
  }
  Outcome r = run({"unshare", "-m", "sh", "-c",
                     "mount -t tmpfs none /proc && exec \"$0\" -- true",
                     kSupervise});
  // A sanitizer runtime reads /proc too, and warns in lines of its own.
  std::string err;
  for (const std::string& line : r.err_lines()) {
    if (line.rfind("==", 0) != 0) err += line + "\n";
  }
#if defined(__SANITIZE_ADDRESS__)
  if (r.exit_code() != 125) {
    EXPECT_EQ(err,
              "keepalive-supervise: /proc is not mounted: the supervisor "
              "reads its targets' identity there (mount proc on /proc)\n");
    GTEST_SKIP() << "sanitizer build: the leak checker needs /proc, fails "
                    "at exit and sets the status (its options are read "
                    "from /proc/self/environ, so it cannot be turned off)";
  }
#endif
  EXPECT_EQ(r.exit_code(), 125) << r.err;
  EXPECT_EQ(err,
            "keepalive-supervise: /proc is not mounted: the supervisor reads "
            "its targets' identity there (mount proc on /proc)\n");
}

}  // namespace
}  // namespace keepalive::tests

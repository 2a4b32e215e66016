// SPDX-License-Identifier: Apache-2.0
// What a library carries into every program it is preloaded into: no C++
// runtime, and no symbol but its hook.
#include <gtest/gtest.h>

#include <string>

#include "tests/preload/fixtures.h"
#include "tests/support/process.h"

namespace keepalive::tests {
namespace {

struct Library {
  std::string path;
  std::string hook;
};

class LibraryFileTest : public ::testing::TestWithParam<Library> {};

TEST_P(LibraryFileTest, LddListsOnlyLibcAndTheLoader) {
  Outcome r = run({"ldd", GetParam().path});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out.find("libstdc++"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("libgcc_s"), std::string::npos) << r.out;
  for (const std::string& line : r.out_lines()) {
    bool expected = line.find("linux-vdso.so") != std::string::npos ||
                    line.find("libc.so.6") != std::string::npos ||
                    line.find("ld-linux") != std::string::npos;
    EXPECT_TRUE(expected) << "unexpected dependency: " << line;
  }
}

TEST_P(LibraryFileTest, ExportsOnlyItsHook) {
  Outcome r = run({"nm", "-D", "--defined-only", GetParam().path});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  ASSERT_EQ(r.out_lines().size(), 1u) << r.out;
  // "0000000000001200 T connect"
  std::string line = r.out_lines()[0];
  EXPECT_EQ(line.substr(line.find(' ')), " T " + GetParam().hook) << line;
}

// The whole symbol table, local symbols included: the supervisor's system
// calls (pidfd, seccomp, io_uring) have no business in a target's memory.
TEST_P(LibraryFileTest, CarriesNothingOfTheSupervisor) {
  Outcome r = run({"nm", "-C", GetParam().path});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  // Not stripped: the library's own internals are listed.
  EXPECT_NE(r.out.find("apply_if_tcp"), std::string::npos) << r.out;
  for (const char* foreign :
       {"pidfd", "seccomp", "io_uring", "keepalive::sys::"}) {
    EXPECT_EQ(r.out.find(foreign), std::string::npos)
        << GetParam().path << " carries " << foreign << ":\n" << r.out;
  }
}

INSTANTIATE_TEST_SUITE_P(Libraries, LibraryFileTest,
                         ::testing::Values(Library{kConnectLibrary, "connect"},
                                           Library{kListenLibrary, "listen"},
                                           Library{kSocketLibrary, "socket"}),
                         [](const auto& test) { return test.param.hook; });

}  // namespace
}  // namespace keepalive::tests

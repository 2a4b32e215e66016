// SPDX-License-Identifier: Apache-2.0
// command_path: execvp's PATH rules, worked out ahead of the exec.
#include "supervisor/command_path.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace keepalive {
namespace {

using Candidates = std::vector<std::string>;

TEST(CommandPathTest, NameWithASlashIsTriedAlone) {
  for (const char* name : {"/usr/bin/true", "./true", "bin/true"}) {
    CommandPath p = command_path(name, "/a:/b");
    EXPECT_FALSE(p.search) << name;
    EXPECT_EQ(p.error, 0) << name;
    EXPECT_EQ(p.candidates, Candidates{name});
  }
}

TEST(CommandPathTest, EachDirectoryInTurn) {
  CommandPath p = command_path("nc", "/usr/local/bin:/usr/bin/:/bin");
  EXPECT_TRUE(p.search);
  EXPECT_EQ(p.error, 0);
  EXPECT_EQ(p.candidates,
            (Candidates{"/usr/local/bin/nc", "/usr/bin//nc", "/bin/nc"}));
}

TEST(CommandPathTest, EmptyElementsAreTheCurrentDirectory) {
  EXPECT_EQ(command_path("nc", ":/bin").candidates,
            (Candidates{"nc", "/bin/nc"}));
  EXPECT_EQ(command_path("nc", "/bin::/usr/bin").candidates,
            (Candidates{"/bin/nc", "nc", "/usr/bin/nc"}));
  EXPECT_EQ(command_path("nc", "/bin:").candidates,
            (Candidates{"/bin/nc", "nc"}));
  EXPECT_EQ(command_path("nc", "").candidates, Candidates{"nc"});
}

TEST(CommandPathTest, UnsetPathIsBinThenUsrBin) {
  EXPECT_EQ(command_path("nc", nullptr).candidates,
            (Candidates{"/bin/nc", "/usr/bin/nc"}));
}

TEST(CommandPathTest, EmptyNameIsNotFound) {
  CommandPath p = command_path("", "/bin");
  EXPECT_EQ(p.error, ENOENT);
  EXPECT_TRUE(p.candidates.empty());
}

TEST(CommandPathTest, NameOfNameMaxOrMoreIsTooLong) {
  EXPECT_EQ(command_path(std::string(NAME_MAX - 1, 'x'), "/bin").error, 0);
  CommandPath p = command_path(std::string(NAME_MAX, 'x'), "/bin");
  EXPECT_EQ(p.error, ENAMETOOLONG);
  EXPECT_TRUE(p.candidates.empty());
  // Only a search has that limit.
  EXPECT_EQ(command_path("/" + std::string(NAME_MAX, 'x'), "/bin").error, 0);
}

TEST(CommandPathTest, SearchGoesOnOnlyWhenTheFileIsNotThere) {
  for (int err : {ENOENT, ENOTDIR, EACCES, ESTALE, ENODEV, ETIMEDOUT}) {
    EXPECT_TRUE(search_goes_on(err)) << err;
  }
  for (int err :
       {ENOEXEC, E2BIG, ENOMEM, ETXTBSY, ELOOP, EPERM, ENAMETOOLONG}) {
    EXPECT_FALSE(search_goes_on(err)) << err;
  }
}

}  // namespace
}  // namespace keepalive

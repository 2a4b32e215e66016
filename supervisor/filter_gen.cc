// SPDX-License-Identifier: Apache-2.0
// keepalive_filter_gen OUTPUT: compiles the program of every FilterSpec
// with libseccomp and writes them as C++ arrays for filter.cc. Run by the
// build, on the machine the supervisor is built for (the programs name its
// architecture and system call numbers).
#include <seccomp.h>
#include <stdio.h>

#include <string>

#include "supervisor/filter.h"
#include "supervisor/filter_rules.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: keepalive_filter_gen OUTPUT\n");
    return 2;
  }
  std::string text;
  const scmp_version* version = seccomp_version();
  text += "// Written by keepalive_filter_gen with libseccomp " +
          std::to_string(version->major) + "." +
          std::to_string(version->minor) + "." +
          std::to_string(version->micro) + ". Do not edit.\n";
  for (size_t i = 0; i < keepalive::kFilterSpecCount; ++i) {
    keepalive::FilterSpec spec = keepalive::filter_spec_at(i);
    auto program = keepalive::compile_filter(spec);
    if (!program) {
      fprintf(stderr, "keepalive_filter_gen: %s\n",
              program.error().message().c_str());
      return 1;
    }
    text += "constexpr sock_filter kProgram" + std::to_string(i) + "[] = {\n";
    for (const sock_filter& insn : *program) {
      char line[96];
      snprintf(line, sizeof line, "    {0x%04x, %u, %u, 0x%08x},\n", insn.code,
               insn.jt, insn.jf, insn.k);
      text += line;
    }
    text += "};\n";
  }
  text += "constexpr CompiledProgram kCompiledPrograms[] = {\n";
  for (size_t i = 0; i < keepalive::kFilterSpecCount; ++i) {
    char line[96];
    snprintf(line, sizeof line,
             "    {kProgram%zu, sizeof kProgram%zu / sizeof kProgram%zu[0]},\n",
             i, i, i);
    text += line;
  }
  text += "};\n";
  FILE* out = fopen(argv[1], "w");
  if (out == nullptr || fputs(text.c_str(), out) < 0 || fclose(out) != 0) {
    perror("keepalive_filter_gen: writing the output");
    return 1;
  }
  return 0;
}

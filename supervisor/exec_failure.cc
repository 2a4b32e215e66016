// SPDX-License-Identifier: Apache-2.0
#include "supervisor/exec_failure.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>

#include "supervisor/exit_codes.h"
#include "supervisor/syscalls.h"

namespace keepalive {
namespace {

// Runs in the launch child, on the parent's memory: no sanitizer runtime.
#define KEEPALIVE_CHILD_CODE \
  __attribute__((no_sanitize("address", "undefined")))

// Appends `text` to line[*length], keeping the line under `size`.
KEEPALIVE_CHILD_CODE void append(char* line, size_t size, size_t* length,
                                 const char* text) {
  while (*text != '\0' && *length + 1 < size) line[(*length)++] = *text++;
}

// Appends `text` quoted (see quote_value): it comes from the user or from
// a file of theirs.
KEEPALIVE_CHILD_CODE void append_quoted(char* line, size_t size,
                                        size_t* length, const char* text) {
  char quoted[kQuoteBufferSize];
  quote_value(text, quoted, sizeof quoted);
  append(line, size, length, quoted);
}

KEEPALIVE_CHILD_CODE void append_number(char* line, size_t size, size_t* length,
                                        int value) {
  char digits[16];
  char* p = digits + sizeof digits;
  *--p = '\0';
  unsigned magnitude = value < 0 ? 0u - static_cast<unsigned>(value)
                                 : static_cast<unsigned>(value);
  do {
    *--p = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  if (value < 0) *--p = '-';
  append(line, size, length, p);
}

// Reads the path in an ELF file's PT_INTERP (its loader) into `out`; false
// if `head` (the file's first `head_size` bytes) is not an ELF header of
// this class or the file names none.
template <typename Ehdr, typename Phdr>
KEEPALIVE_CHILD_CODE bool elf_interpreter(int fd, const unsigned char* head,
                                          size_t head_size, char* out,
                                          size_t size) {
  if (head_size < sizeof(Ehdr)) return false;
  const auto* ehdr = reinterpret_cast<const Ehdr*>(head);
  if (ehdr->e_phentsize != sizeof(Phdr)) return false;
  for (unsigned i = 0; i < ehdr->e_phnum; ++i) {
    Phdr phdr;
    off_t at = static_cast<off_t>(ehdr->e_phoff + i * sizeof phdr);
    if (sys::raw::pread(fd, &phdr, sizeof phdr, at) !=
        static_cast<long>(sizeof phdr)) {
      return false;
    }
    if (phdr.p_type != PT_INTERP) continue;
    size_t want = phdr.p_filesz < size - 1 ? phdr.p_filesz : size - 1;
    long n = sys::raw::pread(fd, out, want, static_cast<off_t>(phdr.p_offset));
    if (n <= 0) return false;
    out[n] = '\0';
    return true;
  }
  return false;
}

// The kernel gives ENOENT for a file that exists when what it needs to run
// it is missing: the interpreter of a "#!" line, or the loader of a dynamic
// ELF program. Looks at the first candidate that exists; if it is one of
// those, writes the line that says so and returns true.
KEEPALIVE_CHILD_CODE bool explain_missing_interpreter(
    const char* name, const char* const* candidates,
    const char* (*describe)(int), char* line, size_t size, size_t* length) {
  long fd = -ENOENT;
  for (const char* const* candidate = candidates;
       *candidate != nullptr && fd < 0; ++candidate) {
    fd = sys::raw::open(*candidate, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  }
  if (fd < 0) return false;
  // As much as the kernel reads to choose a binary format.
  unsigned char head[256];
  long n = sys::raw::pread(static_cast<int>(fd), head, sizeof head, 0);
  char interpreter[256];
  interpreter[0] = '\0';
  const char* what = nullptr;
  if (n >= 2 && head[0] == '#' && head[1] == '!') {
    // As the kernel parses it: blanks, then the path up to a blank or EOL.
    long i = 2;
    while (i < n && (head[i] == ' ' || head[i] == '\t')) ++i;
    size_t k = 0;
    while (i < n && head[i] != ' ' && head[i] != '\t' && head[i] != '\n' &&
           head[i] != '\0' && k + 1 < sizeof interpreter) {
      interpreter[k++] = static_cast<char>(head[i++]);
    }
    interpreter[k] = '\0';
    what = "bad interpreter";
  } else if (n >= EI_NIDENT && head[EI_MAG0] == ELFMAG0 &&
             head[EI_MAG1] == ELFMAG1 && head[EI_MAG2] == ELFMAG2 &&
             head[EI_MAG3] == ELFMAG3) {
    int file = static_cast<int>(fd);
    size_t got = static_cast<size_t>(n);
    if (head[EI_CLASS] == ELFCLASS64) {
      elf_interpreter<Elf64_Ehdr, Elf64_Phdr>(file, head, got, interpreter,
                                              sizeof interpreter);
    } else if (head[EI_CLASS] == ELFCLASS32) {
      elf_interpreter<Elf32_Ehdr, Elf32_Phdr>(file, head, got, interpreter,
                                              sizeof interpreter);
    }
    what = "bad ELF interpreter (the program's loader is missing)";
  }
  sys::raw::close(static_cast<int>(fd));
  if (what == nullptr) return false;
  append(line, size, length, "keepalive-supervise: ");
  append_quoted(line, size, length, name);
  append(line, size, length, ": ");
  if (interpreter[0] != '\0') {
    append_quoted(line, size, length, interpreter);
    append(line, size, length, ": ");
  }
  append(line, size, length, what);
  append(line, size, length, ": ");
  append(line, size, length, describe(ENOENT));
  append(line, size, length, "\n");
  return true;
}

}  // namespace

KEEPALIVE_CHILD_CODE int describe_exec_failure(const char* name,
                                               const char* const* candidates,
                                               int err,
                                               const char* (*describe)(int),
                                               char* line, size_t size,
                                               size_t* length) {
  if (err == ENOENT && explain_missing_interpreter(name, candidates, describe,
                                                   line, size, length)) {
    return kExitNotExecutable;  // bash's status for it: found, not runnable
  }
  append(line, size, length, "keepalive-supervise: ");
  append_quoted(line, size, length, name);
  append(line, size, length, ": ");
  const char* why = err == ENOENT ? "command not found" : describe(err);
  if (why != nullptr) {
    append(line, size, length, why);
  } else {
    append(line, size, length, "Unknown error ");
    append_number(line, size, length, err);
  }
  append(line, size, length, "\n");
  return err == ENOENT ? kExitNotFound : kExitNotExecutable;
}

}  // namespace keepalive

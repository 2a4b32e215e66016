// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: what keepalive-agent reads about a container. The
// runtime's JSON message with the fds that came with it
// (parse_container_state), and a container's record from the fd store
// (load_record, given the same bytes in a memfd).
//
// Input: byte 0 says how many fds came with the message (modulo
// kMaxFds + 1); bytes 1 and 2 their kinds, two bits each, the first fd in
// the low bits (0 /dev/null, 1 and 2 a pipe's ends, 3 a seccomp listener);
// the rest is the JSON text.
//
// What must hold whatever the input: no crash or undefined behaviour and
// no fd leaked; a refusal is one bounded line; a parsed state has a
// seccomp listener, a process id and a quoted (one-line) id, and survives
// save_record and load_record unchanged, as the agent's restart needs; a
// record load_record takes survives another save and load.
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string_view>
#include <utility>
#include <vector>

#include "agent/container_state.h"
#include "common/quote.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using keepalive::Result;
using keepalive::UniqueFd;
using keepalive::agent::ContainerState;

bool same_record(const ContainerState& a, const ContainerState& b) {
  return a.id == b.id && a.pid == b.pid && a.metadata == b.metadata &&
         a.annotation == b.annotation;
}

// Aborts unless `state` comes back unchanged from save_record and
// load_record.
void check_record_round_trip(const ContainerState& state) {
  Result<UniqueFd> record = keepalive::agent::save_record(state);
  if (!record) {
    fprintf(stderr, "save_record: %s\n", record.error().message().c_str());
    abort();
  }
  Result<ContainerState> loaded = keepalive::agent::load_record(record->get());
  if (!loaded || !same_record(state, *loaded)) {
    fprintf(stderr, "a record does not load as it was saved: %s\n",
            loaded ? "different fields" : loaded.error().message().c_str());
    abort();
  }
}

void check_message(std::string_view json, std::vector<UniqueFd> fds) {
  Result<ContainerState> state =
      keepalive::agent::parse_container_state(json, std::move(fds));
  if (!state) {
    keepalive::fuzz::check_one_line("a refusal", state.error().message());
    return;
  }
  if (!state->listener.valid() ||
      !keepalive::agent::is_seccomp_listener(state->listener.get()) ||
      state->pid <= 0 || state->id.size() >= keepalive::kQuoteBufferSize) {
    abort();
  }
  keepalive::fuzz::check_one_line("a container's id", state->id);
  check_record_round_trip(*state);
}

void check_record(std::string_view text) {
  UniqueFd memfd(memfd_create("fuzz record", MFD_CLOEXEC));
  if (!memfd.valid() || write(memfd.get(), text.data(), text.size()) !=
                            static_cast<ssize_t>(text.size())) {
    abort();
  }
  Result<ContainerState> state = keepalive::agent::load_record(memfd.get());
  if (!state) {
    keepalive::fuzz::check_one_line("a refusal", state.error().message());
    return;
  }
  if (state->listener.valid()) abort();
  check_record_round_trip(*state);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  keepalive::fuzz::shared_listener();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  int open_before = keepalive::fuzz::count_open_fds();
  size_t count = data[0] % (keepalive::agent::kMaxFds + 1);
  unsigned kinds = data[1] | data[2] << 8;
  std::string_view json(reinterpret_cast<const char*>(data + 3), size - 3);
  std::vector<UniqueFd> fds;
  for (size_t i = 0; i < count; ++i) {
    fds.push_back(keepalive::fuzz::make_fd(kinds >> (2 * i)));
  }
  check_message(json, std::move(fds));
  check_record(json);
  keepalive::fuzz::check_no_fd_leaked(open_before);
  return 0;
}

// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: keepalive-agent receiving a runtime's message
// (StateReceiver::read_some) over a real socketpair, with fds in
// SCM_RIGHTS, in pieces, as a stream socket may deliver it.
//
// Input: the low four bits of byte 0 say how many fds the runtime sends
// (modulo 11, so past kMaxFds too), its high four bits, when all set, that
// 64 KiB of blanks come first (past kMaxStateBytes; rare, as they are
// slow to parse); bytes 1 to 3 the fds' kinds, two bits each, the first
// fd in the low bits (0 /dev/null, 1 and 2 a pipe's ends, 3 a seccomp
// listener). Byte 4 says how: its low four bits the size of each piece
// sent (0: all at once, N: 2^(N-1) bytes); bits 4 and 5 which pieces carry
// the fds (0 the first, 1 the second, 2 the last, 3 half the first and
// half the second); bit 6 whether the runtime then closes its end (runc
// does not). The rest is the message text. The receiver reads after every
// piece, as the agent does when the socket is readable.
//
// What must hold whatever the input: no crash or undefined behaviour; no
// fd leaked, whether the message was taken, refused or never finished;
// once the runtime closed its end there is an answer; a refusal is one
// bounded line; a taken state has a seccomp listener and a process id.
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/container_state.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using keepalive::Result;
using keepalive::UniqueFd;
using keepalive::agent::ContainerState;
using keepalive::agent::StateReceiver;

constexpr size_t kMaxSentFds = 10;

// Sends text[0, size) with `fds` (none if empty) on the nonblocking
// `sock`, letting `receive` drain the other end whenever the socket is
// full. Returns false if `receive` has given its answer before all was
// sent.
template <typename Receive>
bool send_piece(int sock, const char* text, size_t size,
                std::vector<UniqueFd>& fds, Receive receive) {
  size_t sent = 0;
  while (sent < size) {
    iovec iov{const_cast<char*>(text + sent), size - sent};
    alignas(cmsghdr) char control[CMSG_SPACE(kMaxSentFds * sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds.empty()) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
      for (size_t i = 0; i < fds.size(); ++i) {
        int fd = fds[i].get();
        memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof fd);
      }
    }
    ssize_t n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (receive()) return false;
      continue;
    }
    if (n <= 0) {
      perror("fuzz: sendmsg");
      abort();
    }
    fds.clear();  // in flight now: ours are closed
    sent += static_cast<size_t>(n);
  }
  return true;
}

void check_answer(const Result<ContainerState>& state) {
  if (!state) {
    keepalive::fuzz::check_one_line("a refusal", state.error().message());
    return;
  }
  if (!state->listener.valid() ||
      !keepalive::agent::is_seccomp_listener(state->listener.get()) ||
      state->pid <= 0) {
    abort();
  }
}

void run(const uint8_t* data, size_t size) {
  size_t fd_count = (data[0] & 0x0f) % (kMaxSentFds + 1);
  bool padded = (data[0] & 0xf0) == 0xf0;
  unsigned kinds = data[1] | data[2] << 8 | data[3] << 16;
  unsigned how = data[4];
  bool closes = (how & 0x40) != 0;
  std::string text = padded ? std::string(64 * 1024, ' ') : "";
  text.append(reinterpret_cast<const char*>(data + 5), size - 5);
  size_t piece =
      (how & 0x0f) == 0 ? text.size() : size_t{1} << ((how & 0x0f) - 1);
  // One byte at a time through 64 KiB costs a parse per byte: too slow
  // for a fuzzer's run.
  if (padded) piece = std::max<size_t>(piece, 4096);
  size_t pieces = piece == 0 ? 0 : (text.size() + piece - 1) / piece;

  // Which piece carries which of the fds.
  std::vector<std::vector<UniqueFd>> fds_of(std::max<size_t>(pieces, 1));
  for (size_t i = 0; i < fd_count; ++i) {
    size_t index = 0;
    switch ((how >> 4) & 3) {
      case 1:
        index = 1;
        break;
      case 2:
        index = pieces - 1;
        break;
      case 3:
        index = i < fd_count / 2 ? 0 : 1;
        break;
    }
    fds_of[std::min(index, fds_of.size() - 1)].push_back(
        keepalive::fuzz::make_fd(kinds >> (2 * i)));
  }

  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) abort();
  UniqueFd agent_end(pair[0]), runtime_end(pair[1]);
  StateReceiver receiver;
  std::optional<Result<ContainerState>> answer;
  auto receive = [&] {
    if (!answer) answer = receiver.read_some(agent_end.get());
    return answer.has_value();
  };
  for (size_t i = 0; i < pieces && !answer; ++i) {
    size_t at = i * piece;
    size_t length = std::min(piece, text.size() - at);
    if (!send_piece(runtime_end.get(), text.data() + at, length, fds_of[i],
                    receive)) {
      break;
    }
    receive();
  }
  if (!answer && closes) {
    shutdown(runtime_end.get(), SHUT_WR);
    if (!receive()) {
      fprintf(stderr, "no answer after the runtime closed its end\n");
      abort();
    }
  }
  if (answer) check_answer(*answer);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  keepalive::fuzz::shared_listener();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  int open_before = keepalive::fuzz::count_open_fds();
  run(data, size);
  keepalive::fuzz::check_no_fd_leaked(open_before);
  return 0;
}

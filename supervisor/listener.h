// SPDX-License-Identifier: Apache-2.0
// The seccomp user-notification protocol (seccomp_unotify(2)), and the only
// code that talks it: receive a trapped call, ask whether it still waits,
// add an fd to its caller, answer it. Policy lives elsewhere
// (notification_handler.h decides, server.h answers).
//
// Listener is an interface so that tests can feed notifications without a
// kernel listener; KernelListener is the real one.
#pragma once

#include <linux/seccomp.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/unique_fd.h"
#include "supervisor/error.h"

namespace keepalive {

class Listener {
 public:
  virtual ~Listener() = default;

  // Readable (POLLIN) while a trapped call waits to be received; POLLHUP
  // once no task uses the filter any more.
  virtual int fd() const = 0;

  // The next trapped call; blocks while none is pending (wait for the fd
  // to be readable first). The notification stays valid until the next
  // receive(). ENOENT: its caller was killed or its call interrupted after
  // the listener was seen readable; there is nothing to answer.
  virtual Result<const seccomp_notif*> receive() = 0;

  // Whether call `id` still waits for its answer: its caller is alive and
  // was not interrupted, so a pid read from it names that caller still.
  virtual bool alive(uint64_t id) = 0;

  // Copies `fd` into the caller of `id` as a new fd (O_CLOEXEC there when
  // `cloexec`) and returns its number in the caller. The call stays
  // unanswered: never SECCOMP_ADDFD_FLAG_SEND (see server.cc). ENOENT: the
  // call was interrupted before the fd was added.
  virtual Result<int> add_fd(uint64_t id, int fd, bool cloexec) = 0;

  // Answers `id`: the kernel runs the call itself, as the caller.
  virtual Result<void> send_continue(uint64_t id) = 0;
  // Answers `id`: the call returns `value`.
  virtual Result<void> send_value(uint64_t id, int64_t value) = 0;
};

class KernelListener final : public Listener {
 public:
  // Takes `fd`, a listener from SECCOMP_FILTER_FLAG_NEW_LISTENER, and
  // allocates its buffers at the kernel's sizes (never sizeof: newer
  // kernels may grow them). Fails, saying why, if they cannot be had, and
  // then leaves `fd` with the caller: closing it would make the target's
  // trapped calls fail with ENOSYS before the caller can stop it.
  static Result<std::unique_ptr<KernelListener>> open(UniqueFd& fd);
  ~KernelListener() override;

  int fd() const override { return fd_.get(); }

  // Asks the kernel to wake us synchronously, on the CPU of the caller that
  // blocks in its trapped call, where the hand-over costs least (Linux
  // 6.6+). False where the kernel refuses; that costs only speed.
  bool request_sync_wake_up();

  Result<const seccomp_notif*> receive() override;
  bool alive(uint64_t id) override;
  Result<int> add_fd(uint64_t id, int fd, bool cloexec) override;
  Result<void> send_continue(uint64_t id) override;
  Result<void> send_value(uint64_t id, int64_t value) override;

 private:
  KernelListener(UniqueFd fd, seccomp_notif* req, seccomp_notif_resp* resp,
                 size_t req_size, size_t resp_size);
  Result<void> send(uint64_t id, int64_t value, uint32_t flags);

  UniqueFd fd_;
  seccomp_notif* req_;
  seccomp_notif_resp* resp_;
  size_t req_size_;
  size_t resp_size_;
};

// KernelListener::request_sync_wake_up for a listener held as a bare fd.
bool request_sync_wake_up(int listener);

}  // namespace keepalive

// SPDX-License-Identifier: Apache-2.0
// apply_to with one io_uring_enter per socket instead of one setsockopt per
// option.
//
// Every socket the supervisor emulates gets up to nine options, each a
// setsockopt syscall of its own. Here they travel as IORING_OP_URING_CMD /
// SOCKET_URING_OP_SETSOCKOPT entries (Linux 6.7+), submitted and completed
// by a single io_uring_enter. The entries are not linked: like apply_to, a
// failing option does not stop the ones after it. The report and the
// socket's state come out exactly as apply_to(fd, settings, mode) leaves
// them.
//
// Falls back to apply_to for good when io_uring cannot do the job here (no
// io_uring, io_uring refused by sysctl kernel.io_uring_disabled or a
// container's seccomp profile, a kernel without socket commands, a failed
// io_uring_enter), and for single calls whose values cannot be known before
// submission (a TCP_USER_TIMEOUT derived from the system's keepalive
// defaults, which apply_to reads back with getsockopt).
//
// Owned by one thread. The ring is set up on first use, tied to that thread
// (IORING_SETUP_SINGLE_ISSUER); a call from another thread makes
// io_uring_enter fail, which falls back for good.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/settings.h"
#include "common/socket_options.h"
#include "common/unique_fd.h"

struct io_uring_sqe;
struct io_uring_cqe;

namespace keepalive {

class OptionRing {
 public:
  enum class Path : uint8_t {
    kUntried,     // nothing set up yet: the first apply() or prepare() will
    kIoUring,     // one io_uring_enter per socket
    kSetsockopt,  // apply_to, for good (see fallback_reason)
  };

  // Sets nothing up: the ring costs nothing until it is used.
  OptionRing() = default;
  ~OptionRing();
  OptionRing(const OptionRing&) = delete;
  OptionRing& operator=(const OptionRing&) = delete;

  // Does what apply_to(fd, settings, mode) does and returns the same report:
  // the same options in the same order with the same values, and the same
  // errno for each option that fails. Sets the ring up on the first call.
  ApplyReport apply(int fd, const Settings& settings, Mode mode);

  // What classify_socket(fd) says, from one io_uring_enter carrying its
  // three getsockopt calls (SO_DOMAIN, SO_TYPE, SO_PROTOCOL). Any failure
  // is left to classify_socket itself, so the answer is always its answer.
  SocketKind classify(int fd);

  // Sets the ring up now if that has not been tried yet (to keep the set-up
  // off a latency-sensitive first call, or to log the path early) and
  // returns the path apply() takes from now on.
  Path prepare();

  // The path apply() takes for sockets whose options are known up front.
  Path path() const { return path_; }

  // Why the path is kSetsockopt, for logs, e.g. "io_uring_setup: Operation
  // not permitted (sysctl kernel.io_uring_disabled, or a container's
  // seccomp profile)"; empty on the other paths.
  const std::string& fallback_reason() const { return fallback_reason_; }

  // The errno behind fallback_reason, or 0 (forced, measured slower, or
  // not fallen back).
  int fallback_errno() const { return fallback_errno_; }

  // Releases the ring, if any, and uses apply_to from now on (tests; a
  // caller that knows io_uring must not be used).
  void force_fallback();

  // Keeps the ring, once set up, only if it measures faster than
  // setsockopt() here: five options on a socket of its own, both ways in
  // turn, the best of 16 rounds each. One io_uring_enter instead of five
  // system calls wins where a system call is dear (a VM whose mitigations
  // make each cost a microsecond); where they are cheap each entry costs
  // more than the call it replaces. Call before the first use. The answer
  // is the same either way: only the time differs.
  void keep_ring_only_if_faster() { measure_ = true; }

 private:
  // Sets up and checks the ring; false (having fallen back) on failure.
  bool set_up();
  // Sets SO_KEEPALIVE on a new TCP socket through the ring, then, if asked
  // to (keep_ring_only_if_faster), times the ring against setsockopt().
  bool self_test();
  // The timing on `fd`; falls back (returning false) unless the ring is
  // faster by a tenth (the ring also costs an fd and two mapped pages).
  bool ring_measures_faster(int fd);
  // Fills SQE number `index` of the next batch with setsockopt(fd, option,
  // *value).
  void prepare_sqe(unsigned index, int fd, Option option, const int* value);
  // Fills SQE number `index` with the socket command `op` (getsockopt or
  // setsockopt) for `level`/`optname` on *value, tagged `tag`.
  void prepare_socket_cmd(unsigned index, int fd, uint32_t op, int level,
                          int optname, const int* value, uint64_t tag);
  // Submits `count` prepared SQEs with one io_uring_enter and stores each
  // completion's result in results[tag] (tags below `slots`); false (having
  // fallen back) if the ring failed.
  bool submit_and_reap(unsigned count, int* results, size_t slots);
  // submit_and_reap for setsockopt SQEs tagged with their Option: records
  // the completions in `report`.
  bool submit(unsigned count, ApplyReport& report);
  ApplyReport apply_by_ring(int fd, const Settings& settings, Mode mode);
  // After a batch whose TCP_USER_TIMEOUT was derived up front: if a
  // keepalive option failed, apply_to would have derived another value;
  // sets that one instead and records it in `report`.
  void redo_derived_timeout(int fd, ApplyReport& report);
  // Falls back for good: releases the ring and records why. Returns false.
  bool fall_back(int err, const char* what, const char* hint);
  void release();

  Path path_ = Path::kUntried;
  bool measure_ = false;
  std::string fallback_reason_;
  int fallback_errno_ = 0;

  UniqueFd ring_fd_;
  void* rings_ = nullptr;  // SQ and CQ ring headers, CQEs (one mapping)
  size_t rings_size_ = 0;
  io_uring_sqe* sqes_ = nullptr;  // a mapping of its own
  size_t sqes_size_ = 0;
  unsigned* sq_tail_ = nullptr;  // written by us, read by the kernel
  unsigned sq_mask_ = 0;
  unsigned* cq_head_ = nullptr;  // written by us, read by the kernel
  unsigned* cq_tail_ = nullptr;  // written by the kernel
  unsigned cq_mask_ = 0;
  const io_uring_cqe* cqes_ = nullptr;
  // The setsockopt values of the batch in flight: the kernel reads them
  // through the SQEs' optval pointers until their completions are reaped.
  int values_[kOptionCount] = {};
};

// "not yet tried", "io_uring" or "setsockopt".
const char* path_name(OptionRing::Path path);

}  // namespace keepalive

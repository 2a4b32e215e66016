// SPDX-License-Identifier: Apache-2.0
#include "supervisor/option_ring.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <climits>
#include <cstdint>
#include <iterator>

#include "supervisor/error.h"
#include "supervisor/syscalls.h"

namespace keepalive {
namespace {

// One SQE per option at most; the kernel rounds up to a power of two anyway.
// 16 SQEs (1 KiB) and 32 CQEs share two pages with the ring headers.
constexpr unsigned kEntries =
    std::bit_ceil(static_cast<unsigned>(kOptionCount));

// One submitting thread (lighter locking, Linux 6.0); submission that carries
// on past an SQE failing early (a bad fd) instead of leaving the rest in the
// ring (5.18); SQEs taken in ring order, without the index array (6.6).
// Every kernel with socket setsockopt (6.7) has all three; an older one gets
// a plain ring, and the self-test then says what it lacks.
constexpr unsigned kSetupFlags = IORING_SETUP_SINGLE_ISSUER |
                                 IORING_SETUP_SUBMIT_ALL |
                                 IORING_SETUP_NO_SQARRAY;

static_assert(sizeof(io_uring_sqe) == 64);
static_assert(offsetof(io_uring_sqe, cmd_op) == 8);
static_assert(offsetof(io_uring_sqe, addr) == sys::kSqeLevelOffset);
static_assert(offsetof(io_uring_sqe, splice_fd_in) == sys::kSqeOptlenOffset);
static_assert(offsetof(io_uring_sqe, addr3) == sys::kSqeOptvalOffset);

void store_u32(io_uring_sqe* sqe, size_t offset, uint32_t value) {
  memcpy(reinterpret_cast<unsigned char*>(sqe) + offset, &value, sizeof value);
}

// The likely cause of a failed io_uring_setup, for the log.
const char* setup_hint(int err) {
  switch (err) {
    case ENOSYS:
      return "a kernel without io_uring, or a seccomp profile hiding it";
    case EPERM:
      return "sysctl kernel.io_uring_disabled, or a container's seccomp "
             "profile";
    case ENOMEM:
      return "the memory cgroup's limit, or RLIMIT_MEMLOCK before Linux 5.12";
    default:
      return nullptr;
  }
}

}  // namespace

OptionRing::~OptionRing() { release(); }

ApplyReport OptionRing::apply(int fd, const Settings& settings, Mode mode) {
  // A derived timeout with one keepalive option left to the system needs the
  // system's value, which apply_to reads from the socket with getsockopt:
  // not something to know before submitting.
  bool needs_system_values =
      option_applies(Option::kUserTimeout, mode) &&
      settings.value(Option::kUserTimeout) == kDeriveUserTimeout &&
      (settings.value(Option::kKeepIdle) == 0 ||
       settings.value(Option::kKeepIntvl) == 0 ||
       settings.value(Option::kKeepCnt) == 0);
  if (!settings.enabled() || needs_system_values) {
    return apply_to(fd, settings, mode);
  }
  if (prepare() != Path::kIoUring) return apply_to(fd, settings, mode);
  return apply_by_ring(fd, settings, mode);
}

OptionRing::Path OptionRing::prepare() {
  if (path_ == Path::kUntried && set_up()) path_ = Path::kIoUring;
  return path_;
}

void OptionRing::force_fallback() {
  fall_back(0, "forced by the caller", nullptr);
}

const char* path_name(OptionRing::Path path) {
  switch (path) {
    case OptionRing::Path::kUntried:
      return "not yet tried";
    case OptionRing::Path::kIoUring:
      return "io_uring";
    case OptionRing::Path::kSetsockopt:
      return "setsockopt";
  }
  return "?";
}

bool OptionRing::set_up() {
  io_uring_params params{};
  params.flags = kSetupFlags;
  int fd = sys::io_uring_setup(kEntries, &params);
  if (fd < 0 && errno == EINVAL) {  // a flag this kernel does not know
    params = io_uring_params{};
    fd = sys::io_uring_setup(kEntries, &params);
  }
  if (fd < 0) {
    int err = errno;
    return fall_back(err, "io_uring_setup", setup_hint(err));
  }
  ring_fd_.reset(fd);
  if ((params.features & IORING_FEAT_SINGLE_MMAP) == 0) {
    return fall_back(0, "io_uring without IORING_FEAT_SINGLE_MMAP",
                     "Linux 5.4+");
  }

  // The kernel requires a zeroed probe.
  constexpr unsigned kProbeOps = IORING_OP_URING_CMD + 1;
  alignas(io_uring_probe) unsigned char
      probe_buf[sizeof(io_uring_probe) +
                kProbeOps * sizeof(io_uring_probe_op)] = {};
  auto* probe = reinterpret_cast<io_uring_probe*>(probe_buf);
  if (sys::io_uring_register(fd, IORING_REGISTER_PROBE, probe, kProbeOps) < 0) {
    return fall_back(errno, "io_uring_register(IORING_REGISTER_PROBE)",
                     nullptr);
  }
  if (probe->last_op < IORING_OP_URING_CMD ||
      (probe->ops[IORING_OP_URING_CMD].flags & IO_URING_OP_SUPPORTED) == 0) {
    return fall_back(0, "io_uring without IORING_OP_URING_CMD", "Linux 5.19+");
  }

  // No MAP_POPULATE: the pages fault in on first touch, a few KiB in all.
  bool sq_array = (params.flags & IORING_SETUP_NO_SQARRAY) == 0;
  rings_size_ = std::max<size_t>(
      params.cq_off.cqes + params.cq_entries * sizeof(io_uring_cqe),
      sq_array ? params.sq_off.array + params.sq_entries * sizeof(unsigned)
               : 0);
  void* rings = mmap(nullptr, rings_size_, PROT_READ | PROT_WRITE, MAP_SHARED,
                     fd, IORING_OFF_SQ_RING);
  if (rings == MAP_FAILED) {
    rings_size_ = 0;
    return fall_back(errno, "mmap(IORING_OFF_SQ_RING)", nullptr);
  }
  rings_ = rings;
  sqes_size_ = params.sq_entries * sizeof(io_uring_sqe);
  void* sqes = mmap(nullptr, sqes_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                    IORING_OFF_SQES);
  if (sqes == MAP_FAILED) {
    sqes_size_ = 0;
    return fall_back(errno, "mmap(IORING_OFF_SQES)", nullptr);
  }
  sqes_ = static_cast<io_uring_sqe*>(sqes);

  auto* base = static_cast<unsigned char*>(rings);
  sq_tail_ = reinterpret_cast<unsigned*>(base + params.sq_off.tail);
  sq_mask_ = *reinterpret_cast<const unsigned*>(base + params.sq_off.ring_mask);
  cq_head_ = reinterpret_cast<unsigned*>(base + params.cq_off.head);
  cq_tail_ = reinterpret_cast<unsigned*>(base + params.cq_off.tail);
  cq_mask_ = *reinterpret_cast<const unsigned*>(base + params.cq_off.ring_mask);
  cqes_ = reinterpret_cast<const io_uring_cqe*>(base + params.cq_off.cqes);
  if (sq_array) {
    // SQE i always sits in slot i: the index array never changes.
    auto* array = reinterpret_cast<unsigned*>(base + params.sq_off.array);
    for (unsigned i = 0; i < params.sq_entries; ++i) array[i] = i;
  }
  return self_test();
}

bool OptionRing::self_test() {
  // The probe only says that IORING_OP_URING_CMD exists (5.19+). Sockets
  // answer setsockopt through it from 6.7 on, and a security module can
  // refuse it (security_uring_cmd). One option on a new TCP socket tells.
  UniqueFd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) {
    sock.reset(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  }
  if (!sock.valid()) {
    return fall_back(errno, "socket() to try io_uring's setsockopt on",
                     nullptr);
  }
  ApplyReport report;
  values_[0] = 1;
  prepare_sqe(0, sock.get(), Option::kKeepAlive, &values_[0]);
  if (!submit(1, report)) return false;
  const OptionOutcome& outcome = report.outcome(Option::kKeepAlive);
  if (outcome.state == OptionState::kApplied) {
    return !measure_ || ring_measures_faster(sock.get());
  }
  bool missing = outcome.error == EOPNOTSUPP || outcome.error == EINVAL;
  return fall_back(outcome.error, "io_uring setsockopt(SO_KEEPALIVE)",
                   missing ? "a kernel without io_uring socket commands, "
                             "Linux 6.7+"
                           : nullptr);
}

bool OptionRing::ring_measures_faster(int fd) {
  // Connect mode's five options at upstream's defaults (what most sockets
  // get), through the two paths apply() chooses between.
  const Settings defaults;
  auto now_ns = [] {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  };
  // The best of each: the least disturbed by the rest of the machine.
  int64_t by_calls = INT64_MAX;
  int64_t by_ring = INT64_MAX;
  for (int round = 0; round < 16; ++round) {
    int64_t start = now_ns();
    (void)apply_to(fd, defaults, Mode::kConnect);
    int64_t middle = now_ns();
    (void)apply_by_ring(fd, defaults, Mode::kConnect);
    // A failed io_uring_enter has released the ring (fall_back).
    if (path_ == Path::kSetsockopt) return false;
    int64_t end = now_ns();
    by_calls = std::min(by_calls, middle - start);
    by_ring = std::min(by_ring, end - middle);
  }
  if (by_ring * 10 < by_calls * 9) return true;
  // std::to_string, not snprintf: printf's code would be paged in for this
  // one line, in every supervised run.
  std::string why = "io_uring is not a tenth faster here: five options in " +
                    std::to_string(by_calls) + " ns by setsockopt, " +
                    std::to_string(by_ring) + " ns in one io_uring_enter";
  return fall_back(0, why.c_str(), nullptr);
}

void OptionRing::prepare_sqe(unsigned index, int fd, Option option,
                             const int* value) {
  const OptionInfo& info = option_info(option);
  prepare_socket_cmd(index, fd, sys::kSocketUringOpSetsockopt, info.level,
                     info.optname, value, static_cast<uint64_t>(option));
}

void OptionRing::prepare_socket_cmd(unsigned index, int fd, uint32_t op,
                                    int level, int optname, const int* value,
                                    uint64_t tag) {
  unsigned tail =
      std::atomic_ref<unsigned>(*sq_tail_).load(std::memory_order_relaxed);
  io_uring_sqe* sqe = &sqes_[(tail + index) & sq_mask_];
  memset(sqe, 0, sizeof *sqe);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fd;
  sqe->cmd_op = op;
  store_u32(sqe, sys::kSqeLevelOffset, static_cast<uint32_t>(level));
  store_u32(sqe, sys::kSqeOptnameOffset, static_cast<uint32_t>(optname));
  store_u32(sqe, sys::kSqeOptlenOffset, sizeof *value);
  sqe->addr3 = reinterpret_cast<uintptr_t>(value);
  sqe->user_data = tag;
}

bool OptionRing::submit(unsigned count, ApplyReport& report) {
  // INT_MIN: no completion for that option (it was not in the batch).
  int results[kOptionCount];
  std::fill(std::begin(results), std::end(results), INT_MIN);
  if (!submit_and_reap(count, results, kOptionCount)) return false;
  for (int i = 0; i < kOptionCount; ++i) {
    if (results[i] == INT_MIN) continue;
    OptionOutcome& outcome = report.outcomes[i];
    outcome.state =
        results[i] >= 0 ? OptionState::kApplied : OptionState::kFailed;
    outcome.error = results[i] >= 0 ? 0 : -results[i];
  }
  return true;
}

SocketKind OptionRing::classify(int fd) {
  if (prepare() != Path::kIoUring) return classify_socket(fd);
  constexpr int kNames[] = {SO_DOMAIN, SO_TYPE, SO_PROTOCOL};
  for (unsigned i = 0; i < 3; ++i) {
    values_[i] = 0;
    prepare_socket_cmd(i, fd, sys::kSocketUringOpGetsockopt, SOL_SOCKET,
                       kNames[i], &values_[i], i);
  }
  int results[3] = {-1, -1, -1};
  if (!submit_and_reap(3, results, 3)) return classify_socket(fd);
  // The completion is the option's length. Anything else (not a socket,
  // or a kernel whose socket commands refuse this protocol) gets
  // getsockopt's own answer.
  for (int result : results) {
    if (result != static_cast<int>(sizeof(int))) return classify_socket(fd);
  }
  return socket_kind_of(values_[0], values_[1], values_[2]);
}

bool OptionRing::submit_and_reap(unsigned count, int* results, size_t slots) {
  std::atomic_ref<unsigned> sq_tail(*sq_tail_);
  sq_tail.store(sq_tail.load(std::memory_order_relaxed) + count,
                std::memory_order_release);
  int submitted =
      sys::io_uring_enter(ring_fd_.get(), count, count, IORING_ENTER_GETEVENTS);
  if (submitted < 0) {
    int err = errno;
    return fall_back(err, "io_uring_enter",
                     err == EEXIST ? "called from another thread than the "
                                     "one that set the ring up"
                                   : nullptr);
  }
  if (static_cast<unsigned>(submitted) != count) {
    // Only a ring without SUBMIT_ALL stops early; what is left in the SQ
    // would go out with the next batch.
    return fall_back(0, "io_uring_enter submitted part of a batch", nullptr);
  }

  std::atomic_ref<unsigned> cq_head(*cq_head_);
  std::atomic_ref<unsigned> cq_tail(*cq_tail_);
  unsigned head = cq_head.load(std::memory_order_relaxed);
  unsigned reaped = 0;
  while (reaped < count) {
    unsigned tail = cq_tail.load(std::memory_order_acquire);
    for (; head != tail && reaped < count; ++head, ++reaped) {
      const io_uring_cqe& cqe = cqes_[head & cq_mask_];
      if (cqe.user_data < slots) results[cqe.user_data] = cqe.res;
    }
    cq_head.store(head, std::memory_order_release);
    if (reaped == count) break;
    // Socket options complete during submission, so this does not wait in
    // practice; a signal may still cut a wait short.
    if (sys::io_uring_enter(ring_fd_.get(), 0, count - reaped,
                            IORING_ENTER_GETEVENTS) < 0 &&
        errno != EINTR) {
      return fall_back(errno, "io_uring_enter (waiting)", nullptr);
    }
  }
  return true;
}

ApplyReport OptionRing::apply_by_ring(int fd, const Settings& settings,
                                      Mode mode) {
  ApplyReport report;
  report.fd = fd;
  report.mode = mode;
  bool derived = settings.value(Option::kUserTimeout) == kDeriveUserTimeout;
  Option first = Option::kKeepAlive;
  unsigned count = 0;
  for (int i = 0; i < kOptionCount; ++i) {
    Option option = static_cast<Option>(i);
    if (!option_applies(option, mode)) continue;
    int value = settings.value(option);
    if (option == Option::kUserTimeout && derived) {
      // apply() made sure all three are set: this is what apply_to derives
      // as long as they get applied (checked below).
      value = derive_user_timeout(settings.value(Option::kKeepIdle),
                                  settings.value(Option::kKeepIntvl),
                                  settings.value(Option::kKeepCnt));
    }
    if (value == 0) continue;  // 0 leaves the system default
    report.outcomes[i].value = value;
    values_[count] = value;
    prepare_sqe(count, fd, option, &values_[count]);
    if (count == 0) first = option;
    ++count;
  }
  if (count == 0) return report;
  // Setting an option twice to the same value changes nothing, so apply_to
  // can redo whatever the ring may already have done.
  if (!submit(count, report)) return apply_to(fd, settings, mode);

  // The command's own checks come before setsockopt's: a file that is not a
  // socket fails every entry with EOPNOTSUPP where setsockopt says ENOTSOCK,
  // and kernels before a 2025 fix did the same to sockets whose protocol has
  // no ioctl (AF_UNIX among them). Only setsockopt gives setsockopt's answer.
  const OptionOutcome& head = report.outcome(first);
  if (head.state == OptionState::kFailed &&
      (head.error == EOPNOTSUPP || head.error == EINVAL)) {
    return apply_to(fd, settings, mode);
  }

  if (derived) redo_derived_timeout(fd, report);
  return report;
}

void OptionRing::redo_derived_timeout(int fd, ApplyReport& report) {
  auto applied = [&report](Option option) {
    return report.outcome(option).state == OptionState::kApplied;
  };
  if (applied(Option::kKeepIdle) && applied(Option::kKeepIntvl) &&
      applied(Option::kKeepCnt)) {
    return;  // apply_to derives from the same values as we did
  }
  // apply_to would have derived from the socket's own values where ours
  // failed (on a UDP socket none can be read: 0, so nothing to set).
  int value = derive_user_timeout_on(fd, report);
  OptionOutcome& timeout =
      report.outcomes[static_cast<int>(Option::kUserTimeout)];
  if (value == timeout.value) return;
  bool was_set = timeout.state == OptionState::kApplied;
  timeout = OptionOutcome{};
  if (value != 0) {
    timeout.value = value;
    if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &value, sizeof value) ==
        0) {
      timeout.state = OptionState::kApplied;
    } else {
      timeout.state = OptionState::kFailed;
      timeout.error = errno;
    }
  } else if (was_set) {
    // apply_to would have left it alone: put back 0, its value on every new
    // socket. No Linux protocol gets here: it takes one that accepts
    // TCP_USER_TIMEOUT but can neither set nor read TCP_KEEPIDLE.
    int zero = 0;
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &zero, sizeof zero);
  }
}

bool OptionRing::fall_back(int err, const char* what, const char* hint) {
  release();
  path_ = Path::kSetsockopt;
  fallback_errno_ = err;
  fallback_reason_ = err != 0 ? SysError{err, what}.message() : what;
  if (hint != nullptr) {
    fallback_reason_ += " (";
    fallback_reason_ += hint;
    fallback_reason_ += ")";
  }
  return false;
}

void OptionRing::release() {
  if (sqes_ != nullptr) munmap(sqes_, sqes_size_);
  if (rings_ != nullptr) munmap(rings_, rings_size_);
  sqes_ = nullptr;
  rings_ = nullptr;
  sq_tail_ = nullptr;
  cq_head_ = nullptr;
  cq_tail_ = nullptr;
  cqes_ = nullptr;
  ring_fd_.reset();
}

}  // namespace keepalive

// SPDX-License-Identifier: Apache-2.0
// What the supervisor decided for one trapped call. Handlers return a
// Verdict and answer nothing; Server::answer turns it into exactly one
// answer (or none, for a call that is gone).
#pragma once

#include <utility>

#include "common/socket_options.h"
#include "common/unique_fd.h"

namespace keepalive {

struct Verdict {
  enum class Kind {
    kContinue,  // the kernel runs the call itself, as the caller
    kInject,    // the call returns `fd`, copied into the caller
    kGone,      // the caller died or its call was interrupted: no answer
  };

  Kind kind = Kind::kContinue;
  UniqueFd fd;           // kInject: our copy of the socket to hand over
  bool cloexec = false;  // kInject: the caller's copy gets O_CLOEXEC
  ApplyReport report;    // kInject: the options set on `fd`

  static Verdict let_through() { return Verdict{}; }
  static Verdict gone() {
    Verdict verdict;
    verdict.kind = Kind::kGone;
    return verdict;
  }
  static Verdict inject(UniqueFd fd, bool cloexec, const ApplyReport& report) {
    Verdict verdict;
    verdict.kind = Kind::kInject;
    verdict.fd = std::move(fd);
    verdict.cloexec = cloexec;
    verdict.report = report;
    return verdict;
  }
};

// What became of a verdict's answer.
enum class Answered {
  kAsDecided,  // the caller got the answer the verdict asked for
  kContinued,  // an fd could not be added (the caller's fd limit, say):
               // the kernel runs the call instead
  kGone,       // the caller was gone or interrupted: nothing answered
  kLeftFd,     // the fd was added but the call was interrupted before
               // its answer: the fd stays in the caller, unknown to it
};

}  // namespace keepalive

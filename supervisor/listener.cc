// SPDX-License-Identifier: Apache-2.0
#include "supervisor/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <string.h>
#include <sys/ioctl.h>

#include <new>
#include <utility>

#include "supervisor/syscalls.h"

namespace keepalive {

Result<std::unique_ptr<KernelListener>> KernelListener::open(UniqueFd& fd) {
  seccomp_notif_sizes sizes{};
  if (sys::seccomp_notif_sizes(&sizes) != 0) {
    return errno_error("seccomp(SECCOMP_GET_NOTIF_SIZES)");
  }
  seccomp_notif* req = nullptr;
  seccomp_notif_resp* resp = nullptr;
  // libseccomp allocates at the kernel's sizes too; it fails only for
  // memory.
  if (seccomp_notify_alloc(&req, &resp) != 0) {
    return std::unexpected(
        SysError{ENOMEM,
                 "allocating the notification buffers (raise the memory "
                 "limit, ulimit -v)"});
  }
  auto* listener = new (std::nothrow) KernelListener(
      std::move(fd), req, resp, sizes.seccomp_notif, sizes.seccomp_notif_resp);
  if (listener == nullptr) {
    seccomp_notify_free(req, resp);
    return std::unexpected(SysError{ENOMEM, "allocating the listener"});
  }
  return std::unique_ptr<KernelListener>(listener);
}

KernelListener::KernelListener(UniqueFd fd, seccomp_notif* req,
                               seccomp_notif_resp* resp, size_t req_size,
                               size_t resp_size)
    : fd_(std::move(fd)),
      req_(req),
      resp_(resp),
      req_size_(req_size > sizeof *req ? req_size : sizeof *req),
      resp_size_(resp_size > sizeof *resp ? resp_size : sizeof *resp) {}

KernelListener::~KernelListener() { seccomp_notify_free(req_, resp_); }

bool KernelListener::request_sync_wake_up() {
  return keepalive::request_sync_wake_up(fd_.get());
}

Result<const seccomp_notif*> KernelListener::receive() {
  // RECV fails with EINVAL unless the buffer is zeroed.
  memset(req_, 0, req_size_);
  if (seccomp_notify_receive(fd_.get(), req_) != 0) {
    // libseccomp returns -errno and leaves errno set.
    return errno_error("SECCOMP_IOCTL_NOTIF_RECV");
  }
  return req_;
}

bool KernelListener::alive(uint64_t id) {
  return seccomp_notify_id_valid(fd_.get(), id) == 0;
}

Result<int> KernelListener::add_fd(uint64_t id, int fd, bool cloexec) {
  seccomp_notif_addfd addfd{};
  addfd.id = id;
  addfd.flags = 0;
  addfd.srcfd = static_cast<__u32>(fd);
  addfd.newfd_flags = cloexec ? O_CLOEXEC : 0;
  int target_fd = ioctl(fd_.get(), SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
  if (target_fd < 0) return errno_error("SECCOMP_IOCTL_NOTIF_ADDFD");
  return target_fd;
}

Result<void> KernelListener::send_continue(uint64_t id) {
  return send(id, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
}

Result<void> KernelListener::send_value(uint64_t id, int64_t value) {
  return send(id, value, 0);
}

Result<void> KernelListener::send(uint64_t id, int64_t value, uint32_t flags) {
  memset(resp_, 0, resp_size_);
  resp_->id = id;
  resp_->val = value;
  resp_->flags = flags;
  if (seccomp_notify_respond(fd_.get(), resp_) != 0) {
    return errno_error("SECCOMP_IOCTL_NOTIF_SEND");
  }
  return {};
}

bool request_sync_wake_up(int listener) {
  // By value, not by pointer.
  uint64_t flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
  return ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) == 0;
}

}  // namespace keepalive

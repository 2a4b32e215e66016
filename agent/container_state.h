// SPDX-License-Identifier: Apache-2.0
// What an OCI runtime hands the agent for one container: the seccomp
// listener of the container's filter and the container process state
// (runtime-spec, "Container process state"), sent together in one message
// over the socket named by the profile's listenerPath:
//
//   {"ociVersion": "1.0.2", "fds": ["seccompFd"], "pid": 4422,
//    "metadata": "...", "state": {"ociVersion": "1.0.2", "id": "web",
//    "status": "creating", "pid": 4422, "bundle": "/run/...",
//    "annotations": {...}}}
//
// with the fds named by "fds" in SCM_RIGHTS, in that order.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"
#include "supervisor/error.h"

namespace keepalive::agent {

// A state larger than this is refused (runc's and crun's are a few
// hundred bytes; annotations can add some kilobytes).
inline constexpr size_t kMaxStateBytes = size_t{64} * 1024;
// As many fds as one message may carry; more are refused.
inline constexpr size_t kMaxFds = 8;

struct ContainerState {
  std::string id;        // state.id; empty if absent
  pid_t pid = 0;         // the container's process, in our pid namespace
  std::string metadata;  // the profile's listenerMetadata
  // state.annotations["org.keepalive.options"], where the runtime passes it
  std::optional<std::string> annotation;
  UniqueFd listener;  // the seccomp notification fd ("seccompFd")
};

// The annotation that carries a container's own options.
inline constexpr char kOptionsAnnotation[] = "org.keepalive.options";

// Parses `json` and takes the fd named "seccompFd" from `fds` (received
// in the order "fds" names them); the other fds are closed. Fails, saying
// what is wrong (and naming the container when its id was read), for bad
// JSON, a missing or malformed field, no "seccompFd", or an fd that is not
// a seccomp listener.
Result<ContainerState> parse_container_state(std::string_view json,
                                             std::vector<UniqueFd> fds);

// Collects one runtime's message from a connection: the JSON text, once it
// is a whole document (runc keeps the connection open after its one
// sendmsg, which a stream socket may deliver in pieces) or the runtime
// closed its end, and the fds that came with it.
class StateReceiver {
 public:
  // Reads what `sock` (nonblocking) has now. nullopt: the runtime has not
  // finished; otherwise the parsed state, or why there is none (ENODATA:
  // the peer connected and closed without a word, as a check whether an
  // agent listens does). Every fd received is closed unless returned.
  std::optional<Result<ContainerState>> read_some(int sock);

 private:
  std::string text_;
  std::vector<UniqueFd> fds_;
};

// A sealed memfd holding what `state` says besides its listener, for the
// fd store (fd_store.h): what a later agent needs to serve the listener
// as this one did.
Result<UniqueFd> save_record(const ContainerState& state);

// The state save_record kept in `record`, without its listener. Fails,
// saying why, for a record it did not write.
Result<ContainerState> load_record(int record);

// Whether `fd` is a seccomp user-notification listener.
bool is_seccomp_listener(int fd);

}  // namespace keepalive::agent

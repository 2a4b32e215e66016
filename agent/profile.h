// SPDX-License-Identifier: Apache-2.0
// `keepalive-agent profile`: the seccomp profile (OCI runtime-spec
// "linux.seccomp", as runc, crun, containerd and Kubernetes' Localhost
// profiles take it) that hands a container to the agent: a base profile
// with connect() and listen() sent to the agent (SCMP_ACT_NOTIFY) over
// listenerPath, and the container's own settings as listenerMetadata.
#pragma once

#include <expected>
#include <nlohmann/json.hpp>
#include <string>

namespace keepalive::agent {

struct ProfileOptions {
  std::string socket_path;          // listenerPath
  std::string metadata;             // listenerMetadata; checked, may be empty
  bool wait_killable_recv = false;  // flags: WAIT_KILLABLE_RECV (Linux 5.19)
};

// The calls the profile sends to the agent: the continue strategy's.
inline constexpr const char* kNotifiedCalls[] = {"connect", "listen"};

// `base` with the agent's rule, listenerPath and listenerMetadata. Plain
// allow rules (no argument conditions) for the notified calls lose those
// names, so that one rule decides them. Fails, saying why, for a base
// that is not a profile, already notifies or names a listener (a filter
// has one listener; runc refuses some NOTIFY rules, and CRI-O replaces
// listenerPath with its own), or acts otherwise on a notified call (an
// error or a conditional rule the agent's rule would override).
std::expected<nlohmann::json, std::string> make_profile(
    const nlohmann::json& base, const ProfileOptions& options);

// The base used without --base: everything allowed on x86-64 (and its
// 32-bit ABIs), so that only the agent's rule acts.
nlohmann::json permissive_base();

}  // namespace keepalive::agent

// SPDX-License-Identifier: Apache-2.0
#include "agent/profile.h"

#include <algorithm>

#include "supervisor/setting_flags.h"

namespace keepalive::agent {
namespace {

using nlohmann::json;

bool is_notified(const json& name) {
  return name.is_string() &&
         std::ranges::any_of(kNotifiedCalls,
                             [&](const char* call) { return name == call; });
}

}  // namespace

json permissive_base() {
  return json{{"defaultAction", "SCMP_ACT_ALLOW"},
              {"architectures",
               {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}}};
}

std::expected<json, std::string> make_profile(const json& base,
                                              const ProfileOptions& options) {
  if (!base.is_object() || !base.contains("defaultAction")) {
    return std::unexpected(
        "the base is not a seccomp profile (an object with defaultAction)");
  }
  if (auto metadata = parse_option_words(options.metadata, WorkloadOptions{});
      !metadata) {
    return std::unexpected("--metadata: " + metadata.error());
  }
  json profile = base;
  if (profile.contains("listenerPath")) {
    return std::unexpected(
        "the base already names a listener (listenerPath " +
        profile["listenerPath"].dump() +
        "): a filter has one listener; under CRI-O, whose own notifier "
        "replaces listenerPath, use another runtime");
  }
  if (profile.contains("listenerMetadata")) {
    // It would become every container's settings unchecked: the agent's
    // settings for a profile come from --metadata.
    return std::unexpected(
        "the base already has listenerMetadata (" +
        profile["listenerMetadata"].dump() +
        "); give the container's settings with --metadata instead");
  }
  if (profile.contains("flags") && !profile["flags"].is_array()) {
    return std::unexpected("the base's \"flags\" is not a list (" +
                           profile["flags"].dump() + ")");
  }
  if (profile["defaultAction"] == "SCMP_ACT_NOTIFY") {
    return std::unexpected("the base's defaultAction already notifies");
  }
  json rules = json::array();
  if (profile.contains("syscalls")) {
    if (!profile["syscalls"].is_array()) {
      return std::unexpected("the base's \"syscalls\" is not a list");
    }
    size_t index = 0;
    for (json rule : profile["syscalls"]) {
      ++index;
      std::string where = "the base's rule " + std::to_string(index);
      if (!rule.is_object() || !rule.contains("names") ||
          !rule["names"].is_array()) {
        rules.push_back(rule);  // the runtime judges what it does not name
        continue;
      }
      if (rule.contains("action") && !rule["action"].is_string()) {
        return std::unexpected(where + "'s \"action\" is not a string (" +
                               rule["action"].dump() + ")");
      }
      if (rule.value("action", "") == "SCMP_ACT_NOTIFY") {
        return std::unexpected(where +
                               " already notifies (runc refuses NOTIFY "
                               "rules on some calls, and a filter has one "
                               "listener)");
      }
      json& names = rule["names"];
      bool touches = std::ranges::any_of(names, is_notified);
      if (!touches) {
        rules.push_back(rule);
        continue;
      }
      bool plain_allow = rule.value("action", "") == "SCMP_ACT_ALLOW" &&
                         (!rule.contains("args") || rule["args"].is_null() ||
                          rule["args"].empty());
      if (!plain_allow) {
        return std::unexpected(
            where + " acts on connect or listen (" + rule.value("action", "?") +
            (rule.contains("args") ? ", with conditions" : "") +
            "); the agent's rule would override it");
      }
      json kept = json::array();
      for (const json& name : names) {
        if (!is_notified(name)) kept.push_back(name);
      }
      if (kept.empty()) continue;
      rule["names"] = kept;
      rules.push_back(rule);
    }
  }
  json names = json::array();
  for (const char* call : kNotifiedCalls) names.push_back(call);
  rules.push_back({{"names", names}, {"action", "SCMP_ACT_NOTIFY"}});
  profile["syscalls"] = rules;
  profile["listenerPath"] = options.socket_path;
  if (!options.metadata.empty()) profile["listenerMetadata"] = options.metadata;
  if (options.wait_killable_recv) {
    json flags = profile.value("flags", json::array());
    flags.push_back("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV");
    profile["flags"] = flags;
  }
  return profile;
}

}  // namespace keepalive::agent

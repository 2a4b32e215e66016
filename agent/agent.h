// SPDX-License-Identifier: Apache-2.0
// keepalive-agent's engine: one event loop that accepts OCI runtimes'
// connections on a Unix socket, takes each container's seccomp listener
// (container_state.h) and serves it with the supervisor's Server, until
// the container's last task under the filter is gone.
//
// Everything runs on one thread: the accepting socket, each runtime's
// connection and each listener's readiness are descriptors of one
// Boost.Asio loop. A trapped call is answered in the loop's turn; the
// answers make a few system calls each, so one thread serves many
// containers.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/container_state.h"
#include "agent/fd_store.h"
#include "supervisor/error.h"
#include "supervisor/listener.h"
#include "supervisor/log.h"
#include "supervisor/notification_handler.h"
#include "supervisor/option_ring.h"
#include "supervisor/server.h"
#include "supervisor/setting_flags.h"

namespace keepalive::agent {

// Descriptors the agent needs beside those it inherits to serve its first
// container, checked at start. Held for the whole run: Asio's epoll,
// eventfd and timerfd, the runtimes' and the control socket, the signal
// pipe, the spare (see Agent), the metrics socket, the service manager's
// socket while notifying, and the shared option ring with its self-test
// socket. One runtime's connection with the most fds it may send
// (kMaxFds). One container: its listener, the watched duplicate, the task
// cache's epoll set and its record. One call: the caller's pidfd, the copy
// of its socket and a /proc file. Then room.
inline constexpr int kAgentDescriptors =
    12 + (1 + static_cast<int>(kMaxFds)) + 4 + 3 + 4;

struct AgentOptions {
  std::string socket_path;
  // Where `keepalive-agent status` asks; empty: no control socket.
  std::string control_path;
  // Besides root, processes of this group may connect (--group).
  std::optional<gid_t> group;
  HandlerOptions handler;  // the node-wide settings and -v, for every container
  // A container whose own settings are invalid gets no options, instead of
  // the node's.
  bool strict = false;
};

// The directory of `path`, "." for a bare name.
std::string directory_of(const std::string& path);

// The options for the container of `state`: `node`'s, then its profile's
// listenerMetadata over them, then its annotation over those. A bad word
// in either fails, with a message naming where it was.
std::expected<WorkloadOptions, std::string> container_options(
    const ContainerState& state, const WorkloadOptions& node);

class Agent {
 public:
  Agent(boost::asio::io_context& io, AgentOptions options);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Takes over what an earlier agent left (fd_store.h): its listening
  // socket, and each container's listener with its record, served again
  // at once (calls that queued meanwhile are answered first). Call before
  // listen(). Closes what it cannot use, with a line for each listener.
  void adopt(std::vector<NamedFd> fds);

  // Starts accepting: on the adopted socket if there is one; otherwise
  // creates the socket (its directory 0750 if missing, the socket 0660,
  // replacing a stale socket left by an earlier agent) and hands it to the
  // fd store. Fails, saying why, if the path is taken by something else or
  // cannot be bound. Returns the path listened on.
  Result<std::string> listen();

  // Answers `keepalive-agent status` on the control socket (if any),
  // made as listen() makes its socket.
  Result<void> listen_control();

  // How many containers are served now.
  size_t containers() const { return containers_.size(); }

  // Stops accepting runtimes' connections (those that come wait in the
  // socket's backlog, which a re-exec passes on) and calls `then` from
  // the loop once every message being read has been read and served, or
  // refused, which takes at most 5 s. Returns how many are being read.
  size_t drain(std::function<void()> then);
  // Accepts again, after a re-exec that failed.
  void resume();

  // The fds a re-executed agent needs to go on where this one stops, with
  // their names (as inherited_fds gives them back).
  std::vector<std::pair<int, std::string>> passable_fds() const;

  ServiceManager& service_manager() { return service_; }

  // Serves metrics() over HTTP on `address` (HOST:PORT; port 0 picks
  // one). Returns the address bound, or why not.
  Result<std::string> serve_metrics(const std::string& address);

  // The counters of status(), in the Prometheus text format.
  std::string metrics() const;

  // Logs what the rate limits left out: before the agent exits or
  // re-executes, whose burst would otherwise go uncounted.
  void flush_warnings() { warnings_.flush(); }

  // What `keepalive-agent status` prints: one line for the agent, then one
  // per container served (name, pid, sockets given options, failures, its
  // settings).
  std::string status() const;

 private:
  struct Connection;
  struct Container;
  struct Scrape;

  // Serves `state`'s listener. `tag` names its fds in the store; an empty
  // one: a new container, whose listener and record go to the store.
  void serve(ContainerState state, UniqueFd record, std::string tag);

  void accept_next();
  // Answers each connection to the control socket with status().
  void accept_control();
  void accept_metrics();
  // After accepting on `fd` failed with `error`: when that was for want of
  // a descriptor, takes every waiting connection with the spare's room and
  // closes it at once, logging why and that it closed `what` (rate-limited
  // as `kind`). Returns how many it closed, or -1 for another error.
  int shed_waiting(const boost::system::error_code& error, int fd,
                   const std::string& kind, const std::string& what);
  // Flushes warnings_ once the rate limit's interval has passed.
  void flush_later();
  // Closes the oldest metrics scrape that has not sent its request yet;
  // false if there is none.
  bool evict_idle_scrape();
  // Calls `again` after a pause: accepting failed for a reason that the
  // next attempt could meet too.
  void accept_later(std::function<void()> again);
  // Checks the peer and starts the message's deadline.
  void read_state(std::shared_ptr<Connection> connection);
  // Reads what has come whenever the connection is readable.
  void wait_state(std::shared_ptr<Connection> connection);
  void wait_calls(uint64_t key);
  void connection_ended();
  void drained();
  void on_ready(uint64_t key);

  boost::asio::io_context& io_;
  AgentOptions options_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> control_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> metrics_;
  // One ring for every container's options: the loop serves one call at
  // a time, and a ring per container cost an fd and its memory each.
  OptionRing ring_;
  uint64_t refused_messages_ = 0;
  boost::asio::steady_timer retry_;  // accepting again after a failure
  // Held open (an eventfd: no /dev needed) for the moment the table is
  // full: closed, it makes room to take each waiting connection and close
  // it, which fails its container (the runtime's hand-over, or its trapped
  // calls with ENOSYS) instead of leaving it waiting in a backlog nobody
  // can accept from.
  UniqueFd spare_;
  size_t scrapes_ = 0;  // metrics scrapes open, and the one being accepted
  std::deque<std::weak_ptr<Scrape>> unread_scrapes_;  // oldest first
  std::map<std::string, uint64_t> shed_totals_;  // by shed_waiting's kind
  boost::asio::steady_timer flush_;  // flush_later's
  bool flush_pending_ = false;
  Warnings warnings_;
  ServiceManager service_;
  std::map<uint64_t, std::unique_ptr<Container>> containers_;
  uint64_t next_key_ = 1;
  size_t connections_ = 0;  // runtimes' messages being read
  bool draining_ = false;
  std::function<void()> drained_;
  // Unique to this agent: with next_key_, the tag of a new container.
  std::string tag_prefix_;
};

}  // namespace keepalive::agent

// SPDX-License-Identifier: Apache-2.0
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>

#include "supervisor/log.h"

namespace keepalive::agent {
namespace {

namespace asio = boost::asio;
using Local = asio::local::stream_protocol;

// How long a runtime may take to send its message.
constexpr std::chrono::seconds kStateTimeout(5);

std::string container_name(const ContainerState& state) {
  if (!state.id.empty()) return "container " + state.id;
  if (state.pid > 0) return "pid " + std::to_string(state.pid);
  return "a container kept by an earlier agent";
}

// "mode connect, keepidle 30 ...": what a container gets, for -v.
std::string describe(const HandlerOptions& handler) {
  if (!handler.settings.enabled()) return "no options";
  std::string text = std::string("mode ") + mode_name(handler.mode);
  for (const SettingFlag& flag : kSettingFlags) {
    int value = handler.settings.value(flag.option);
    if (value == 0) continue;
    text += std::string(", ") + flag.name + " " + std::to_string(value);
  }
  return text;
}

}  // namespace

std::string directory_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::expected<WorkloadOptions, std::string> container_options(
    const ContainerState& state, const WorkloadOptions& node) {
  auto options = parse_option_words(state.metadata, node);
  if (!options) return std::unexpected("listenerMetadata: " + options.error());
  if (!state.annotation) return options;
  auto annotated = parse_option_words(*state.annotation, *options);
  if (!annotated) {
    return std::unexpected(std::string("annotation ") + kOptionsAnnotation +
                           ": " + annotated.error());
  }
  return annotated;
}

// A runtime's connection while its message arrives. The agent counts
// those alive: a re-exec waits for them (their fds would not pass).
struct Agent::Connection {
  explicit Connection(Agent& agent_)
      : agent(agent_), socket(agent_.io_), timer(agent_.io_) {}
  ~Connection() {
    if (counted) agent.connection_ended();
  }
  Agent& agent;
  bool counted = false;  // accepted from a trusted peer
  Local::socket socket;
  asio::steady_timer timer;
  StateReceiver receiver;
  bool done = false;
};

// One container's listener, served until every task under its filter is
// gone. `ready` watches a duplicate of the listener fd (Asio closes what
// it holds; the listener closes its own).
struct Agent::Container {
  Container(asio::io_context& io, std::string id_, std::string name_,
            pid_t pid_, std::string tag_, UniqueFd record_,
            std::unique_ptr<KernelListener> listener_,
            const HandlerOptions& options, int ready_fd)
      : id(std::move(id_)),
        name(std::move(name_)),
        pid(pid_),
        settings(describe(options)),
        tag(std::move(tag_)),
        record(std::move(record_)),
        listener(std::move(listener_)),
        server(*listener, options),
        ready(io, ready_fd) {}
  std::string id;  // the runtime's, quoted; may be empty
  std::string name;
  pid_t pid;             // as the runtime reported it
  std::string settings;  // describe()'s, for status
  std::string tag;  // its fds' names in the store: listener-TAG, record-TAG
  UniqueFd record;  // save_record's, for the store and a re-exec
  std::unique_ptr<KernelListener> listener;
  Server server;
  asio::posix::stream_descriptor ready;
};

Agent::Agent(asio::io_context& io, AgentOptions options)
    : io_(io),
      options_(std::move(options)),
      retry_(io),
      spare_(eventfd(0, EFD_CLOEXEC)),
      flush_(io) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tag_prefix_ =
      std::to_string(now.tv_sec) + "." + std::to_string(now.tv_nsec) + "-";
}

Agent::~Agent() = default;

void Agent::adopt(std::vector<NamedFd> fds) {
  std::map<std::string, UniqueFd> records;
  std::vector<NamedFd> listeners;
  for (NamedFd& kept : fds) {
    bool ours = kept.name == kSocketName ||
                kept.name.starts_with(kListenerPrefix) ||
                kept.name.starts_with(kRecordPrefix);
    if (ours) service_.count_inherited(1);
    if (kept.name.starts_with(kListenerPrefix)) {
      listeners.push_back(std::move(kept));
    } else if (kept.name.starts_with(kRecordPrefix)) {
      records[kept.name.substr(strlen(kRecordPrefix))] = std::move(kept.fd);
    } else if (!acceptor_ && sd_is_socket_unix(kept.fd.get(), SOCK_STREAM, 1,
                                               nullptr, 0) > 0) {
      auto acceptor = std::make_unique<Local::acceptor>(io_);
      boost::system::error_code error;
      acceptor->assign(Local(), kept.fd.get(), error);
      if (error) continue;
      kept.fd.release();
      // The agent's own socket from an earlier start (not one of socket
      // activation's, which the socket unit names): kept only if it is
      // still where --socket says.
      Local::endpoint where = acceptor->local_endpoint(error);
      if (kept.name == kSocketName &&
          (error || where.path() != options_.socket_path)) {
        log_line("the socket kept by an earlier agent is " +
                 (error ? std::string("unnamed") : quoted(where.path())) +
                 ", not --socket " + quoted(options_.socket_path) +
                 ": listening anew");
        service_.forget(kSocketName);
        continue;
      }
      if (kept.name == kSocketName && options_.group &&
          chown(where.path().c_str(), static_cast<uid_t>(-1),
                *options_.group) != 0) {
        log_line(errno_error("giving " + where.path() + " to group " +
                             std::to_string(*options_.group))
                     .error()
                     .message());
      }
      acceptor_ = std::move(acceptor);
    }
  }
  for (NamedFd& kept : listeners) {
    std::string tag = kept.name.substr(strlen(kListenerPrefix));
    auto record = records.find(tag);
    if (!is_seccomp_listener(kept.fd.get())) {
      log_line(kept.name + ": not a seccomp listener; closed");
      service_.forget(kept.name);
      continue;
    }
    Result<ContainerState> state =
        record == records.end()
            ? std::unexpected(SysError{0, "no record kept with it"})
            : load_record(record->second.get());
    UniqueFd record_fd;
    if (state) {
      record_fd = std::move(record->second);
    } else {
      // Its calls must still be answered: serve it with the node's
      // settings.
      log_line(kept.name + ": " + state.error().message() +
               "; served with the node's settings");
      state = ContainerState{};
    }
    state->listener = std::move(kept.fd);
    if (record != records.end()) records.erase(record);
    serve(std::move(*state), std::move(record_fd), std::move(tag));
  }
  // Records whose listener is gone (the container ended meanwhile): out
  // of the store, so that it does not keep them for ever.
  for (const auto& [tag, fd] : records) service_.forget(kRecordPrefix + tag);
  if (!listeners.empty()) {
    log_line("took over " + std::to_string(containers_.size()) + " of " +
             std::to_string(listeners.size()) +
             " containers from an earlier agent");
  }
}

namespace {

// A listening socket at `path`: its directory made 0750 if missing, the
// socket 0660, a stale socket left by an earlier agent replaced. Fails,
// saying why, if the path is taken by something else or a live agent.
Result<std::unique_ptr<Local::acceptor>> bind_socket(
    asio::io_context& io, const std::string& path, std::optional<gid_t> group) {
  std::string dir = directory_of(path);
  bool created = mkdir(dir.c_str(), 0750) == 0;
  if (!created && errno != EEXIST) return errno_error("creating " + dir);
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return std::unexpected(SysError{0, path + " exists and is not a socket"});
    }
    // A socket nobody accepts on is an earlier agent's: replace it. One
    // that accepts belongs to a running agent: leave it.
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    Local::endpoint endpoint(path);
    bool live =
        probe >= 0 && connect(probe, endpoint.data(), endpoint.size()) == 0;
    if (probe >= 0) close(probe);
    if (live) {
      return std::unexpected(SysError{0, path + ": another agent serves it"});
    }
    unlink(path.c_str());
  }
  auto acceptor = std::make_unique<Local::acceptor>(io);
  try {
    acceptor->open();
    mark_cloexec(acceptor->native_handle());
    acceptor->bind(Local::endpoint(path));
    acceptor->listen();
  } catch (const std::exception& e) {
    return std::unexpected(
        SysError{0, "listening on " + path + ": " + e.what()});
  }
  if (chmod(path.c_str(), 0660) != 0) return errno_error("chmod " + path);
  // A directory made here goes to the group too; one that was there is
  // the administrator's to open.
  if (group &&
      (chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0 ||
       (created && chown(dir.c_str(), static_cast<uid_t>(-1), *group) != 0))) {
    return errno_error("giving " + path + " to group " +
                       std::to_string(*group));
  }
  return acceptor;
}

// Whether the peer of `fd` may talk to the agent: root, our own user, or
// a process whose group is `group` (its primary group: SO_PEERCRED does
// not carry the supplementary ones).
bool trusted_peer(int fd, ucred* peer, std::optional<gid_t> group) {
  socklen_t length = sizeof *peer;
  return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, peer, &length) == 0 &&
         (peer->uid == 0 || peer->uid == geteuid() ||
          (group && peer->gid == *group));
}

}  // namespace

Result<void> Agent::listen_control() {
  if (options_.control_path.empty()) return {};
  Result<std::unique_ptr<Local::acceptor>> control =
      bind_socket(io_, options_.control_path, options_.group);
  if (!control) return std::unexpected(control.error());
  control_ = std::move(*control);
  accept_control();
  return {};
}

Result<std::string> Agent::listen() {
  if (acceptor_) {
    accept_next();
    boost::system::error_code error;
    Local::endpoint where = acceptor_->local_endpoint(error);
    return error ? std::string("an inherited socket") : where.path();
  }
  const std::string& path = options_.socket_path;
  Result<std::unique_ptr<Local::acceptor>> bound =
      bind_socket(io_, path, options_.group);
  if (!bound) return std::unexpected(bound.error());
  acceptor_ = std::move(*bound);
  // Runtimes that connect while the agent restarts wait in the backlog.
  if (Result<void> kept =
          service_.keep(acceptor_->native_handle(), kSocketName);
      !kept) {
    log_line(kept.error().message());
  }
  accept_next();
  return path;
}

void Agent::accept_control() {
  auto peer = std::make_shared<Local::socket>(io_);
  control_->async_accept(
      *peer, [this, peer](const boost::system::error_code& error) {
        if (error == asio::error::operation_aborted) return;
        if (!error) {
          mark_cloexec(peer->native_handle());
          ucred cred{};
          auto text = std::make_shared<std::string>(
              trusted_peer(peer->native_handle(), &cred, options_.group)
                  ? status()
                  : "only root may ask keepalive-agent for its status\n");
          asio::async_write(
              *peer, asio::buffer(*text),
              [peer, text](const boost::system::error_code&, size_t) {});
        }
        if (!error) return accept_control();
        shed_waiting(error, control_->native_handle(), "descriptors-status",
                     "a `keepalive-agent status` connection unanswered");
        accept_later([this] { accept_control(); });
      });
}

Result<std::string> Agent::serve_metrics(const std::string& address) {
  size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? "" : address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  boost::system::error_code error;
  asio::ip::address ip = asio::ip::make_address(host, error);
  unsigned long port = 0;
  char* end = nullptr;
  if (colon != std::string::npos) {
    port = strtoul(address.c_str() + colon + 1, &end, 10);
  }
  if (error || end == nullptr || *end != '\0' ||
      end == address.c_str() + colon + 1 || port > 65535) {
    return std::unexpected(SysError{
        0, "--metrics: invalid address '" + address +
               "' (expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464)"});
  }
  asio::ip::tcp::endpoint endpoint(ip, static_cast<uint16_t>(port));
  metrics_ = std::make_unique<asio::ip::tcp::acceptor>(io_);
  try {
    metrics_->open(endpoint.protocol());
    mark_cloexec(metrics_->native_handle());
    metrics_->set_option(asio::socket_base::reuse_address(true));
    metrics_->bind(endpoint);
    metrics_->listen();
  } catch (const std::exception& e) {
    metrics_.reset();
    return std::unexpected(
        SysError{0, "--metrics: listening on " + address + ": " + e.what()});
  }
  accept_metrics();
  asio::ip::tcp::endpoint bound = metrics_->local_endpoint(error);
  std::string where = bound.address().to_string();
  if (bound.address().is_v6()) where = "[" + where + "]";
  return where + ":" + std::to_string(bound.port());
}

namespace {

// Scrapes served at once, and how long one may take to send its request:
// whoever reaches the metrics address could otherwise hold the agent's
// descriptors, which containers need.
constexpr size_t kMaxScrapes = 4;
constexpr std::chrono::seconds kScrapeTimeout(2);

// Connections shed_waiting closes in one pass; the rest wait 100 ms.
constexpr int kShedPerPass = 64;

}  // namespace

// One scrape: the request read (up to a blank line, 8 KiB, kScrapeTimeout),
// then the metrics in the Prometheus text format, and the connection
// closed. Counted in `open` while it lives.
struct Agent::Scrape {
  Scrape(asio::io_context& io, size_t& open_)
      : socket(io), timer(io), open(open_) {
    ++open;
  }
  ~Scrape() { --open; }
  Scrape(const Scrape&) = delete;
  Scrape& operator=(const Scrape&) = delete;
  asio::ip::tcp::socket socket;
  asio::steady_timer timer;
  asio::streambuf request{size_t{8} * 1024};
  std::string response;
  size_t& open;
  bool reading = true;  // its request not read yet
};

void Agent::accept_metrics() {
  auto scrape = std::make_shared<Scrape>(io_, scrapes_);
  metrics_->async_accept(
      scrape->socket, [this, scrape](const boost::system::error_code& error) {
        if (error == asio::error::operation_aborted) return;
        // The one being accepted counts too. Over the cap, the oldest scrape
        // still waiting for its request makes room (a real scraper sends
        // it at once, an idle connection could hold its place for ever),
        // or the new one is closed if every other is being answered.
        if (!error && scrapes_ > kMaxScrapes && !evict_idle_scrape()) {
          boost::system::error_code ignored;
          scrape->socket.close(ignored);
        } else if (!error) {
          unread_scrapes_.push_back(scrape);
          mark_cloexec(scrape->socket.native_handle());
          scrape->timer.expires_after(kScrapeTimeout);
          scrape->timer.async_wait(
              [scrape](const boost::system::error_code& e) {
                if (e) return;
                boost::system::error_code ignored;
                scrape->socket.close(ignored);
              });
          asio::async_read_until(
              scrape->socket, scrape->request, "\r\n\r\n",
              [this, scrape](const boost::system::error_code& e, size_t) {
                scrape->reading = false;
                if (e) {
                  scrape->timer.cancel();
                  return;
                }
                std::string body = metrics();
                scrape->response =
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; "
                    "version=0.0.4\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
                asio::async_write(
                    scrape->socket, asio::buffer(scrape->response),
                    [scrape](const boost::system::error_code&, size_t) {
                      scrape->timer.cancel();
                      boost::system::error_code ignored;
                      scrape->socket.shutdown(
                          asio::ip::tcp::socket::shutdown_both, ignored);
                    });
              });
        }
        // Out of descriptors, scrapes wait in the backlog (nothing is
        // shed: a flood of them would keep the loop busy, and a scrape is
        // worth nothing then).
        if (!error) return accept_metrics();
        accept_later([this] { accept_metrics(); });
      });
}

bool Agent::evict_idle_scrape() {
  while (!unread_scrapes_.empty()) {
    std::shared_ptr<Scrape> oldest = unread_scrapes_.front().lock();
    unread_scrapes_.pop_front();
    if (oldest && oldest->reading) {
      boost::system::error_code ignored;
      oldest->socket.close(ignored);
      return true;
    }
  }
  return false;
}

namespace {

// A label value as the text format wants it: \\, \" and \n escaped.
std::string label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string Agent::metrics() const {
  std::string text =
      "# HELP keepalive_agent_containers Containers served now.\n"
      "# TYPE keepalive_agent_containers gauge\n"
      "keepalive_agent_containers " +
      std::to_string(containers_.size()) +
      "\n"
      "# HELP keepalive_agent_refused_messages_total Runtime messages "
      "refused (bad JSON, no listener, too slow) or closed unread for want "
      "of a descriptor.\n"
      "# TYPE keepalive_agent_refused_messages_total counter\n"
      "keepalive_agent_refused_messages_total " +
      std::to_string(refused_messages_) + "\n";
  struct Family {
    const char* name;
    const char* help;
    uint64_t (*value)(const HandlerStats&);
  };
  const Family families[] = {
      {"keepalive_agent_sockets_total", "Sockets given options.",
       [](const HandlerStats& s) { return s.in_place + s.emulated; }},
      {"keepalive_agent_option_failures_total",
       "Sockets on which some option failed.",
       [](const HandlerStats& s) { return s.option_failures; }},
      {"keepalive_agent_unreachable_total",
       "Calls whose socket could not be reached (pidfd_getfd refused, or "
       "the agent out of descriptors).",
       [](const HandlerStats& s) { return s.unreachable; }},
  };
  for (const Family& family : families) {
    text += std::string("# HELP ") + family.name + " " + family.help + "\n" +
            "# TYPE " + family.name + " counter\n";
    for (const auto& [key, container] : containers_) {
      text +=
          std::string(family.name) + "{container=\"" + label(container->id) +
          "\",pid=\"" + std::to_string(container->pid) + "\"} " +
          std::to_string(family.value(container->server.handler().stats())) +
          "\n";
    }
  }
  return text;
}

std::string Agent::status() const {
  std::string text = std::to_string(containers_.size()) +
                     (containers_.size() == 1 ? " container" : " containers") +
                     ", " + service_.describe() + "\n";
  for (const auto& [key, container] : containers_) {
    const HandlerStats& stats = container->server.handler().stats();
    text += container->name + ": pid " + std::to_string(container->pid) +
            ", sockets given options " +
            std::to_string(stats.in_place + stats.emulated) +
            ", options failed " + std::to_string(stats.option_failures) +
            ", unreachable " + std::to_string(stats.unreachable) + "; " +
            container->settings + "\n";
  }
  return text;
}

std::vector<std::pair<int, std::string>> Agent::passable_fds() const {
  std::vector<std::pair<int, std::string>> fds;
  if (acceptor_) fds.emplace_back(acceptor_->native_handle(), kSocketName);
  for (const auto& [key, container] : containers_) {
    fds.emplace_back(container->listener->fd(),
                     kListenerPrefix + container->tag);
    if (container->record.valid()) {
      fds.emplace_back(container->record.get(), kRecordPrefix + container->tag);
    }
  }
  return fds;
}

void Agent::accept_next() {
  if (draining_) return;
  auto connection = std::make_shared<Connection>(*this);
  acceptor_->async_accept(
      connection->socket,
      [this, connection](const boost::system::error_code& error) {
        if (error == asio::error::operation_aborted || draining_) return;
        if (!error) {
          read_state(connection);
          return accept_next();
        }
        int shed = shed_waiting(
            error, acceptor_->native_handle(), "descriptors-runtime",
            "a runtime's connection untaken (the runtime fails to hand its "
            "container over, or the container's trapped calls fail with "
            "ENOSYS)");
        if (shed < 0) {
          warnings_.limited("accept", "accepting a runtime's connection: " +
                                          error.message());
        }
        refused_messages_ += static_cast<uint64_t>(std::max(shed, 0));
        // Try again in a while rather than spin on a failing accept: with
        // the table full, accept fails at once whether or not a
        // connection waits.
        retry_.expires_after(std::chrono::milliseconds(100));
        retry_.async_wait([this](const boost::system::error_code& e) {
          if (!e) accept_next();
        });
      });
}

int Agent::shed_waiting(const boost::system::error_code& error, int fd,
                        const std::string& kind, const std::string& what) {
  if (error.category() != boost::system::system_category() ||
      (error.value() != EMFILE && error.value() != ENFILE)) {
    return -1;
  }
  // The spare's slot takes each waiting connection in turn; a bounded
  // number per pass, so that a flood of connections cannot hold the loop
  // (and the containers' calls) here.
  spare_.reset();
  int shed = 0;
  for (int taken; shed < kShedPerPass &&
                  (taken = accept4(fd, nullptr, nullptr,
                                   SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0;) {
    close(taken);
    ++shed;
  }
  spare_.reset(eventfd(0, EFD_CLOEXEC));
  if (shed == 0) return 0;
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  std::string table =
      error.value() == ENFILE
          ? "the system's file table is full"
          : "out of file descriptors (RLIMIT_NOFILE " +
                (limit.rlim_cur == RLIM_INFINITY
                     ? std::string("unlimited")
                     : std::to_string(limit.rlim_cur)) +
                ", " + std::to_string(containers_.size()) +
                (containers_.size() == 1 ? " container" : " containers") +
                " served; raise it: LimitNOFILE=, ulimit -n)";
  // The running total makes the last line of a burst (or the count of
  // those left out, flushed after it) say how many in all.
  uint64_t& total = shed_totals_[kind];
  total += static_cast<uint64_t>(shed);
  warnings_.limited(kind, table + ": closed " +
                              (shed == 1 ? what
                                         : std::to_string(shed) + " x " + what) +
                              " (" + std::to_string(total) + " so far)");
  flush_later();
  return shed;
}

void Agent::flush_later() {
  if (flush_pending_) return;
  flush_pending_ = true;
  // A burst of rate-limited lines ends with how many were left out.
  flush_.expires_after(
      std::chrono::milliseconds(RateLimitedLog::kIntervalMs));
  flush_.async_wait([this](const boost::system::error_code& e) {
    flush_pending_ = false;
    if (!e) warnings_.flush();
  });
}

void Agent::accept_later(std::function<void()> again) {
  auto timer = std::make_shared<asio::steady_timer>(
      io_, std::chrono::milliseconds(100));
  timer->async_wait([timer, again = std::move(again)](
                        const boost::system::error_code& e) {
    if (!e) again();
  });
}

void Agent::read_state(std::shared_ptr<Connection> connection) {
  mark_cloexec(connection->socket.native_handle());
  // Only root (or our own user) hands us a listener: anyone else could
  // make us act on processes it names.
  ucred peer{};
  if (!trusted_peer(connection->socket.native_handle(), &peer,
                    options_.group)) {
    warnings_.limited("peer", "refused a connection from uid " +
                                  std::to_string(peer.uid) + " (pid " +
                                  std::to_string(peer.pid) +
                                  "): only root (or --group) may hand the "
                                  "agent a listener");
    return;
  }
  connection->counted = true;
  ++connections_;
  connection->socket.non_blocking(true);
  // One deadline for the whole message, however it trickles in.
  connection->timer.expires_after(kStateTimeout);
  connection->timer.async_wait(
      [this, connection](const boost::system::error_code& error) {
        if (error || connection->done) return;
        connection->done = true;
        ++refused_messages_;
        warnings_.limited("slow",
                          "a runtime sent no complete message "
                          "within 5 s; connection closed");
        boost::system::error_code ignored;
        connection->socket.close(ignored);
      });
  wait_state(std::move(connection));
}

void Agent::wait_state(std::shared_ptr<Connection> connection) {
  Local::socket& socket = connection->socket;
  socket.async_wait(
      Local::socket::wait_read, [this, connection = std::move(connection)](
                                    const boost::system::error_code& error) {
        if (error || connection->done) return;
        std::optional<Result<ContainerState>> got =
            connection->receiver.read_some(connection->socket.native_handle());
        if (!got) return wait_state(connection);  // more to come
        connection->done = true;
        connection->timer.cancel();
        boost::system::error_code ignored;
        connection->socket.close(ignored);
        if (!*got) {
          if (got->error().err != ENODATA) {
            ++refused_messages_;
            warnings_.limited("message", "refused a runtime's message: " +
                                             got->error().message());
          }
          return;
        }
        serve(std::move(**got), UniqueFd(), "");
      });
}

void Agent::serve(ContainerState state, UniqueFd record, std::string tag) {
  std::string name = container_name(state);
  bool adopted = !tag.empty();
  // Served by no one, the listener must not stay in the store either: its
  // calls would wait there unanswered instead of failing.
  auto give_up = [&](const SysError& error) {
    log_line(name + ": " + error.message() +
             "; its trapped calls fail with ENOSYS");
    if (adopted) {
      service_.forget(kListenerPrefix + tag);
      service_.forget(kRecordPrefix + tag);
    }
  };
  int ready_fd = fcntl(state.listener.get(), F_DUPFD_CLOEXEC, 3);
  if (ready_fd < 0) return give_up(SysError{errno, "dup"});
  Result<std::unique_ptr<KernelListener>> listener =
      KernelListener::open(state.listener);
  if (!listener) {
    close(ready_fd);
    return give_up(listener.error());
  }
  (*listener)->request_sync_wake_up();
  HandlerOptions handler = options_.handler;
  auto own = container_options(
      state,
      WorkloadOptions{.settings = handler.settings, .mode = handler.mode});
  if (own) {
    handler.settings = own->settings;
    handler.mode = own->mode;
  } else {
    if (options_.strict) {
      handler.settings = handler.settings.with_enabled(false);
    }
    log_line(name + ": " + own.error() +
             (options_.strict ? "; its sockets get no options (--strict)"
                              : "; it gets the node's settings"));
  }
  handler.log_label = name + ": ";
  handler.shared_ring = &ring_;
  uint64_t key = next_key_++;
  if (!adopted) tag = tag_prefix_ + std::to_string(key);
  // A listener adopted without a usable record gets one now: the next
  // agent serves it as this one does, without a word.
  bool new_record = !record.valid();
  if (new_record) {
    if (Result<UniqueFd> saved = save_record(state); saved) {
      record = std::move(*saved);
    } else {
      log_line(name + ": " + saved.error().message());
    }
  }
  // A copy in the store keeps the container's calls waiting, not failing,
  // while the agent restarts.
  Result<void> kept;
  if (!adopted) kept = service_.keep((*listener)->fd(), kListenerPrefix + tag);
  if (kept && new_record && record.valid()) {
    kept = service_.keep(record.get(), kRecordPrefix + tag);
  }
  if (!kept) {
    warnings_.limited("fdstore", name + ": " + kept.error().message() +
                                     "; its calls will fail with ENOSYS if "
                                     "the agent restarts");
  }
  containers_.emplace(
      key, std::make_unique<Container>(
               io_, state.id, name, state.pid, std::move(tag),
               std::move(record), std::move(*listener), handler, ready_fd));
  if (options_.handler.verbose) {
    log_line(name + " (pid " + std::to_string(state.pid) + "): serving" +
             (adopted ? " again" : "") + ", " + describe(handler));
  }
  wait_calls(key);
}

void Agent::connection_ended() {
  --connections_;
  // Not from within the destructor that called this.
  if (draining_ && connections_ == 0) asio::post(io_, [this] { drained(); });
}

void Agent::drained() {
  if (!draining_ || connections_ != 0 || !drained_) return;
  std::function<void()> then = std::move(drained_);
  drained_ = nullptr;
  then();
}

size_t Agent::drain(std::function<void()> then) {
  draining_ = true;
  drained_ = std::move(then);
  if (acceptor_) {
    boost::system::error_code ignored;
    acceptor_->cancel(ignored);
  }
  retry_.cancel();
  // Each message in flight ends within kStateTimeout, read or refused.
  asio::post(io_, [this] { drained(); });
  return connections_;
}

void Agent::resume() {
  draining_ = false;
  drained_ = nullptr;
  if (acceptor_) accept_next();
}

void Agent::wait_calls(uint64_t key) {
  auto it = containers_.find(key);
  if (it == containers_.end()) return;
  it->second->ready.async_wait(
      asio::posix::stream_descriptor::wait_read,
      [this, key](const boost::system::error_code& error) {
        if (error == asio::error::operation_aborted) return;
        on_ready(key);
      });
}

void Agent::on_ready(uint64_t key) {
  auto it = containers_.find(key);
  if (it == containers_.end()) return;
  Container& container = *it->second;
  // The loop's readiness is edge-triggered: take every call queued now.
  for (;;) {
    pollfd fd{container.listener->fd(), POLLIN, 0};
    if (poll(&fd, 1, 0) <= 0) break;
    if (fd.revents & POLLIN) {
      container.server.handle_one();
      continue;
    }
    if (fd.revents & (POLLHUP | POLLERR)) {
      // Every task under the filter is gone.
      if (options_.handler.verbose) log_line(container.name + ": done");
      service_.forget(kListenerPrefix + container.tag);
      service_.forget(kRecordPrefix + container.tag);
      containers_.erase(it);
      return;
    }
    break;
  }
  wait_calls(key);
}

}  // namespace keepalive::agent

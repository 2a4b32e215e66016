// SPDX-License-Identifier: Apache-2.0
// Attaching to running processes (keepalive-supervise --pid, --cgroup): the
// TCP sockets they already have get the options of --mode, from outside,
// without stopping or tracing them. Each socket is copied into this process
// with pidfd_getfd (the copy is the same socket: options set on it are the
// process's), looked at, given its options and closed.
//
// A socket is known by its inode, which the link /proc/PID/fd/N names
// ("socket:[INODE]"), so --watch copies only the sockets it has not judged
// yet: a scan of a process whose sockets all have their verdict costs one
// readlink per descriptor and no copy.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstdio>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/unique_fd.h"
#include "supervisor/config.h"

namespace keepalive {

// What a TCP socket is to the process that holds it.
enum class SocketRole {
  kListening,
  kAccepted,     // connected, on the address of a listening socket seen
  kConnected,    // connected or connecting, not accepted
  kUnconnected,  // neither listening nor connected (yet)
};
const char* role_name(SocketRole role);

// Whether --mode `mode` gives a socket of `role` its options: connect takes
// connected sockets, listen listening and accepted ones, socket all.
// nullopt while it cannot tell: an unconnected socket under connect or
// listen may still connect or listen.
std::optional<bool> mode_takes(Mode mode, SocketRole role);

// The processes of cgroup directory `dir` and of every cgroup below it
// (cgroup v2, or a v1 hierarchy), sorted; an error naming `dir` when it is
// not a cgroup directory.
std::expected<std::vector<pid_t>, std::string> cgroup_processes(
    const std::string& dir);

// Closes descriptors on a thread of its own (attach.cc).
class Closer;

// Whether the task whose /proc directory is `task_dir`
// (/proc/PID/task/TID) is neither a zombie nor dead.
bool task_runs(const std::string& task_dir);

// A thread of `pid` that can make calls and whose /proc/PID/task/TID/fd
// lists the descriptors: the leader unless it has exited (a zombie
// leader's threads run on), else the first other one; `pid` if none.
pid_t live_thread(pid_t pid);

// Added up over a run.
struct AttachTotals {
  long changed = 0;        // given options (with --dry-run: would be)
  long already = 0;        // carried them already
  long left_alone = 0;     // TCP sockets --mode does not take
  long not_connected = 0;  // unconnected, under connect or listen (last scan)
  long failed = 0;         // a setsockopt failed
  long unreachable = 0;    // processes that could not be reached
};

class Attacher {
 public:
  // Lines, one per socket changed (with --dry-run, per TCP socket), go to
  // `out`; errors to the log. Opens the processes of --pid.
  Attacher(const Config& config, FILE* out);
  ~Attacher();
  Attacher(const Attacher&) = delete;
  Attacher& operator=(const Attacher&) = delete;

  // One look at every process. False when there is nothing left to watch:
  // every process of --pid has exited, or the cgroup is gone.
  bool scan();

  const AttachTotals& totals() const { return totals_; }
  // "summary: 2 processes, 3 TCP sockets: 3 given options ...".
  std::string summary() const;
  // 0 when every TCP socket found has its options, 1 when a process or a
  // socket could not be reached or set.
  int exit_status() const;

  // What the last scan cost: descriptors listed and sockets copied.
  long last_listed() const { return last_listed_; }
  long last_copied() const { return last_copied_; }

 private:
  struct Process {
    pid_t pid;
    int pidfd;       // borrowed from named_, or `owned`
    UniqueFd owned;  // a --cgroup process's, for one scan
  };
  // One descriptor of a process, a TCP socket not judged yet.
  struct Found {
    const Process* process;
    int fd;
    ino_t inode;
  };
  // A local address: its network namespace, address bytes (IPv4 as
  // v4-mapped) and port.
  struct Address {
    uint64_t netns = 0;
    uint8_t bytes[16] = {};
    uint16_t port = 0;
    bool valid = false;
  };
  // What a copy of a socket showed.
  struct Look {
    Found found;
    SocketRole role = SocketRole::kUnconnected;
    int state = 0;  // tcpi_state, 0 when unknown
    std::string local, peer;
    Address local_address;
    int current[kOptionCount] = {};
  };
  // The verdict on a socket (or that it is not TCP), kept while it exists.
  struct Known {
    uint64_t generation = 0;
    bool listening = false;
    Address local_address;
  };

  std::vector<Process> current_processes();
  void list_sockets(const Process& process, std::vector<Found>* found);
  // Lists the descriptor directory `path` of `process`; false if it held
  // no descriptor at all.
  bool list_directory(const Process& process, const std::string& path,
                      std::vector<Found>* found);
  // Looks at a copy of `found`'s socket; the copy, in `copy`.
  std::optional<Look> look_at(const Found& found, UniqueFd* copy);
  // Judges `look` and gives it its options, through `copy` when valid
  // (else through a new one).
  void judge(Look& look, const std::vector<Address>& listeners, UniqueFd copy);
  void unreachable(pid_t pid, const std::string& why);
  UniqueFd copy_of(const Found& found);
  // Whether copying `pid`'s sockets would change their cgroup v1 class
  // (net_cls, net_prio): a copy takes this process's.
  bool class_differs(pid_t pid, std::string* which);
  // Closes a copy on the closer thread: a socket the process closed
  // meanwhile would else make us wait for its SO_LINGER time.
  void dispose(UniqueFd copy);

  Config config_;
  FILE* out_;
  std::vector<std::pair<pid_t, UniqueFd>> named_;  // --pid's, opened once
  uint64_t generation_ = 0;
  std::unordered_map<ino_t, Known> known_;
  std::unordered_set<pid_t> seen_processes_;
  std::unordered_set<pid_t> unreachable_now_;  // in this scan
  std::unordered_set<pid_t> ever_unreachable_;
  std::unordered_set<std::string> said_;  // messages, once each
  std::string own_classes_;  // our net_cls and net_prio lines
  AttachTotals totals_;
  long last_listed_ = 0;
  long last_copied_ = 0;
  bool stop_ = false;
  std::unique_ptr<Closer> closer_;
};

// keepalive-supervise --pid/--cgroup [--dry-run] [--watch]: returns the
// exit status.
int run_attach(const Config& config);

}  // namespace keepalive

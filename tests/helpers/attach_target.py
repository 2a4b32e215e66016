#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# attach_target.py: a running program with TCP sockets of every role, for
# keepalive-supervise --pid and --cgroup. It never sets an option itself;
# it reads back from the kernel what its sockets carry.
#
# Prints "pid PID" at start, then obeys one command per line on stdin:
#   listen          a listening socket on an ephemeral loopback port:
#                   "listening PORT"
#   connect PORT    a connection to loopback:PORT: "connected LPORT"
#   self            a connection to its own (first) listener, accepted:
#                   "self LPORT"
#   unconnected     a TCP socket neither bound nor connected: "unconnected"
#   report          one line per TCP socket it holds, "socket ROLE LPORT
#                   SO_KEEPALIVE=N TCP_KEEPIDLE=N TCP_KEEPINTVL=N
#                   TCP_KEEPCNT=N TCP_USER_TIMEOUT=N", then "end"
# and exits at EOF. Roles: listening, accepted, connected, unconnected.
import os
import socket
import sys

sockets = []  # (role, socket)


def say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def listener():
    for role, s in sockets:
        if role == "listening":
            return s
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    sockets.append(("listening", s))
    return s


def report():
    options = [
        ("SO_KEEPALIVE", socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        ("TCP_KEEPIDLE", socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        ("TCP_KEEPINTVL", socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        ("TCP_KEEPCNT", socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        ("TCP_USER_TIMEOUT", socket.IPPROTO_TCP, 18),
    ]
    for role, s in sockets:
        port = s.getsockname()[1] if role != "unconnected" else 0
        values = " ".join(
            "%s=%d" % (name, s.getsockopt(level, opt))
            for name, level, opt in options)
        say("socket %s %d %s" % (role, port, values))
    say("end")


def main():
    say("pid %d" % os.getpid())
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "listen":
            say("listening %d" % listener().getsockname()[1])
        elif words[0] == "connect":
            c = socket.create_connection(("127.0.0.1", int(words[1])))
            sockets.append(("connected", c))
            say("connected %d" % c.getsockname()[1])
        elif words[0] == "self":
            l = listener()
            c = socket.create_connection(l.getsockname())
            a, _ = l.accept()
            sockets.append(("connected", c))
            sockets.append(("accepted", a))
            say("self %d" % c.getsockname()[1])
        elif words[0] == "unconnected":
            sockets.append(("unconnected", socket.socket()))
            say("unconnected")
        elif words[0] == "report":
            report()
        else:
            say("unknown command " + words[0])


main()

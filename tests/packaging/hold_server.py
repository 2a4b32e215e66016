#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""hold_server.py [--port PORT] [--timeout SECONDS]

A TCP server for the packaging tests: listens on 127.0.0.1 (an ephemeral
port unless --port), prints the port on one line, then accepts connections
and holds them open, discarding what arrives, until killed or until
--timeout (default 60) seconds have passed. Holding the connection is what
lets a test read the options on the client's socket from outside."""

import argparse
import selectors
import socket
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.port))
    server.listen(16)
    print(server.getsockname()[1], flush=True)

    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    deadline = time.monotonic() + args.timeout
    while (left := deadline - time.monotonic()) > 0:
        for key, _ in selector.select(left):
            if key.fileobj is server:
                conn, _ = server.accept()
                selector.register(conn, selectors.EVENT_READ)
            elif not key.fileobj.recv(4096):
                selector.unregister(key.fileobj)
                key.fileobj.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

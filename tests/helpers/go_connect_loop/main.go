// SPDX-License-Identifier: Apache-2.0

// go_connect_loop PORT GOROUTINES: the Go counterpart of connect_loop.c, for
// keepalive-supervise --follow tests. Go's runtime makes its own raw system
// calls from many threads and preempts goroutines with SIGURG; a goroutine
// that spins keeps those signals coming.
//
// Prints "started pid PID", then each goroutine dials loopback:PORT again
// and again (with Go's own keepalive off, so that what the socket carries
// is ours), reads SO_KEEPALIVE back and closes. At EOF on stdin it prints
// "made=N failed=N keepalive=N" and, for the first failure, "error TEXT".
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go_connect_loop PORT GOROUTINES")
		os.Exit(2)
	}
	address := net.JoinHostPort("127.0.0.1", os.Args[1])
	workers, _ := strconv.Atoi(os.Args[2])
	var stopping atomic.Bool
	var made, failed, keepalive atomic.Int64
	var firstError atomic.Value
	fail := func(err error) {
		failed.Add(1)
		firstError.CompareAndSwap(nil, err.Error())
	}
	dialer := net.Dialer{KeepAlive: -1}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopping.Load() {
				conn, err := dialer.Dial("tcp", address)
				if err != nil {
					fail(err)
					continue
				}
				raw, _ := conn.(*net.TCPConn).SyscallConn()
				var on int
				var optErr error
				raw.Control(func(fd uintptr) {
					on, optErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
				})
				if optErr != nil {
					fail(optErr)
				} else {
					made.Add(1)
					if on != 0 {
						keepalive.Add(1)
					}
				}
				conn.Close()
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
	// A goroutine that never yields: the runtime preempts it with SIGURG.
	go func() {
		x := 0
		for !stopping.Load() {
			x++
		}
	}()
	fmt.Printf("started pid %d\n", os.Getpid())
	io.Copy(io.Discard, os.Stdin)
	stopping.Store(true)
	wg.Wait()
	fmt.Printf("made=%d failed=%d keepalive=%d\n", made.Load(), failed.Load(), keepalive.Load())
	if text := firstError.Load(); text != nil {
		fmt.Printf("error %s\n", text)
	}
}

package faults

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
)

// runHelper runs the test binary as the helper process named h and returns
// its exit status. The helpers are:
//
//	hold   a TCP target that accepts connections and holds each one open,
//	       reading and discarding, until the peer closes it; it prints its
//	       address on stdout and ends when stdin closes
//
// The 10,000-stream test holds the target's end of every stream in a
// process of its own, so that the test process, which holds the client
// ends, stays within its open-files limit.
func runHelper(h string) int {
	switch h {
	case "hold":
		return runHold()
	}
	fmt.Fprintf(os.Stderr, "unknown helper %q\n", h)
	return 2
}

func runHold() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if ne, ok := err.(net.Error); ok && !ne.Timeout() {
					return
				}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(w, ln.Addr().String())
	w.Flush()
	io.Copy(io.Discard, os.Stdin)
	ln.Close()
	return 0
}

// Command benchtool is the origin and the clients of the fluidity
// benchmarks in package bench. Each mode runs as its own process, so the
// client, the agent, the exit and the origin share the machine the way
// they would in use, and so does each baseline.
//
// Modes:
//
//	origin        HTTP server (/bytes?n=N, /small), a TCP source, a TLS 1.3
//	              source and a holding port; prints its addresses as JSON
//	client-bulk   downloads N bytes on each of K streams, raw TLS or CONNECT
//	client-small  C keep-alive connections issuing small GETs for D
//	client-setup  M sequential (CONNECT +) GET + close
//	client-idle   opens T CONNECT tunnels, holds them until stdin closes
//	client-ttfb   M sequential new HTTPS connections: time to the first byte
//	client-page   a page load: O HTTPS objects over C new connections
//
// Every client prints one JSON object on stdout.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool origin|client-bulk|client-small|client-setup|client-idle|client-ttfb|client-page [flags]")
		os.Exit(2)
	}
	modes := map[string]func(args []string) error{
		"origin":       runOrigin,
		"client-bulk":  runBulk,
		"client-small": runSmall,
		"client-setup": runSetup,
		"client-idle":  runIdle,
		"client-ttfb":  runTTFB,
		"client-page":  runPage,
	}
	run, ok := modes[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "benchtool: unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func newFlags(name string) *flag.FlagSet {
	return flag.NewFlagSet(name, flag.ExitOnError)
}

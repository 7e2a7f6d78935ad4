// Command fluidity carries your connections through an exit server you own.
// Run 'fluidity --help' for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"fluidity/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Environ: os.Environ(), SetProcs: runtime.GOMAXPROCS}, os.Args[1:])
	stop()
	os.Exit(code)
}

// Command fluidity carries your connections through an exit server you own.
// Run 'fluidity --help' for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	// CA roots for where the system has none, such as the exit's image,
	// which holds nothing but the binary.
	_ "golang.org/x/crypto/x509roots/fallback"

	"fluidity/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts a graceful stop, bounded by the command's
	// shutdown timeout; then the signals get their default action back, so
	// a second one ends the process at once.
	context.AfterFunc(ctx, stop)
	args := os.Args[1:]
	if filepath.Base(os.Args[0]) == "bootstrap" {
		// AWS Lambda's provided.al2023 runtime runs a binary of that name.
		args = append([]string{"lambda"}, args...)
	}
	code := cli.Main(ctx, cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Environ: os.Environ(), SetProcs: runtime.GOMAXPROCS}, args)
	stop()
	os.Exit(code)
}

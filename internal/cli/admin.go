package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"fluidity/internal/admin"
	"fluidity/internal/sockio"
)

// defaultAgentAdmin is where the agent's admin listener is, and where
// 'fluidity status' looks for it: next to the proxy port, on loopback.
const defaultAgentAdmin = "127.0.0.1:8081"

func validateAdmin(addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("admin: %q is not host:port (example: 127.0.0.1:8081; empty turns it off)", addr)
	}
	return nil
}

// listenAdmin opens the admin listener, or returns nil if addr is empty.
// When the agent's default address is taken (by another agent, most
// likely), it warns and returns nil: a second agent on one machine still
// runs, and only an address that was chosen on purpose must be had.
func listenAdmin(addr string, allowNonLoopback bool, consentFlag string, log *slog.Logger) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := admin.Listen(addr, allowNonLoopback, consentFlag)
	if err != nil && addr == defaultAgentAdmin && sockio.AddrInUse(err) {
		log.Warn("admin listener not started: its default address is in use, probably by another agent; 'fluidity status' will not see this one. Set --admin to a free address (or empty to turn it off)",
			"admin", addr, "err", err)
		return nil, nil
	}
	return ln, err
}

// serveWithAdmin runs serve and, if ln is not nil, the admin listener on
// it, until ctx ends. The admin listener stops after serve has returned, so
// probes see the service through its shutdown.
func serveWithAdmin(ctx context.Context, ln net.Listener, cfg admin.Config, serve func(context.Context) error) error {
	if ln == nil {
		return serve(ctx)
	}
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	var adminErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		adminErr = admin.Serve(adminCtx, ln, cfg)
	}()
	err := serve(ctx)
	stopAdmin()
	wg.Wait()
	return errors.Join(err, adminErr)
}

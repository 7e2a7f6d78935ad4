//go:build !linux

package tunnel

import "io"

// readinessWaiter is only implemented on Linux; elsewhere ReadFrom reads
// with small buffers while a source is idle.
func readinessWaiter(io.Reader) func(beforeBlock func()) error { return nil }

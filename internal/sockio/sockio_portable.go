//go:build !linux || fluidity_portable

package sockio

import (
	"io"
	"net"
)

const fast = false

// IdleReader has no portable implementation: callers read into a buffer
// they hold while the source is idle.
func IdleReader(io.Reader, int) IdleRead { return nil }

// SinkOf has no portable implementation: data for a destination is queued
// for the goroutine that writes to it.
func SinkOf(io.Writer) Sink { return nil }

// WriterOf has no portable implementation: callers use Write.
func WriterOf(io.Writer) func([]byte) (int, error) { return nil }

// PeekByte has no portable implementation: callers read the byte.
func PeekByte(net.Conn) (byte, bool, error) { return 0, false, nil }

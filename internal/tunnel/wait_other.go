//go:build !linux

package tunnel

import (
	"io"
	"syscall"
)

// idleReader is only implemented on Linux; elsewhere ReadFrom and the
// link's reader read into a buffer they hold while the source is idle.
func idleReader(io.Reader, int) idleRead {
	return nil
}

func sinkOf(io.Writer) syscall.RawConn { return nil }

func tryWrite(syscall.RawConn, []byte) (int, error) { return 0, nil }

func writerOf(io.Writer) func([]byte) (int, error) { return nil }

//go:build !linux

package tunnel

import (
	"io"
	"syscall"
)

// idleReader is only implemented on Linux; elsewhere ReadFrom reads with
// small buffers while a source is idle.
func idleReader(io.Reader) func(get func() *[]byte, put func(*[]byte), beforeBlock func()) (*[]byte, int, error) {
	return nil
}

func sinkOf(io.Writer) syscall.RawConn { return nil }

func tryWrite(syscall.RawConn, []byte) (int, error) { return 0, nil }

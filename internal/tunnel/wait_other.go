//go:build !linux

package tunnel

import "io"

// idleReader is only implemented on Linux; elsewhere ReadFrom reads with
// small buffers while a source is idle.
func idleReader(io.Reader) func(get func() *[]byte, put func(*[]byte), beforeBlock func()) (*[]byte, int, error) {
	return nil
}

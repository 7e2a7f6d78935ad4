//go:build unix

package proctest

import (
	"syscall"
	"testing"
)

// Freeze stops the process (SIGSTOP) as a hung program would be: it keeps
// its sockets open and answers nothing. Kill still ends it.
func (p *Proc) Freeze(t testing.TB) {
	t.Helper()
	p.Signal(t, syscall.SIGSTOP)
}

//go:build !unix

package proctest

import "testing"

// Freeze would stop the process as a hung program would be; without
// SIGSTOP, the test that needs it is skipped.
func (p *Proc) Freeze(t testing.TB) {
	t.Helper()
	t.Skip("freezing a process needs SIGSTOP")
}

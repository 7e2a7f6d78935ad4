//go:build unix

package supervisor

import (
	"os"
	"syscall"
)

// interrupt asks p to stop.
func interrupt(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

// job is nothing on Unix: see configure.
type job struct{}

func newJob() (*job, error)          { return &job{}, nil }
func (*job) add(p *os.Process) error { return nil }
func (*job) close()                  {}

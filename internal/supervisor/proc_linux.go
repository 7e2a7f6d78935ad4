package supervisor

import (
	"os/exec"
	"syscall"
)

// configure has the kernel end the program with SIGTERM if the supervisor
// dies without stopping it.
func configure(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

//go:build unix && !linux

package supervisor

import "os/exec"

// configure: launchd ends the program with the supervisor's process group.
func configure(*exec.Cmd) {}

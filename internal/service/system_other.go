//go:build !linux && !darwin && !windows

package service

import (
	"fmt"
	"runtime"
)

// Default: this system has no manager Fluidity knows.
func Default(string) (Manager, error) {
	return nil, fmt.Errorf("starting at login is not supported on %s: start 'fluidity agent' from your session's start-up scripts", runtime.GOOS)
}

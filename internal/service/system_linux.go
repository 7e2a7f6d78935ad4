package service

import (
	"os"
	"path/filepath"
)

// Default is this system's manager: a systemd user unit.
func Default(stateDir string) (Manager, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return nil, err
	}
	return Systemd{Dir: filepath.Join(dir, "systemd", "user")}, nil
}

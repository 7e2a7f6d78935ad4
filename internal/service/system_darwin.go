package service

import (
	"os"
	"path/filepath"
)

// Default is this system's manager: a LaunchAgent.
func Default(stateDir string) (Manager, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, err
	}
	return Launchd{Dir: filepath.Join(home, "Library", "LaunchAgents"), UID: os.Getuid()}, nil
}

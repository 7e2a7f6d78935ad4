//go:build !windows && !darwin

package sysproxy

import (
	"context"
	"os/exec"
	"runtime"

	"fluidity/internal/oscmd"
)

// Default is this system's proxy setting: GNOME's where gsettings knows
// its schema (other desktops, KDE among them, read the https_proxy
// variable instead), else none.
func Default() System {
	if _, err := exec.LookPath("gsettings"); err != nil {
		return Unsupported{Reason: "no gsettings, so no GNOME desktop, on this " + runtime.GOOS + " machine"}
	}
	if _, err := oscmd.Exec(context.Background(), "gsettings", "get", "org.gnome.system.proxy", "mode"); err != nil {
		return Unsupported{Reason: "gsettings has no org.gnome.system.proxy schema"}
	}
	return GNOME{}
}

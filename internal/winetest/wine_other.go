//go:build !windows

package winetest

// Running reports whether this program is a Windows one running under Wine:
// never, on this system.
func Running() bool { return false }

// Package winetest runs fluidity's Windows binaries under Wine, so that a
// Linux machine can test the Windows agent for real: the test binaries of
// the packages it uses, the fluidity.exe agent carrying curl, and the
// Windows system-proxy code against Wine's registry.
//
// Setup makes a Wine prefix ready for Go programs. Two gaps of Debian's
// Wine 8 are bridged there, and nowhere else:
//
//   - Wine 8 has no bcryptprimitives.dll, from which Go's Windows runtime
//     loads ProcessPrng at start. Setup builds a few-line one that forwards
//     to RtlGenRandom (testdata/bcryptprimitives.c) with the MinGW-w64 C
//     compiler and puts it in the prefix's system32.
//   - Wine 8's NtSetInformationFile lacks FileDispositionInformationEx,
//     which os.RemoveAll uses first; Go falls back to the old call only for
//     the status codes old Windows returns, not for Wine's
//     STATUS_NOT_IMPLEMENTED, so every t.TempDir cleanup would fail.
//     Overlay writes a build overlay that adds that status to the
//     fallback's list; the cross-built test binaries are built with it.
//     The fluidity.exe that users run is built without it.
//
// The wineexec command is the -exec program of 'go test' for GOOS=windows:
// it runs each test binary under Wine in the prefix Setup made.
//
// Running reports, inside a Windows program, whether it runs under Wine:
// tests that change this machine's settings (the system proxy) run only
// there, never on a developer's Windows.
package winetest

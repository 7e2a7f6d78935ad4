package faults

import "fluidity/internal/proctest"

// procs starts the exits and agents of the process tests: every exit allows
// private targets (the targets run on loopback in the test process), and
// every exit and agent gets an admin listener when the binary has one.
var procs = proctest.Launcher{Admin: true, ExitFlags: []string{"--allow-private"}}
